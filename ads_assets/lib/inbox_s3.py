"""The S3 inbox: batch files dropped under an S3 prefix, staged into the local inbox and settled back on S3.

`ADS_INBOX_S3` is `s3://bucket/prefix` (unset: no S3 inbox). The objects directly under the prefix whose names
end in a batch suffix (`.asc`, `.tsv`) are batches; `processed/`, `failed/` and any other folder below it are not
looked into. A batch is downloaded (the version that was listed, nothing newer) into the staging folder `s3/` of
the local inbox (`ADS_INBOX`), under a name that records its bucket and ETag, beside its origin file
(`ads_assets.lib.inbox.origin_file`: bucket, key, version), and is scored like any batch file. When the staged
file settles (`ads_assets.lib.inbox.settle`), its object moves to `<prefix>/processed/`, or to
`<prefix>/failed/` beside a `<name>.reason.txt` object: the bytes that were scored are written there (with
SSE-KMS, like every object ADS writes: `ADS_S3_KMS_KEY_ID`), and the object is deleted only if it is still the
version that was taken (a newer upload under the same key stays, and is a new batch). Endpoint, region and
credentials are those of `ads_assets.lib.storage` (`ADS_S3_ENDPOINT_URL`, else `AWS_ENDPOINT_URL`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from botocore.exceptions import ClientError

from ads_assets.lib.inbox import FAILED, FORMATS, PROCESSED, inbox_folder, origin_file
from ads_assets.lib.storage import guess_content_type, s3_client, split_s3_uri, sse_kms_put_args

INBOX_S3_VARIABLE = "ADS_INBOX_S3"
STAGING = "s3"
MAX_OBJECTS_PER_TICK = 100
"""How many new objects one look at the prefix stages at most; the rest wait for the next one."""
GONE_OR_REPLACED = frozenset({"PreconditionFailed", "NoSuchKey", "404", "412"})

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class InboxObject:
    """One batch object under the S3 inbox prefix, in the version (ETag and time) it was listed in."""

    bucket: str
    key: str
    etag: str
    modified: str

    @property
    def name(self) -> str:
        return PurePosixPath(self.key).name

    @property
    def version(self) -> str:
        """ETag and upload time: a new upload of the same bytes is a new version."""
        return f"{self.etag}@{self.modified}"

    @property
    def tag(self) -> str:
        """The first 12 hex digits of the ETag."""
        return re.sub(r"[^0-9a-f]", "", self.etag.lower())[:12]

    @property
    def run_key(self) -> str:
        return f"s3://{self.bucket}/{self.key}#{self.version}"

    @property
    def local_name(self) -> str:
        """`s3-<bucket>-<ETag prefix>-<name>`, the staged file's name (characters a file name may hold)."""
        return _UNSAFE.sub("_", f"s3-{self.bucket}-{self.tag}-{self.name}")


@dataclass(frozen=True)
class StagedBatch:
    """A batch object and the local file it was downloaded to."""

    batch: InboxObject
    path: Path


def inbox_prefix() -> tuple[str, str] | None:
    """(bucket, prefix) of `ADS_INBOX_S3`, None when unset; ValueError unless it is an s3:// URI."""
    value = os.environ.get(INBOX_S3_VARIABLE, "").strip()
    if not value:
        return None
    try:
        return split_s3_uri(value)
    except ValueError as error:
        raise ValueError(f"bad {INBOX_S3_VARIABLE} {value!r}: {error}; expected s3://bucket/prefix") from None


def staging_folder() -> Path:
    """The local inbox's `s3/` folder, where batch objects are downloaded to be scored."""
    return inbox_folder() / STAGING


