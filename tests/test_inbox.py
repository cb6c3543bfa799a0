"""The inbox's files: which are batches, in which layout, and where a taken file goes."""

from __future__ import annotations

from pathlib import Path

import pytest

from ads_assets.lib.berka.formats import SourceError, SourceFormat
from ads_assets.lib.inbox import batch_files, batch_source, settle


def test_batches_are_asc_and_tsv_files_of_the_inbox_itself(tmp_path: Path) -> None:
    for name in ("b.TSV", "a.asc", "notes.txt"):
        (tmp_path / name).write_text("rows\n")
    (tmp_path / "processed").mkdir()
    (tmp_path / "processed" / "old.asc").write_text("rows\n")
    assert [path.name for path in batch_files(tmp_path)] == ["a.asc", "b.TSV"]
    assert batch_files(tmp_path / "missing") == []
    assert batch_source(tmp_path / "a.asc").format == SourceFormat.PKDD99
    assert batch_source(tmp_path / "b.TSV").format == SourceFormat.FIN
    with pytest.raises(SourceError, match="notes.txt: a batch is a PKDD'99 trans file"):
        batch_source(tmp_path / "notes.txt")


def test_a_taken_file_goes_to_processed_and_a_refused_one_to_failed_with_its_reason(tmp_path: Path) -> None:
    clean, refused, again = tmp_path / "a.asc", tmp_path / "b.asc", tmp_path / "a2.asc"
    for path in (clean, refused):
        path.write_text(f"{path.name}\n")
    assert settle(clean) == tmp_path / "processed" / "a.asc"
    moved = settle(refused, "line 2: expected 10 fields, found 3")
    assert moved == tmp_path / "failed" / "b.asc"
    assert (tmp_path / "failed" / "b.asc.reason.txt").read_text() == "line 2: expected 10 fields, found 3\n"
    again.write_text("a.asc again\n")
    renamed = settle(again.rename(tmp_path / "a.asc"))
    assert renamed.parent.name == "processed" and renamed.name.startswith("a.") and renamed.name != "a.asc"
    assert (tmp_path / "processed" / "a.asc").read_text() == "a.asc\n"
