"""Postgres for ADS: an embedded pgserver instance in ADS_HOME, or an external server by URL.

A server off this machine is reached over TLS: its URL gets `sslmode=require` unless the URL's `sslmode`, or
else libpq's PGSSLMODE, says otherwise (see `default_sslmode`). A local server (a Unix socket, `localhost`, a
loopback address), the embedded one among them, keeps libpq's default.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import threading
import uuid
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote

import psycopg

_servers: dict[Path, Any] = {}
_servers_lock = threading.Lock()
"""Held around every pgserver call of this process: pgserver's own lock is a file lock that threads cannot share."""


URL_EXAMPLE = "postgresql://user:password@host:5432/db"
_SCHEME = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.\-]*)://(.*?)\s*$", re.DOTALL)
_POSTGRES_SCHEME = re.compile(r"^postgres(?:ql)?(?:\+\w+)?$", re.IGNORECASE)
_URL_HOST = re.compile(r"^(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)$")
"""A host a SQLAlchemy URL can carry as its host part; any other goes in its query (`?host=`)."""
_QUERY_KEYS = frozenset({"host", "port", "user", "password", "dbname", "sslmode", "sslrootcert"})
_SECRET_DELIMITERS = re.compile(r"""[@/:?#&=%'"\\\s]+""")
SCRUBBED = "***"
REMOTE_SSLMODE = "require"
"""The sslmode of a server off this machine whose URL names none (and PGSSLMODE is unset)."""
SSLMODE_VARIABLE = "PGSSLMODE"


class DatabaseUrlError(ValueError):
    """A database URL that cannot be read; the message never holds the URL's password."""


@dataclass(frozen=True)
class UrlParts:
    """A database URL's parts, each percent-decoded once (None where the URL has none)."""

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str | None = None
    port: int | None = None
    dbname: str | None = None
    sslmode: str | None = None
    sslrootcert: str | None = None

    @property
    def is_postgres(self) -> bool:
        return bool(_POSTGRES_SCHEME.match(self.scheme))


def _decoded(text: str, part: str) -> str:
    try:
        value = unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise DatabaseUrlError(f"the {part} of the URL is not percent-encoded UTF-8") from None
    if "\x00" in value:
        raise DatabaseUrlError(f"the {part} of the URL holds a NUL byte")
    return value


def _port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 0 < int(text) < 65536:
        raise DatabaseUrlError("bad port in the URL: expected a number from 1 to 65535")
    return int(text)


