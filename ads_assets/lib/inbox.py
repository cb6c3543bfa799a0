"""The transactions inbox: files of new transactions dropped into `ADS_INBOX`, each taken once as a batch.

A batch file is in either published layout: the PKDD'99 `trans` layout with its header (`*.asc`), or the
`fin_trans` TSV (`*.tsv`). Once processed, a file moves to `processed/`, or to `failed/` beside a
`<name>.reason.txt` when it could not be read or some of its lines were quarantined (its good rows are loaded
all the same: nothing is lost, the quarantined lines are in `raw.quarantine`). A file staged from a remote inbox
has an origin file beside it (`<name>.origin.json`); settling the file settles its origin as well
(`ads_assets.lib.inbox_s3`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from ads_assets.lib.berka.formats import SourceError, SourceFile, SourceFormat

INBOX_VARIABLE = "ADS_INBOX"
DEFAULT_INBOX = "ads_inbox"
PROCESSED = "processed"
FAILED = "failed"
FORMATS = {".asc": SourceFormat.PKDD99, ".tsv": SourceFormat.FIN}
"""The batch layouts by file suffix."""
ORIGIN_SUFFIX = ".origin.json"


def inbox_folder() -> Path:
    """`ADS_INBOX`, else `./ads_inbox`."""
    return Path(os.environ.get(INBOX_VARIABLE) or DEFAULT_INBOX).expanduser().resolve()


def batch_files(folder: Path) -> list[Path]:
    """The batch files waiting in `folder`, in name order (its `processed/` and `failed/` are not looked into)."""
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in FORMATS)


def file_digest(path: Path) -> str:
    """sha256 of the file's bytes: the key that makes each batch run once."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def batch_source(path: Path) -> SourceFile:
    """The file as the `trans` relation's source; SourceError for a suffix of neither layout."""
    layout = FORMATS.get(path.suffix.lower())
    if layout is None:
        raise SourceError(f"{path.name}: a batch is a PKDD'99 trans file (*.asc) or a fin_trans file (*.tsv)")
    return SourceFile("trans", str(path), layout)


def origin_file(path: Path) -> Path:
    """Where a staged batch file's origin is recorded: `<name>.origin.json` beside it."""
    return path.with_name(f"{path.name}{ORIGIN_SUFFIX}")


def settle(path: Path, reason: str | None = None) -> Path:
    """Move the batch file to `processed/`, or with a reason to `failed/` beside `<name>.reason.txt`.

    A file staged from the S3 inbox (it has an origin file) moves its object on S3 the same way.
    """
    origin = origin_file(path)
    target = path.parent / (FAILED if reason else PROCESSED)
    target.mkdir(exist_ok=True)
    moved = target / path.name
    if moved.exists():
        moved = target / f"{path.stem}.{file_digest(path)[:12]}{path.suffix}"
    shutil.move(path, moved)
    if reason:
        moved.with_name(f"{moved.name}.reason.txt").write_text(reason.rstrip("\n") + "\n", encoding="utf-8")
    if origin.is_file():
        from ads_assets.lib.inbox_s3 import settle_object

        settle_object(origin, moved, reason)
    return moved
