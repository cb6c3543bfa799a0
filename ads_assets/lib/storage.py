"""Where ADS writes files: a local folder or an S3 prefix, and Parquet tables in Hive layout on either.

A root is a local folder (`./ads_output`) or `s3://bucket/prefix`. On S3 the endpoint comes from
`ADS_S3_ENDPOINT_URL`, else `AWS_ENDPOINT_URL` (unset: AWS itself), and the region from `AWS_REGION`,
else `AWS_DEFAULT_REGION`, else us-east-1; credentials follow the usual AWS chain. Objects are written
with boto3 (Parquet is encoded in memory first) and Parquet is read back with pyarrow datasets. Every object an
`OutputStore` writes on S3, copies included, is encrypted with SSE-KMS: the key of `ADS_S3_KMS_KEY_ID`, else the
AWS-managed key aws/s3.

A month can be published in two phases (`OutputStore.stage_partition`, then `StagedPartition.commit`): the file
is first written under a name every reader skips, and replaces the month's file in one step once the caller
has committed the same rows elsewhere (`ads_assets.lib.publish`).
"""

from __future__ import annotations

import io
import mimetypes
import os
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

S3_SCHEME = "s3://"
S3_ENDPOINT_VARIABLES = ("ADS_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL")
KMS_KEY_VARIABLE = "ADS_S3_KMS_KEY_ID"
"""The setting that names the KMS key of every object ADS writes on S3: published outputs and model files."""
SSE_KMS = "aws:kms"
DEFAULT_REGION = "us-east-1"
PARTITION_COLUMN = "month"
PART_FILE = "part-0.parquet"
SCHEMA_FILE = "_schema.arrow"
STAGED_PREFIX = "_staged-"
STAGED_SUFFIX = ".parquet.tmp"
PUBLICATION_METADATA_KEY = b"ads.publication"
"""The Parquet key-value metadata entry that holds the token of the publication that wrote a month's file."""
PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
UTF8_TYPES = ("text/", "application/json", "application/javascript", "image/svg+xml")

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_TABLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TOKEN = re.compile(r"^[A-Za-z0-9]{1,64}$")
_STAGED = re.compile(rf"^{re.escape(STAGED_PREFIX)}([A-Za-z0-9]{{1,64}}){re.escape(STAGED_SUFFIX)}$")
_PARTITIONING = ds.partitioning(pa.schema([(PARTITION_COLUMN, pa.string())]), flavor="hive")


class SchemaMismatchError(ValueError):
    """A frame, or a requested schema, does not match the schema a table was first written with."""


def s3_endpoint_url() -> str | None:
    """The S3 endpoint to use instead of AWS's: `ADS_S3_ENDPOINT_URL`, else `AWS_ENDPOINT_URL`, else None."""
    for variable in S3_ENDPOINT_VARIABLES:
        if os.environ.get(variable):
            return os.environ[variable]
    return None


def s3_region() -> str:
    """The AWS region: `AWS_REGION`, else `AWS_DEFAULT_REGION`, else us-east-1."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def s3_client(endpoint_url: str | None = None, region: str | None = None) -> Any:
    """A boto3 S3 client on the configured endpoint and region."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url or s3_endpoint_url(), region_name=region or s3_region())


def sse_kms_put_args(kms_key_id: str | None = None) -> dict[str, str]:
    """The S3 write arguments of SSE-KMS encryption under `kms_key_id`, else `ADS_S3_KMS_KEY_ID`, else the
    AWS-managed key aws/s3 (no key id sent)."""
    key_id = kms_key_id or os.environ.get(KMS_KEY_VARIABLE) or None
    return {"ServerSideEncryption": SSE_KMS, **({"SSEKMSKeyId": key_id} if key_id else {})}


def guess_content_type(name: str) -> str:
    """The Content-Type a browser needs for a file, from its extension; UTF-8 for text, octet-stream when unknown."""
    guessed = mimetypes.guess_type(name)[0] or DEFAULT_CONTENT_TYPE
    return f"{guessed}; charset=utf-8" if guessed.startswith(UTF8_TYPES) else guessed