def split_url(url: str) -> UrlParts:
    """The parts of a `scheme://user:password@host:port/dbname?host=…&port=…` URL, percent-decoded once.

    The user and password end at the last `@`, so the password may hold any character, raw or
    percent-encoded (`%25` for a `%` followed by two hex digits); the user ends at the first `:`. An `@`
    in the host, database or query must be written `%40`. The query's `host`, `port`, `user`, `password`
    and `dbname` (libpq's names) win over the same parts before it; `sslmode` and `sslrootcert` are kept, other
    query keys ignored. A `+` in
    the query is a space when the scheme names a driver (`postgresql+psycopg2://`, SQLAlchemy's form, whose
    query is form-encoded), else a `+` (libpq's form).
    Raises DatabaseUrlError, whose message holds no part of the password.
    """
    match = _SCHEME.match(url)
    if not match:
        raise DatabaseUrlError(f"not a database URL: expected {URL_EXAMPLE}")
    scheme, rest = match.groups()
    parts: dict[str, Any] = {}
    at = rest.rfind("@")
    if at >= 0 and not rest.startswith(("/", "?")):
        user, colon, password = rest[:at].partition(":")
        parts["user"] = _decoded(user, "user")
        parts["password"] = _decoded(password, "password") if colon else None
        rest = rest[at + 1 :]
    ends = [index for index in (rest.find("/"), rest.find("?")) if index >= 0]
    authority, tail = rest[: min(ends, default=len(rest))], rest[min(ends, default=len(rest)) :]
    if "," in authority:
        raise DatabaseUrlError("the URL names several hosts: ADS connects to one")
    if authority.startswith("["):
        host, bracket, port = authority[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            raise DatabaseUrlError("bad IPv6 host in the URL: expected [address]:port")
        port = port[1:]
    else:
        host, _, port = authority.partition(":")
    parts["host"] = _decoded(host, "host") if host else None
    parts["port"] = _port(port) if port else None
    path, _, query = tail.partition("?")
    if path.startswith("/") and len(path) > 1:
        parts["dbname"] = _decoded(path[1:], "database name")
    sqlalchemy_form = "+" in scheme
    for pair in query.split("&") if query else ():
        key, _, value = pair.partition("=")
        if sqlalchemy_form:
            key, value = key.replace("+", " "), value.replace("+", " ")
        name = _decoded(key, "query")
        if name == "port":
            parts["port"] = _port(_decoded(value, "port"))
        elif name in _QUERY_KEYS:
            parts[name] = _decoded(value, name)
    return UrlParts(scheme=scheme, **parts)


def url_secrets(url: str) -> list[str]:
    """The password of `url` as it is written there and decoded (to scrub from messages); none when unreadable."""
    match = _SCHEME.match(url)
    if not match:
        return []
    rest = match.group(2)
    at = rest.rfind("@")
    secrets = []
    if at >= 0 and not rest.startswith(("/", "?")):
        secrets.append(rest[:at].partition(":")[2])
    secrets += [
        value
        for key, _, value in (pair.partition("=") for pair in rest.partition("?")[2].split("&"))
        if key == "password"
    ]
    try:
        decoded = split_url(url).password
    except DatabaseUrlError:
        decoded = None
    return [secret for secret in (*secrets, decoded) if secret]


def redacted_url(url: str) -> str:
    """`url` for messages: its password replaced by `***` (the query dropped when the URL cannot be read)."""
    try:
        parts = split_url(url)
    except DatabaseUrlError:
        match = _SCHEME.match(url)
        if not match:
            return f"{SCRUBBED}@{url.rpartition('@')[2]}" if "@" in url else url.strip()
        scheme, rest = match.groups()
        rest = rest.partition("?")[0]
        if "@" in rest and not rest.startswith("/"):
            return f"{scheme}://{SCRUBBED}@{rest[rest.rfind('@') + 1 :]}"
        authority, slash, path = rest.partition("/")
        if ":" in authority:  # a port that is no port may be a password written without its `@`
            authority = f"{authority.partition(':')[0]}:{SCRUBBED}"
        return f"{scheme}://{authority}{slash}{path}"
    userinfo = ""
    if parts.user is not None:
        userinfo = quote(parts.user, safe="") + (f":{SCRUBBED}" if parts.password else "") + "@"
    elif parts.password:
        userinfo = f":{SCRUBBED}@"
    host = parts.host or ""
    query = ""
    if host.startswith("/") or not _URL_HOST.match(host or "x"):
        query, host = f"?host={quote(host, safe='/')}", ""
    elif ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port and not query else ""
    if query and parts.port:
        query += f"&port={parts.port}"
    dbname = "/" + quote(parts.dbname, safe="") if parts.dbname else ""
    return f"{parts.scheme}://{userinfo}{host}{port}{dbname}{query}"


def secret_forms(secret: str) -> list[str]:
    """The ways `secret` can appear in a message: raw, percent-encoded, libpq-quoted, repr'd, and its pieces
    between URL and conninfo delimiters (4 characters or more), longest first."""
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote(secret, safe=" +"),
        quote_plus(secret),
        re.sub(r"[:@/]", lambda match: f"%{ord(match.group()):02X}", secret),
        secret.replace("\\", "\\\\").replace("'", "\\'"),
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
    }
    forms |= {piece for piece in _SECRET_DELIMITERS.split(secret) if len(piece) >= 4}
    return sorted((form for form in forms if form), key=len, reverse=True)


def scrub(text: str, *secrets: str | None) -> str:
    """`text` with every form of each secret (see `secret_forms`) replaced by `***`."""
    for secret in secrets:
        if secret:
            for form in secret_forms(secret):
                text = text.replace(form, SCRUBBED)
    return text