def waiting_objects(client: Any, bucket: str, prefix: str) -> list[InboxObject]:
    """The batch objects directly under `prefix`, in key order."""
    found = []
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{prefix}/" if prefix else "", Delimiter="/"
    )
    for page in pages:
        for item in page.get("Contents", []):
            if PurePosixPath(item["Key"]).suffix.lower() in FORMATS:
                found.append(InboxObject(bucket, item["Key"], item["ETag"], item["LastModified"].isoformat()))
    return sorted(found, key=lambda batch: batch.key)


def take_new(
    client: Any, bucket: str, prefix: str, taken: dict[str, str], staging: Path, limit: int = MAX_OBJECTS_PER_TICK
) -> tuple[list[StagedBatch], dict[str, str]]:
    """Stage the batch objects whose version is not in `taken` (key → version), at most `limit` of them.

    Returns what was staged and the new `taken`: the versions of the objects still under the prefix that were
    taken, now or before (an object settled since is no longer listed and is forgotten).
    """
    waiting = waiting_objects(client, bucket, prefix)
    still_taken = {batch.key: taken[batch.key] for batch in waiting if batch.key in taken}
    staged = []
    for batch in [batch for batch in waiting if taken.get(batch.key) != batch.version][:limit]:
        path = stage(client, batch, staging)
        if path is not None:
            staged.append(StagedBatch(batch, path))
            still_taken[batch.key] = batch.version
    return staged, still_taken


def stage(client: Any, batch: InboxObject, staging: Path) -> Path | None:
    """Download the listed version of the object beside its origin file; None when it was replaced or removed since."""
    staging.mkdir(parents=True, exist_ok=True)
    path = staging / batch.local_name
    partial = path.with_name(f".{path.name}.part")
    try:
        body = client.get_object(Bucket=batch.bucket, Key=batch.key, IfMatch=batch.etag)["Body"]
    except ClientError as error:
        if _gone_or_replaced(error):
            return None
        raise
    with body, partial.open("wb") as handle:
        shutil.copyfileobj(body, handle)
    origin_file(path).write_text(json.dumps(asdict(batch)), encoding="utf-8")
    os.replace(partial, path)
    return path


def settle_object(origin: Path, settled: Path, reason: str | None = None, client: Any | None = None) -> str:
    """Move the object the origin file names to `processed/`, or with a reason to `failed/`; its new URI.

    `settled` is the staged file after it settled: its bytes are what lands on S3. The origin file is removed.
    """
    batch = InboxObject(**json.loads(origin.read_text(encoding="utf-8")))
    client = client or s3_client()
    key = _free_key(client, batch, FAILED if reason else PROCESSED)
    encryption = sse_kms_put_args()
    client.upload_file(
        str(settled), batch.bucket, key, ExtraArgs={"ContentType": guess_content_type(batch.name), **encryption}
    )
    if reason:
        client.put_object(
            Bucket=batch.bucket,
            Key=f"{key}.reason.txt",
            Body=(reason.rstrip("\n") + "\n").encode("utf-8"),
            ContentType="text/plain; charset=utf-8",
            **encryption,
        )
    try:
        client.delete_object(Bucket=batch.bucket, Key=batch.key, IfMatch=batch.etag)
    except ClientError as error:
        if not _gone_or_replaced(error):
            raise
    origin.unlink()
    return f"s3://{batch.bucket}/{key}"


def _free_key(client: Any, batch: InboxObject, folder: str) -> str:
    """`<prefix>/<folder>/<name>`, or `<stem>.<ETag prefix><suffix>` there when that key is already taken."""
    target = PurePosixPath(batch.key).parent / folder
    try:
        client.head_object(Bucket=batch.bucket, Key=str(target / batch.name))
    except ClientError as error:
        if _gone_or_replaced(error):
            return str(target / batch.name)
        raise
    name = PurePosixPath(batch.name)
    return str(target / f"{name.stem}.{batch.tag}{name.suffix}")


def _gone_or_replaced(error: ClientError) -> bool:
    """Whether S3 said the object is not there, or not in the version asked for."""
    return error.response.get("Error", {}).get("Code") in GONE_OR_REPLACED