def is_s3(root: str | os.PathLike[str]) -> bool:
    return str(root).startswith(S3_SCHEME)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix/` → ("bucket", "some/prefix")."""
    if not is_s3(uri):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, prefix = uri[len(S3_SCHEME) :].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {uri!r}")
    return bucket, prefix.strip("/")


def clean_key(relpath: str | os.PathLike[str]) -> str:
    """A relative, normalized key below a root; refuses absolute paths, `..` and empty paths."""
    text = str(relpath).replace("\\", "/")
    path = PurePosixPath(text)
    parts = [part for part in path.parts if part not in ("", ".")]
    if path.is_absolute() or not parts or ".." in parts:
        raise ValueError(f"not a relative path below the root: {relpath!r}")
    return "/".join(parts)


class Location(ABC):
    """Files below one root, addressed by relative `/`-separated keys."""

    @abstractmethod
    def url(self, key: str) -> str:
        """Where `key` is, as a file:// or s3:// URL."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The content of `key`; FileNotFoundError when absent."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> str:
        """Create or replace `key` in one step; returns its URL."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove `key`; nothing happens when it is absent."""

    @abstractmethod
    def rename(self, source: str, target: str) -> str:
        """Move `source` to `target`, replacing it: a reader of `target` sees the old or the new content, whole.

        Returns the URL of `target`; FileNotFoundError when `source` is absent.
        """

    @abstractmethod
    def list(self, folder: str = "") -> list[str]:
        """Every key below `folder` (all of them for ""), sorted."""

    @abstractmethod
    def arrow(self, key: str) -> tuple[pafs.FileSystem, str]:
        """A pyarrow filesystem and the path of `key` on it, to read from: writes go through `write_bytes`."""


class LocalLocation(Location):
    """A local folder; writes go to a hidden temporary file renamed into place."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()

    def path(self, key: str) -> Path:
        return self.root / clean_key(key)

    def url(self, key: str) -> str:
        return self.path(key).as_uri()

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def write_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> str:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            temporary.write_bytes(data)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
        return target.as_uri()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def rename(self, source: str, target: str) -> str:
        """`os.replace` within the root: atomic on one filesystem."""
        destination = self.path(target)
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path(source), destination)
        return destination.as_uri()

    def list(self, folder: str = "") -> list[str]:
        base = self.path(folder) if folder else self.root
        if not base.is_dir():
            return []
        return sorted(path.relative_to(self.root).as_posix() for path in base.rglob("*") if path.is_file())

    def arrow(self, key: str) -> tuple[pafs.FileSystem, str]:
        return pafs.LocalFileSystem(), str(self.path(key))


class S3Location(Location):
    """An S3 prefix; `put_args` (e.g. server-side encryption) go with every object written."""

    def __init__(self, uri: str, *, client: Any | None = None, put_args: dict[str, str] | None = None) -> None:
        self.bucket, self.prefix = split_s3_uri(uri)
        self.client = client if client is not None else s3_client()
        self.put_args = dict(put_args or {})
        self._arrow_fs: pafs.S3FileSystem | None = None

    def object_key(self, key: str) -> str:
        key = clean_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def url(self, key: str) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.object_key(key)}"

    def get_object(self, key: str) -> dict[str, Any]:
        """The GetObject response for `key`; FileNotFoundError when absent."""
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(self.url(key)) from error
            raise

    def read_bytes(self, key: str) -> bytes:
        return self.get_object(key)["Body"].read()

    def write_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> str:
        extra = {"ContentType": content_type} if content_type else {}
        self.client.put_object(Bucket=self.bucket, Key=self.object_key(key), Body=data, **self.put_args, **extra)
        return self.url(key)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    def rename(self, source: str, target: str) -> str:
        """A server-side copy to `target`, then the deletion of `source` (objects up to 5 GB).

        S3 has no atomic rename: between the two steps both keys exist, and a crash there leaves `source`
        behind. A reader of `target` still sees either the old object or the new one, whole, as S3 replaces
        an object in one step; the `put_args` (encryption) apply to the copy as to any write.
        """
        from botocore.exceptions import ClientError

        try:
            self.client.copy_object(
                Bucket=self.bucket,
                Key=self.object_key(target),
                CopySource={"Bucket": self.bucket, "Key": self.object_key(source)},
                MetadataDirective="COPY",
                **self.put_args,
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(self.url(source)) from error
            raise
        self.delete(source)
        return self.url(target)

    def list(self, folder: str = "") -> list[str]:
        base = self.object_key(folder) + "/" if folder else (f"{self.prefix}/" if self.prefix else "")
        strip = len(f"{self.prefix}/") if self.prefix else 0
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
            keys.extend(item["Key"][strip:] for item in page.get("Contents", []) if not item["Key"].endswith("/"))
        return sorted(keys)

    def arrow(self, key: str) -> tuple[pafs.FileSystem, str]:
        if self._arrow_fs is None:
            self._arrow_fs = pafs.S3FileSystem(endpoint_override=s3_endpoint_url(), region=s3_region())
        return self._arrow_fs, f"{self.bucket}/{self.object_key(key)}"


def open_location(
    root: str | os.PathLike[str], *, client: Any | None = None, put_args: dict[str, str] | None = None
) -> Location:
    """The Location of a local folder or of an `s3://bucket/prefix` root."""
    if is_s3(root):
        return S3Location(str(root), client=client, put_args=put_args)
    return LocalLocation(root)


