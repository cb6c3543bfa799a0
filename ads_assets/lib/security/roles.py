"""The ADS roles in Postgres and what each may do.

- `ads_loader` loads the bank's files: reads and writes the tables of `raw` (the quarantine and load audit too);
- `ads_scorer` scores: reads `raw` and `marts`, reads and writes the tables of `anomaly`;
- `ads_analyst` investigates alerts: reads the masked views of `analyst` (see `ads_assets.lib.security.analyst`)
  and nothing else: not `raw`, `marts`, `anomaly` (scores, models' leaderboards, drift) or `ops`; in
  `ads_private` it may only call the functions the views call (the key table stays the owner's).

Grants are renewed on every call and extended by default privileges to the tables the database owner creates
later in those schemas; PUBLIC loses `CREATE` on schema `public` where the owner may take it away. Roles belong
to the server, not the database, so creating one that exists is no error. A role logs in when it has a password
(`ADS_LOADER_PASSWORD`, `ADS_SCORER_PASSWORD`, `ADS_ANALYST_PASSWORD`, sent to the server as a SCRAM-SHA-256
verifier, never as text) or when the server trusts local connections (the embedded Postgres); otherwise a new
role is NOLOGIN, a group to grant to the bank's own users, and an existing role keeps its login and password.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql

from ads_assets.lib.db import SCRUBBED, PostgresTarget
from ads_assets.lib.metrics import OPS_SCHEMA
from ads_assets.lib.security.analyst import ANALYST_FUNCTIONS, ANALYST_SCHEMA, PRIVATE_SCHEMA

LOADER, SCORER, ANALYST, ADMIN = "loader", "scorer", "analyst", "admin"
ROLE_NAMES = {LOADER: "ads_loader", SCORER: "ads_scorer", ANALYST: "ads_analyst"}
PASSWORD_VARIABLES = {role: f"ADS_{role.upper()}_PASSWORD" for role in ROLE_NAMES}
RAW, MARTS, ANOMALY = "raw", "marts", "anomaly"
WRITE = ("SELECT", "INSERT", "UPDATE", "DELETE")
READ = ("SELECT",)
TABLE_GRANTS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    LOADER: ((RAW, WRITE),),
    SCORER: ((RAW, READ), (MARTS, READ), (ANOMALY, WRITE)),
    ANALYST: ((ANALYST_SCHEMA, READ),),
}
"""Per role, the schemas whose tables it may use, and how."""
ADS_SCHEMAS = (RAW, "staging", "intermediate", MARTS, "analytics", ANOMALY, "quality", OPS_SCHEMA, PRIVATE_SCHEMA)
ALL_SCHEMAS = (*ADS_SCHEMAS, ANALYST_SCHEMA, "public")


@dataclass
class RolesReport:
    """What `ensure_roles` did: the roles that exist, those that log in, and why roles were left alone."""

    roles: list[str] = field(default_factory=list)
    login: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def role_passwords() -> dict[str, str | None]:
    """The password of each role from the environment (None where unset)."""
    return {role: os.environ.get(variable) or None for role, variable in PASSWORD_VARIABLES.items()}


def ensure_roles(
    connection: psycopg.Connection, passwords: Mapping[str, str | None] | None = None, trusted_local: bool = False
) -> RolesReport:
    """Create the three roles when missing, set their login, and grant each its privileges on this database.

    `passwords` defaults to `role_passwords()`; `trusted_local`: the server lets local connections in without a
    password (the embedded Postgres), so every role logs in. Without the right to create roles (neither
    superuser nor CREATEROLE) only existing roles get their grants. Runs in one transaction.
    """
    passwords = role_passwords() if passwords is None else passwords
    report = RolesReport()
    with connection.transaction(), connection.cursor() as cursor:
        may_create = cursor.execute(
            "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        existing = {name for (name,) in cursor.execute("SELECT rolname FROM pg_roles").fetchall()}
        for role, name in ROLE_NAMES.items():
            if may_create and may_create[0]:
                _create_role(cursor, connection, name, passwords.get(role), trusted_local, report)
            elif name not in existing:
                report.notes.append(f"role {name} not created: {_current_user(cursor)} may not create roles")
                continue
            report.roles.append(name)
        _grant(cursor, report.roles)
    return report


def _current_user(cursor: psycopg.Cursor) -> str:
    row = cursor.execute("SELECT current_user").fetchone()
    return str(row[0]) if row else "the current user"


def _create_role(
    cursor: psycopg.Cursor,
    connection: psycopg.Connection,
    name: str,
    password: str | None,
    trusted_local: bool,
    report: RolesReport,
) -> None:
    role = sql.Identifier(name)
    cursor.execute(
        sql.SQL(
            "DO $$ BEGIN CREATE ROLE {} NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        ).format(role)
    )
    if password:
        verifier = connection.pgconn.encrypt_password(password.encode(), name.encode(), b"scram-sha-256")
        cursor.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(role, sql.Literal(verifier.decode())))
        report.login.append(name)
    elif trusted_local:
        cursor.execute(sql.SQL("ALTER ROLE {} LOGIN").format(role))
        report.login.append(name)
    elif cursor.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (name,)).fetchone() == (True,):
        report.login.append(name)


def _grant(cursor: psycopg.Cursor, roles: list[str]) -> None:
    present = {
        name
        for (name,) in cursor.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", (list(ALL_SCHEMAS),)
        ).fetchall()
    }
    database = cursor.execute("SELECT current_database()").fetchone()
    _restrict_public(cursor, present)
    for role, name in ROLE_NAMES.items():
        if name not in roles:
            continue
        grantee = sql.Identifier(name)
        if database:
            cursor.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database[0]), grantee))
        granted = dict(TABLE_GRANTS[role])
        for schema in sorted(present):
            target = sql.Identifier(schema)
            cursor.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(target, grantee))
            if schema not in granted:
                cursor.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(target, grantee))
                cursor.execute(
                    sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} REVOKE ALL ON TABLES FROM {}").format(
                        target, grantee
                    )
                )
                continue
            privileges = sql.SQL(", ").join(map(sql.SQL, granted[schema]))
            cursor.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(target, grantee))
            cursor.execute(sql.SQL("GRANT {} ON ALL TABLES IN SCHEMA {} TO {}").format(privileges, target, grantee))
            cursor.execute(
                sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT {} ON TABLES TO {}").format(
                    target, privileges, grantee
                )
            )
            if "INSERT" in granted[schema]:
                cursor.execute(sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA {} TO {}").format(target, grantee))
                cursor.execute(
                    sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT USAGE ON SEQUENCES TO {}").format(
                        target, grantee
                    )
                )
    if ROLE_NAMES[ANALYST] in roles and PRIVATE_SCHEMA in present:
        private, analyst = sql.Identifier(PRIVATE_SCHEMA), sql.Identifier(ROLE_NAMES[ANALYST])
        cursor.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(private, analyst))
        for function in ANALYST_FUNCTIONS:
            cursor.execute(sql.SQL("GRANT EXECUTE ON FUNCTION {}.{} TO {}").format(private, sql.SQL(function), analyst))


def _restrict_public(cursor: psycopg.Cursor, present: set[str]) -> None:
    """Take from PUBLIC `CREATE` on schema `public` (where the current user owns it) and the private functions."""
    owns_public = cursor.execute(
        "SELECT pg_has_role(current_user, nspowner, 'USAGE') FROM pg_namespace WHERE nspname = 'public'"
    ).fetchone()
    if owns_public and owns_public[0]:
        cursor.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    if PRIVATE_SCHEMA in present:
        private = sql.Identifier(PRIVATE_SCHEMA)
        cursor.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(private))
        cursor.execute(sql.SQL("REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {} FROM PUBLIC").format(private))
        cursor.execute(
            sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC").format(private)
        )


def role_target(target: PostgresTarget, role: str, passwords: Mapping[str, str | None] | None = None) -> PostgresTarget:
    """Where `role` (loader, scorer, analyst, or admin: the database owner ADS runs as) connects to `target`."""
    if role == ADMIN:
        return target
    passwords = role_passwords() if passwords is None else passwords
    return replace(target, user=ROLE_NAMES[role], password=passwords.get(role))


def connection_url(target: PostgresTarget, show_password: bool = False) -> str:
    """`target` as a libpq URL, each part percent-encoded (`postgresql://user@/db?host=/socket/dir&port=5432` for a
    socket directory), its TLS settings in the query and its password `***` unless `show_password`."""
    secret = quote(target.password, safe="") if show_password else SCRUBBED
    userinfo = quote(target.user, safe="") + (f":{secret}" if target.password else "")
    query = {"host": target.host, "port": str(target.port)} if target.is_socket else {}
    query |= {
        name: value for name, value in (("sslmode", target.sslmode), ("sslrootcert", target.sslrootcert)) if value
    }
    host = "" if target.is_socket else (f"[{target.host}]" if ":" in target.host else quote(target.host, safe=""))
    authority = f"{host}:{target.port}" if host else ""
    encoded = urlencode(query, quote_via=quote, safe="/")
    return f"postgresql://{userinfo}@{authority}/{quote(target.dbname, safe='')}" + (f"?{encoded}" if encoded else "")
