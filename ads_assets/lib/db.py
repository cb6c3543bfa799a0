"""Postgres for ADS: an embedded pgserver instance in ADS_HOME, or an external server by URL."""

from __future__ import annotations

import threading
import uuid
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

_servers: dict[Path, Any] = {}
_servers_lock = threading.Lock()


@dataclass(frozen=True)
class PostgresTarget:
    """Where a Postgres database is; `host` is a socket directory for the embedded server."""

    host: str
    port: int
    user: str
    password: str | None
    dbname: str

    @classmethod
    def from_url(cls, url: str) -> PostgresTarget:
        parsed = make_url(url)
        host = parsed.host or parsed.query.get("host") or "localhost"
        if isinstance(host, tuple):
            host = host[0]
        return cls(
            host=host,
            port=parsed.port or 5432,
            user=parsed.username or "postgres",
            password=parsed.password or None,
            dbname=parsed.database or "postgres",
        )

    def dbt_profile_env(self) -> dict[str, str]:
        """The ADS_PG_* variables the dbt profile (dbt_project/profiles.yml) reads to reach this database."""
        return {
            "ADS_PG_HOST": self.host,
            "ADS_PG_PORT": str(self.port),
            "ADS_PG_USER": self.user,
            "ADS_PG_PASSWORD": self.password or "",
            "ADS_PG_DBNAME": self.dbname,
        }

    @property
    def is_socket(self) -> bool:
        return self.host.startswith("/")

    def sqlalchemy_url(self, driver: str = "psycopg2") -> str:
        """A SQLAlchemy URL; psycopg2 by default, which Dagster's storage and GX need."""
        auth = self.user if self.password is None else f"{self.user}:{self.password}"
        if self.is_socket:
            return f"postgresql+{driver}://{auth}@/{self.dbname}?host={self.host}&port={self.port}"
        return f"postgresql+{driver}://{auth}@{self.host}:{self.port}/{self.dbname}"

    def conninfo(self) -> str:
        """A libpq keyword string for psycopg."""
        parts = {"host": self.host, "port": self.port, "user": self.user, "dbname": self.dbname}
        if self.password is not None:
            parts["password"] = self.password
        return " ".join(f"{key}='{value}'" for key, value in parts.items())

    def describe(self) -> str:
        where = f"socket {self.host}" if self.is_socket else f"{self.host}:{self.port}"
        return f"postgres database {self.dbname} at {where}"


def embedded_postgres(pgdata: Path) -> PostgresTarget:
    """Start (or attach to) the embedded Postgres server whose data directory is `pgdata`."""
    pgdata = pgdata.resolve()
    with _servers_lock:
        if pgdata not in _servers:
            pgdata.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import pgserver

                _servers[pgdata] = pgserver.get_server(pgdata, cleanup_mode="stop")
        server = _servers[pgdata]
    return PostgresTarget.from_url(server.get_uri())


def resolve_target(database_url: str | None, pgdata: Path) -> PostgresTarget:
    """The external server when a URL is given, else the embedded one."""
    return PostgresTarget.from_url(database_url) if database_url else embedded_postgres(pgdata)


@contextmanager
def connect(target: PostgresTarget, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    with psycopg.connect(target.conninfo(), autocommit=autocommit) as connection:
        yield connection


@contextmanager
def temporary_database(
    server: PostgresTarget, prefix: str = "t", template: str | None = None
) -> Iterator[PostgresTarget]:
    """A new database on `server` (a copy of `template` when given), dropped on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with connect(server, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    try:
        yield replace(server, dbname=name)
    finally:
        with connect(server, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def copy_rows(cursor: psycopg.Cursor, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """COPY rows into `table`; returns how many were written."""
    written = 0
    column_list = ", ".join(columns)
    with cursor.copy(f"COPY {table} ({column_list}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            written += 1
    return written


def table_count(cursor: psycopg.Cursor, table: str, where: str = "", params: Sequence[Any] = ()) -> int:
    cursor.execute(f"SELECT count(*) FROM {table} {where}", params)
    row = cursor.fetchone()
    return int(row[0]) if row else 0