def check_month(month: str) -> str:
    if not isinstance(month, str) or not _MONTH.match(month):
        raise ValueError(f"month must be 'YYYY-MM', got {month!r}")
    return month


def check_table(table: str) -> str:
    if not isinstance(table, str) or not _TABLE.match(table):
        raise ValueError(f"table names are letters, digits, '_', '.', '-' (not starting with '_' or '.'): {table!r}")
    return table


class OutputStore:
    """Published outputs below a root: monthly Parquet tables in Hive layout, and static files.

    A table is `{root}/{table}/month=YYYY-MM/part-0.parquet`, one file per month, plus `{table}/_schema.arrow`
    (ignored by Parquet readers), the Arrow schema the table was first written with. Every later month is cast
    to it, so types stay the same in every file, and in empty months, and a frame that does not fit is refused.
    On S3 every object is written with SSE-KMS under `kms_key_id`, else `ADS_S3_KMS_KEY_ID`, else the AWS-managed
    key aws/s3 (see `sse_kms_put_args`).
    """

    def __init__(
        self, root: str | os.PathLike[str], *, client: Any | None = None, kms_key_id: str | None = None
    ) -> None:
        self.root = str(root)
        self.location = open_location(root, client=client, put_args=sse_kms_put_args(kms_key_id))

    def __repr__(self) -> str:
        return f"OutputStore({self.root!r})"

    def url(self, relpath: str) -> str:
        """The file:// or s3:// URL of `relpath` below the root."""
        return self.location.url(relpath)

    def write_text(self, relpath: str, content: str | bytes, *, content_type: str | None = None) -> str:
        """Create or replace a static file (e.g. Data Docs HTML under `quality/`); returns its URL."""
        data = content.encode("utf-8") if isinstance(content, str) else content
        return self.location.write_bytes(relpath, data, content_type=content_type or guess_content_type(relpath))

    def publish_folder(self, folder: Path, relpath: str, *, marker: str) -> list[str]:
        """Make `relpath` below the root hold exactly the files of the local `folder`; returns their keys.

        Each file is written with the Content-Type of its extension, so HTML pages and their styles open in a
        browser; `index.html` files go last, once the pages they link to are there. Files below `relpath` that
        the folder does not hold are removed afterwards. `marker` is a file name the folder holds: a non-empty
        `relpath` without it was not published this way, and is refused rather than overwritten.
        """
        prefix = clean_key(relpath)
        existing = set(self.location.list(prefix))
        if existing and f"{prefix}/{marker}" not in existing:
            raise FileExistsError(f"{self.url(prefix)} holds files that were not published there; not replacing them")
        if not (folder / marker).is_file():
            raise ValueError(f"{folder} has no {marker}; refusing to publish it over {self.url(prefix)}")
        files = sorted(
            (path for path in folder.rglob("*") if path.is_file()), key=lambda path: (path.name == "index.html", path)
        )
        published = []
        for path in files:
            key = f"{prefix}/{path.relative_to(folder).as_posix()}"
            self.location.write_bytes(key, path.read_bytes(), content_type=guess_content_type(path.name))
            published.append(key)
        for key in sorted(existing - set(published)):
            self.location.delete(key)
        return published

    def read_bytes(self, relpath: str) -> bytes:
        """The content of a file below the root."""
        return self.location.read_bytes(relpath)

    def schema(self, table: str) -> pa.Schema | None:
        """The schema the table was first written with (without the `month` column), or None."""
        try:
            data = self.location.read_bytes(f"{check_table(table)}/{SCHEMA_FILE}")
        except FileNotFoundError:
            return None
        return pa.ipc.read_schema(pa.py_buffer(data))

    def months(self, table: str) -> list[str]:
        """The months the table holds, sorted."""
        return sorted({month for month, _ in self._partition_files(table)})

    def write_partition(
        self, table: str, month: str, frame: pd.DataFrame | pa.Table, *, schema: pa.Schema | None = None
    ) -> str:
        """Replace the month's data of `table` with `frame`; returns the URL of the file written.

        The table's schema is `schema` when given, else the stored one, else the frame's own (then every column
        needs a type: give `schema` for a first month without rows). A `month` column in the frame must hold
        only `month` and is dropped: it comes back from the path. The new file is written before the month's
        other files are removed, so a rerun replaces the month and never leaves it missing.
        """
        data = self._encode_partition(table, month, frame, schema, token=None)
        folder = self.month_folder(table, month)
        url = self.location.write_bytes(f"{folder}/{PART_FILE}", data, content_type=PARQUET_CONTENT_TYPE)
        self.remove_all_but(folder, f"{folder}/{PART_FILE}")
        return url

    def stage_partition(
        self,
        table: str,
        month: str,
        frame: pd.DataFrame | pa.Table,
        *,
        schema: pa.Schema | None = None,
        token: str | None = None,
    ) -> StagedPartition:
        """Write the month's new file under a name readers skip; `commit()` makes it the month's data.

        Frames and schemas are taken as by `write_partition`. The file is `_staged-<token>.parquet.tmp` in the
        month's folder, which Parquet readers ignore (a leading `_`, and not `*.parquet`), as do `months` and
        `read_table`; `token` (letters and digits, a new random one by default) names the publication, and
        the file carries it in its Parquet metadata under `PUBLICATION_METADATA_KEY`, as the month's file
        does once committed.
        """
        token = uuid.uuid4().hex if token is None else token
        if not _TOKEN.match(token):
            raise ValueError(f"a publication token is 1 to 64 letters and digits, got {token!r}")
        data = self._encode_partition(table, month, frame, schema, token=token)
        staged = StagedPartition(self, table, month, token)
        self.location.write_bytes(staged.key, data, content_type=PARQUET_CONTENT_TYPE)
        return staged

    def staged_partitions(self, table: str) -> list[StagedPartition]:
        """The staged files of `table` that were neither committed nor discarded (left by a crash), by month."""
        return [
            StagedPartition(self, table, month, match.group(1))
            for month, keys in self.month_keys(table).items()
            for key in keys
            if (match := _STAGED.match(key.rsplit("/", 1)[1]))
        ]

    def month_keys(self, table: str) -> dict[str, list[str]]:
        """Every key in each month folder of `table`, staged and leftover files included, by month."""
        found: dict[str, list[str]] = {}
        for key in self.location.list(check_table(table)):
            parts = key.split("/")
            if len(parts) == 3 and parts[1].startswith(f"{PARTITION_COLUMN}="):
                month = parts[1][len(PARTITION_COLUMN) + 1 :]
                if _MONTH.match(month):
                    found.setdefault(month, []).append(key)
        return dict(sorted(found.items()))

    def month_folder(self, table: str, month: str) -> str:
        """The key of the month's folder: `{table}/month=YYYY-MM`."""
        return f"{check_table(table)}/{PARTITION_COLUMN}={check_month(month)}"

    def delete_month(self, table: str, month: str) -> None:
        """Remove every file of the month's folder: the month's data first, so readers never see half of it."""
        folder = self.month_folder(table, month)
        keys = self.location.list(folder)
        for key in sorted(keys, key=lambda key: key != f"{folder}/{PART_FILE}"):
            self.location.delete(key)

    def _encode_partition(
        self,
        table: str,
        month: str,
        frame: pd.DataFrame | pa.Table,
        schema: pa.Schema | None,
        token: str | None,
    ) -> bytes:
        """The month's Parquet bytes in the table's schema, storing that schema first when the table has none."""
        check_table(table)
        check_month(month)
        stored = self.schema(table)
        if schema is not None and stored is not None and not schema.equals(stored, check_metadata=False):
            raise SchemaMismatchError(
                f"{self.url(table)} was written with schema\n{stored}\nnot\n{schema}\n"
                f"remove the table (drop_table) to change it"
            )
        target = schema if schema is not None else stored
        arrow_table = _to_arrow(_without_month(frame, month, table), target, f"{table} {month}")
        if stored is None:
            self.location.write_bytes(f"{table}/{SCHEMA_FILE}", arrow_table.schema.serialize().to_pybytes())
        if token is not None:
            metadata = dict(arrow_table.schema.metadata or {})
            metadata[PUBLICATION_METADATA_KEY] = token.encode()
            arrow_table = arrow_table.replace_schema_metadata(metadata)
        buffer = io.BytesIO()
        pq.write_table(arrow_table, buffer)
        return buffer.getvalue()

    def remove_all_but(self, folder: str, kept: str) -> None:
        """Remove every file below `folder` except `kept`."""
        for key in self.location.list(folder):
            if key != kept:
                self.location.delete(key)

    def migrate(self, table: str, schema: pa.Schema, upgrade: Callable[[pa.Table], pa.Table]) -> list[str]:
        """Rewrite a table written with another schema into `schema`, month by month through `upgrade`.

        Returns the months rewritten (none when the stored schema already is `schema` or the table does not
        exist). Months are rewritten before the stored schema is replaced, and `upgrade` must accept a month
        already upgraded, so an interrupted migration finishes on the next call.
        """
        stored = self.schema(table)
        if stored is None or stored.equals(schema, check_metadata=False):
            return []
        rewritten = []
        for month, key in self._partition_files(table):
            data = pq.read_table(io.BytesIO(self.location.read_bytes(key)))
            upgraded = _to_arrow(upgrade(data), schema, f"{table} {month}")
            buffer = io.BytesIO()
            pq.write_table(upgraded, buffer)
            self.location.write_bytes(key, buffer.getvalue(), content_type=PARQUET_CONTENT_TYPE)
            rewritten.append(month)
        self.location.write_bytes(f"{table}/{SCHEMA_FILE}", schema.serialize().to_pybytes())
        return rewritten

    def read_table(self, table: str, months: Iterable[str] | None = None) -> pa.Table:
        """The table's rows (all months, or those in `months`) with a `month` string column, month by month."""
        wanted = None if months is None else {check_month(month) for month in months}
        files = [key for month, key in self._partition_files(table) if wanted is None or month in wanted]
        stored = self.schema(table)
        if stored is None and not files:
            raise FileNotFoundError(f"no table {table!r} at {self.url(table)}")
        full_schema = None if stored is None else stored.append(pa.field(PARTITION_COLUMN, pa.string()))
        if not files:
            return full_schema.empty_table()
        filesystem, base = self.location.arrow(table)
        paths = [self.location.arrow(key)[1] for key in files]
        dataset = ds.dataset(
            paths,
            schema=full_schema,
            format="parquet",
            filesystem=filesystem,
            partitioning=_PARTITIONING,
            partition_base_dir=base,
        )
        return dataset.to_table()

    def drop_table(self, table: str) -> None:
        """Remove every file of `table`, its schema included."""
        for key in self.location.list(check_table(table)):
            self.location.delete(key)

    def _partition_files(self, table: str) -> list[tuple[str, str]]:
        """(month, key) of every Parquet file of the table, by month then name; hidden and `_` files skipped."""
        found = []
        for key in self.location.list(check_table(table)):
            parts = key.split("/")
            if len(parts) != 3 or not parts[1].startswith(f"{PARTITION_COLUMN}="):
                continue
            month, name = parts[1][len(PARTITION_COLUMN) + 1 :], parts[2]
            if _MONTH.match(month) and name.endswith(".parquet") and not name.startswith((".", "_")):
                found.append((month, key))
        return sorted(found)