def is_local_host(host: str) -> bool:
    """Whether libpq's `host` is on this machine: a Unix socket (a directory, or `@` and an abstract name),
    `localhost`, or a loopback address (127.0.0.0/8, ::1)."""
    if host.startswith(("/", "@")) or host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_sslmode(host: str) -> str | None:
    """The sslmode of a connection to `host` whose URL names none: None (libpq's default) for a local server;
    for any other, PGSSLMODE when set, else `require`."""
    if is_local_host(host):
        return None
    return os.environ.get(SSLMODE_VARIABLE) or REMOTE_SSLMODE


@dataclass(frozen=True)
class PostgresTarget:
    """Where a Postgres database is; `host` is a socket directory for the embedded server."""

    host: str
    port: int
    user: str
    password: str | None
    dbname: str
    sslmode: str | None = None
    """libpq's sslmode (`require`, `verify-full`, `disable`, …); None: libpq's default (PGSSLMODE, else `prefer`)."""
    sslrootcert: str | None = None
    """The CA certificate file that `verify-ca` and `verify-full` check the server's certificate against."""

    @classmethod
    def from_url(cls, url: str) -> PostgresTarget:
        """The target of a `postgresql://` URL (see `split_url`); raises DatabaseUrlError.

        Without `sslmode` in the URL, a server off this machine gets `default_sslmode`: TLS required.
        """
        parts = split_url(url)
        if not parts.is_postgres:
            raise DatabaseUrlError(f"not a Postgres URL: expected {URL_EXAMPLE}")
        host = parts.host or "localhost"
        return cls(
            host=host,
            port=parts.port or 5432,
            user=parts.user or "postgres",
            password=parts.password or None,
            dbname=parts.dbname or "postgres",
            sslmode=parts.sslmode or default_sslmode(host),
            sslrootcert=parts.sslrootcert,
        )

    def dbt_profile_env(self) -> dict[str, str]:
        """The ADS_PG_* variables the dbt profile (dbt_project/profiles.yml) reads to reach this database.

        dbt renders each value whole into its field, so no character needs escaping.
        """
        return {
            "ADS_PG_HOST": self.host,
            "ADS_PG_PORT": str(self.port),
            "ADS_PG_USER": self.user,
            "ADS_PG_PASSWORD": self.password or "",
            "ADS_PG_DBNAME": self.dbname,
            **self._tls_environment(),
        }

    def _tls_environment(self) -> dict[str, str]:
        """libpq's PGSSLMODE / PGSSLROOTCERT, which dbt's psycopg2 connection reads, for the TLS settings given."""
        return {
            name: value
            for name, value in (("PGSSLMODE", self.sslmode), ("PGSSLROOTCERT", self.sslrootcert))
            if value is not None
        }

    def _tls(self) -> dict[str, str]:
        return {name: value for name, value in (("sslmode", self.sslmode), ("sslrootcert", self.sslrootcert)) if value}

    @property
    def is_socket(self) -> bool:
        return self.host.startswith("/")

    def sqlalchemy_url(self, driver: str = "psycopg2") -> str:
        """A SQLAlchemy URL, every part encoded by SQLAlchemy; psycopg2 by default, which Dagster's storage and
        GX need. A socket directory, or a host no URL host part can carry, goes in the query."""
        from sqlalchemy.engine import URL

        in_query = self.is_socket or not _URL_HOST.match(self.host)
        url = URL.create(
            f"postgresql+{driver}",
            username=self.user,
            password=self.password,
            host=None if in_query else self.host,
            port=None if in_query else self.port,
            database=self.dbname,
            query=({"host": self.host, "port": str(self.port)} if in_query else {}) | self._tls(),
        )
        return url.render_as_string(hide_password=False)

    def conninfo(self) -> str:
        """A libpq keyword string for psycopg, every value quoted and escaped by psycopg."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            "",
            host=self.host,
            port=self.port,
            user=self.user,
            dbname=self.dbname,
            password=self.password,
            **self._tls(),
        )

    def scrub(self, text: str) -> str:
        """`text` without any form of this target's password."""
        return scrub(text, self.password)

    def describe(self) -> str:
        """Where the database is, for messages; never the password."""
        if self.is_socket:
            where = f"socket {self.host}"
        else:
            where = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
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
    cursor.execute(f"SELECT count(*) FROM {table} {where}", params)  # noqa: S608 - callers pass constant table names and a placeholder WHERE, values go as params
    row = cursor.fetchone()
    return int(row[0]) if row else 0
