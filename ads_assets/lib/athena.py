"""Athena and Glue definitions of the published Parquet tables, written beside them under `{output}/athena/`.

Each published table (`{output}/<table>/month=YYYY-MM/part-0.parquet`) gets `athena/<table>.sql`, one
`CREATE EXTERNAL TABLE IF NOT EXISTS ads.<table>` statement: its columns in Hive types from the table's Arrow
schema, `month` as the string partition key, and partition projection over the months (Athena computes the
partitions from the `month=YYYY-MM` folders, so no `MSCK REPAIR TABLE` or crawler is needed).
`athena/glue_tables.json` holds the same tables as Glue `TableInput` documents (`aws glue create-table
--database-name ads --table-input …`), for catalogs filled without Athena.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ads_assets.lib.detection.selection import LEADERBOARD_PUBLICATION
from ads_assets.lib.publish import MISSING_PUBLICATION, SCORES_PUBLICATION, PublishedTable
from ads_assets.lib.storage import PARTITION_COLUMN, OutputStore

DATABASE = "ads"
ATHENA_FOLDER = "athena"
GLUE_FILE = f"{ATHENA_FOLDER}/glue_tables.json"
PUBLISHED_TABLES = (SCORES_PUBLICATION, MISSING_PUBLICATION, LEADERBOARD_PUBLICATION)
"""Every table ADS publishes to Parquet."""
PARQUET_COMPRESSION = "SNAPPY"
"""The codec of the published files: pyarrow's default, which `OutputStore` writes with."""
PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PROJECTION_FORMAT = "yyyy-MM"
"""The Java date format of the month partitions' values (YYYY-MM)."""

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_INTEGERS = {
    pa.int8(): "tinyint",
    pa.int16(): "smallint",
    pa.int32(): "int",
    pa.int64(): "bigint",
    pa.uint8(): "smallint",
    pa.uint16(): "int",
    pa.uint32(): "bigint",
    pa.uint64(): "decimal(20,0)",
}


def hive_type(data_type: pa.DataType) -> str:
    """The Hive (Athena, Glue) type of an Arrow type; TypeError for one Parquet readers cannot map."""
    if data_type in _INTEGERS:
        return _INTEGERS[data_type]
    if pa.types.is_boolean(data_type):
        return "boolean"
    if pa.types.is_float32(data_type):
        return "float"
    if pa.types.is_float64(data_type):
        return "double"
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return "string"
    if pa.types.is_binary(data_type) or pa.types.is_large_binary(data_type):
        return "binary"
    if pa.types.is_date(data_type):
        return "date"
    if pa.types.is_timestamp(data_type):
        return "timestamp"
    if pa.types.is_decimal(data_type):
        return f"decimal({data_type.precision},{data_type.scale})"
    if pa.types.is_dictionary(data_type):
        return hive_type(data_type.value_type)
    if pa.types.is_map(data_type):
        return f"map<{hive_type(data_type.key_type)},{hive_type(data_type.item_type)}>"
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type) or pa.types.is_fixed_size_list(data_type):
        return f"array<{hive_type(data_type.value_type)}>"
    if pa.types.is_struct(data_type):
        fields = ",".join(f"{column_name(field.name)}:{hive_type(field.type)}" for field in data_type)
        return f"struct<{fields}>"
    raise TypeError(f"no Hive type for the Arrow type {data_type}")


def column_name(name: str) -> str:
    """`name` when Athena takes it as a column name as written (lower-case letters, digits, `_`), else ValueError."""
    if not _NAME.match(name):
        raise ValueError(f"{name!r} is not an Athena column name (lower-case letters, digits and _)")
    return name


@dataclass(frozen=True)
class AthenaTable:
    """A published table as Athena sees it: `ads.<name>`, its Parquet columns, the folder that holds its
    `month=YYYY-MM` partitions (`location`, ending in `/`) and the first month its projection covers."""

    name: str
    schema: pa.Schema
    location: str
    first_month: str

    def columns(self) -> list[tuple[str, str]]:
        """(name, Hive type) of each column the Parquet files hold, in their order; the partition key is not one."""
        return [(column_name(field.name), hive_type(field.type)) for field in self.schema]

    def properties(self) -> dict[str, str]:
        """The table properties: the files' compression and the projection of the month partitions."""
        return {
            "classification": "parquet",
            "parquet.compression": PARQUET_COMPRESSION,
            "projection.enabled": "true",
            f"projection.{PARTITION_COLUMN}.type": "date",
            f"projection.{PARTITION_COLUMN}.format": PROJECTION_FORMAT,
            f"projection.{PARTITION_COLUMN}.range": f"{self.first_month},NOW",
            f"projection.{PARTITION_COLUMN}.interval": "1",
            f"projection.{PARTITION_COLUMN}.interval.unit": "MONTHS",
            "storage.location.template": f"{self.location}{PARTITION_COLUMN}=${{{PARTITION_COLUMN}}}/",
        }

    def ddl(self) -> str:
        """The Athena `CREATE EXTERNAL TABLE IF NOT EXISTS` statement of the table."""
        columns = ",\n".join(f"  `{name}` {type_}" for name, type_ in self.columns())
        properties = ",\n".join(f"  {_quoted(key)}={_quoted(value)}" for key, value in self.properties().items())
        return (
            f"CREATE EXTERNAL TABLE IF NOT EXISTS {DATABASE}.{self.name} (\n{columns}\n)\n"
            f"PARTITIONED BY (`{PARTITION_COLUMN}` string)\n"
            "STORED AS PARQUET\n"
            f"LOCATION {_quoted(self.location)}\n"
            f"TBLPROPERTIES (\n{properties}\n);\n"
        )

    def table_input(self) -> dict[str, Any]:
        """The table as a Glue `TableInput`."""
        return {
            "Name": self.name,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"EXTERNAL": "TRUE", **self.properties()},
            "PartitionKeys": [{"Name": PARTITION_COLUMN, "Type": "string"}],
            "StorageDescriptor": {
                "Columns": [{"Name": name, "Type": type_} for name, type_ in self.columns()],
                "Location": self.location,
                "InputFormat": PARQUET_INPUT_FORMAT,
                "OutputFormat": PARQUET_OUTPUT_FORMAT,
                "Compressed": True,
                "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE, "Parameters": {"serialization.format": "1"}},
            },
        }


def athena_tables(store: OutputStore, tables: Sequence[PublishedTable] = PUBLISHED_TABLES) -> list[AthenaTable]:
    """The Athena tables of `tables` at `store`; their projection starts at the earliest month any of them holds
    (none: an empty list)."""
    months = [month for table in tables for month in store.months(table.name)[:1]]
    if not months:
        return []
    first = min(months)
    return [AthenaTable(table.name, table.schema, f"{store.url(table.name)}/", first) for table in tables]


def write_athena(store: OutputStore, tables: Sequence[PublishedTable] = PUBLISHED_TABLES) -> list[str]:
    """Write `athena/<table>.sql` for each of `tables` and `athena/glue_tables.json`; returns their URLs.

    Nothing is written before a table holds a month.
    """
    found = athena_tables(store, tables)
    if not found:
        return []
    urls = [store.write_text(f"{ATHENA_FOLDER}/{table.name}.sql", table.ddl()) for table in found]
    catalog = {"DatabaseName": DATABASE, "TableInputs": [table.table_input() for table in found]}
    urls.append(store.write_text(GLUE_FILE, json.dumps(catalog, indent=2) + "\n"))
    return urls


def _quoted(text: str) -> str:
    """A single-quoted Hive string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