@dataclass(frozen=True)
class StagedPartition:
    """A month's new Parquet file, written under a name readers skip, not yet the month's data.

    `commit()` renames it to the month's `part-0.parquet` (on a local folder `os.replace`, atomic; on S3 a copy
    and a delete, see `S3Location.rename`) and removes the month's other files; `discard()` removes it. A
    reader of the month sees its old file or its new one, whole, never a mix and never neither.
    """

    store: OutputStore
    table: str
    month: str
    token: str

    @property
    def key(self) -> str:
        """The staged file's key: `{table}/month=YYYY-MM/_staged-<token>.parquet.tmp`."""
        return f"{self.store.month_folder(self.table, self.month)}/{STAGED_PREFIX}{self.token}{STAGED_SUFFIX}"

    @property
    def part_key(self) -> str:
        """The key the file gets on commit: the month's `part-0.parquet`."""
        return f"{self.store.month_folder(self.table, self.month)}/{PART_FILE}"

    def commit(self) -> str:
        """Make the staged file the month's data; returns its URL. FileNotFoundError when it is gone."""
        url = self.store.location.rename(self.key, self.part_key)
        self.store.remove_all_but(self.store.month_folder(self.table, self.month), self.part_key)
        return url

    def discard(self) -> None:
        """Remove the staged file; the month keeps the data it had."""
        self.store.location.delete(self.key)


def _without_month(frame: pd.DataFrame | pa.Table, month: str, table: str) -> pd.DataFrame | pa.Table:
    if isinstance(frame, pa.Table):
        if PARTITION_COLUMN not in frame.column_names:
            return frame
        values = set(frame.column(PARTITION_COLUMN).to_pylist())
    else:
        if PARTITION_COLUMN not in frame.columns:
            return frame
        values = set(frame[PARTITION_COLUMN])
    if values - {month}:
        raise ValueError(f"{table} {month}: the month column holds other months: {sorted(map(str, values - {month}))}")
    return frame.drop([PARTITION_COLUMN]) if isinstance(frame, pa.Table) else frame.drop(columns=PARTITION_COLUMN)


def _to_arrow(frame: pd.DataFrame | pa.Table, schema: pa.Schema | None, what: str) -> pa.Table:
    if isinstance(frame, pd.DataFrame):
        if any(name is not None for name in frame.index.names):
            raise ValueError(f"{what}: the frame has a named index {frame.index.names}; reset_index() first")
        columns = [str(column) for column in frame.columns]
    elif isinstance(frame, pa.Table):
        columns = frame.column_names
    else:
        raise TypeError(f"{what}: expected a pandas DataFrame or a pyarrow Table, got {type(frame).__name__}")
    if schema is None:
        table = pa.Table.from_pandas(frame, preserve_index=False) if isinstance(frame, pd.DataFrame) else frame
        untyped = [field.name for field in table.schema if pa.types.is_null(field.type)]
        if untyped:
            raise SchemaMismatchError(f"{what}: columns without a type (no values): {untyped}; pass schema=")
        return table
    missing = [name for name in schema.names if name not in columns]
    extra = [name for name in columns if name not in schema.names]
    if missing or extra:
        raise SchemaMismatchError(f"{what}: columns differ from the table's schema: missing {missing}, extra {extra}")
    try:
        if isinstance(frame, pd.DataFrame):
            return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
        return frame.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as error:
        raise SchemaMismatchError(f"{what}: does not fit the table's schema: {error}") from error
