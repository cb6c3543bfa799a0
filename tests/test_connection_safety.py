"""Connection strings: any character in user, password, host or database reaches Postgres intact, and no
part of a password reaches a message.

The embedded Postgres trusts every local connection, so the password tests add a `local` rule of
scram-sha-256 authentication for one role of their own to the session server's pg_hba.conf (and take it
out afterwards): that role's connections over the Unix socket check its password for real.
"""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from ads_assets.environment import _prepare_dagster_home, check_database_url, check_postgres, shown_url
from ads_assets.lib.db import DatabaseUrlError, PostgresTarget, connect, redacted_url, scrub, split_url
from ads_assets.settings import Settings, SettingsError
from tests.end_to_end import ads

PASSWORD = "Zq7@Kx9/Wm4:Pv2%40Yt6'Hb3\"Nc8\\Ld5=Fj1 Rg0' host=/nowhere port=1 dbname=Qe4"
"""A password with `@ / : % ' " \\ =`, spaces and libpq keywords; its pieces are tokens no message holds."""
WRONG = "Jx3@Tq8/Vn5:Bw2%41Ku7'Dy6\"Gs9\\Mp4=Ha2 Co1' host=/elsewhere"
TOKENS = re.compile(r"[A-Z][a-z][0-9]")


def tokens(secret: str) -> list[str]:
    """The 3-character pieces of a test password: none of them may appear in a message."""
    return TOKENS.findall(secret)


def assert_no_part(message: str, secret: str) -> None:
    leaked = [token for token in tokens(secret) if token in message]
    assert not leaked, f"{leaked} of the password in: {message}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class PasswordRole:
    """A role that logs in with `PASSWORD` (checked: scram-sha-256) and owns database `target.dbname`."""

    target: PostgresTarget

    def url(self, password: str | None = None, encode: bool = True) -> str:
        """A URL of the role's database with `password` percent-encoded, or written raw but for its `%`."""
        password = PASSWORD if password is None else password
        secret = quote(password, safe="") if encode else password.replace("%", "%25")
        query = f"host={quote(self.target.host, safe='/')}&port={self.target.port}"
        return f"postgresql://{quote(self.target.user, safe='')}:{secret}@/{quote(self.target.dbname, safe='')}?{query}"


@pytest.fixture(scope="module")
def password_role(postgres_target: PostgresTarget) -> Iterator[PasswordRole]:
    suffix = uuid.uuid4().hex[:8]
    role, database = f"ads pw:{suffix}@x", f"ads db/{suffix} 'q'"
    with connect(postgres_target, autocommit=True) as connection:
        connection.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(PASSWORD))
        )
        connection.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(role))
        )
        hba = Path(connection.execute("SHOW hba_file").fetchone()[0])
    rules = hba.read_text()
    hba.write_text(f'local all "{role}" scram-sha-256\n{rules}')
    target = replace(postgres_target, user=role, password=PASSWORD, dbname=database)
    try:
        with connect(postgres_target, autocommit=True) as connection:
            connection.execute("SELECT pg_reload_conf()")
        _until_refused(replace(target, password=WRONG))
        yield PasswordRole(target)
    finally:
        hba.write_text(rules)
        with connect(postgres_target, autocommit=True) as connection:
            connection.execute("SELECT pg_reload_conf()")
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
            connection.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _until_refused(target: PostgresTarget, attempts: int = 200) -> None:
    """Wait until the server has reloaded pg_hba.conf: a wrong password is refused."""
    for _ in range(attempts):
        try:
            psycopg.connect(target.conninfo()).close()
        except psycopg.OperationalError as error:
            if "password authentication failed" in str(error):
                return
            raise
    raise AssertionError("the server still trusts the role: pg_hba.conf was not reloaded")


def url_of(user: str, password: str, host: str, port: int, dbname: str) -> str:
    """A postgresql:// URL with every part percent-encoded; a socket directory goes in the query."""
    auth = f"{quote(user, safe='')}:{quote(password, safe='')}"
    database = quote(dbname, safe="")
    if host.startswith("/"):
        return f"postgresql://{auth}@/{database}?host={quote(host, safe='')}&port={port}"
    return f"postgresql://{auth}@{f'[{host}]' if ':' in host else host}:{port}/{database}"


# --- URLs and conninfo ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "host", "port", "dbname", "tls"),
    [
        ("ads user:@/%", "/tmp/socket dir/with 'quote'", 5433, "db/name ?#%'\"", {}),
        ("u", "db.example.com", 6432, "ads", {"sslmode": "require"}),
        ("u", "::1", 5432, "d", {}),
    ],
)
def test_every_part_round_trips_through_url_conninfo_and_sqlalchemy(
    user: str, host: str, port: int, dbname: str, tls: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGSSLMODE", raising=False)
    url = url_of(user, PASSWORD, host, port, dbname)
    target = PostgresTarget.from_url(url)
    assert target == PostgresTarget(host=host, port=port, user=user, password=PASSWORD, dbname=dbname, **tls)

    assert conninfo_to_dict(target.conninfo()) == {
        "host": host,
        "port": str(port),
        "user": user,
        "dbname": dbname,
        "password": PASSWORD,
        **tls,
    }
    parsed = make_url(target.sqlalchemy_url("psycopg2"))
    assert parsed.drivername == "postgresql+psycopg2"
    assert (parsed.username, parsed.password, parsed.database) == (user, PASSWORD, dbname)
    assert (parsed.host or parsed.query["host"], int(parsed.port or parsed.query["port"])) == (host, port)
    assert PostgresTarget.from_url(target.sqlalchemy_url()) == target
    assert target.dbt_profile_env() == {
        "ADS_PG_HOST": host,
        "ADS_PG_PORT": str(port),
        "ADS_PG_USER": user,
        "ADS_PG_PASSWORD": PASSWORD,
        "ADS_PG_DBNAME": dbname,
        **({"PGSSLMODE": tls["sslmode"]} if tls else {}),
    }
    for shown in (target.describe(), shown_url(url), redacted_url(target.sqlalchemy_url())):
        assert_no_part(shown, PASSWORD)


def test_url_parts_are_percent_decoded_once_and_a_raw_password_may_hold_any_character() -> None:
    assert split_url("postgresql://u:p%2540ss@h/db").password == "p%40ss"
    assert split_url("postgresql://u:p%40ss@h/db").password == "p@ss"
    raw = split_url("postgresql://u:p@ss/w:rd' host=evil?x@db.example.com:5433/ads")
    assert (raw.user, raw.password, raw.host, raw.port, raw.dbname) == (
        "u",
        "p@ss/w:rd' host=evil?x",
        "db.example.com",
        5433,
        "ads",
    )
    assert split_url("postgresql://h/db?host=%2Frun%2Fpg%20sock&port=5444&user=a%40b").host == "/run/pg sock"
    assert PostgresTarget.from_url("postgresql://postgres:@/postgres?host=/tmp/s").password is None


def test_a_password_holding_libpq_keywords_changes_no_other_part() -> None:
    injected = "x' host=/nowhere port=1 user=root dbname=evil sslmode=disable x"
    target = PostgresTarget(host="db.example.com", port=5432, user="ads", password=injected, dbname="ads")
    assert conninfo_to_dict(target.conninfo()) == {
        "host": "db.example.com",
        "port": "5432",
        "user": "ads",
        "dbname": "ads",
        "password": injected,
    }
    assert make_url(target.sqlalchemy_url()).host == "db.example.com"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://u:{PASSWORD}@127.0.0.1:notaport/db",
        f"postgresql://u:{quote(PASSWORD, safe='')}@h1,h2/db",
        f"postgresql://u:{quote(PASSWORD, safe='')}%ff@h/db",
        f"postgresql://u:{PASSWORD}@[::1/db",
        f"postgresql://u@h/db?password={quote(PASSWORD, safe='')}&port=x",
        f"mysql://u:{PASSWORD}@h/db",
    ],
)
def test_an_unreadable_url_is_refused_without_any_part_of_its_password(url: str) -> None:
    with pytest.raises(SettingsError) as refused:
        check_database_url(url)
    message = str(refused.value)
    assert message.startswith("ADS_DATABASE_URL ") and "\n" not in message
    assert_no_part(message, PASSWORD)
    with pytest.raises(DatabaseUrlError) as error:
        PostgresTarget.from_url(url)
    assert_no_part(str(error.value), PASSWORD)


def test_scrub_removes_every_written_form_of_a_password() -> None:
    forms = [PASSWORD, quote(PASSWORD, safe=""), PASSWORD.replace("\\", "\\\\").replace("'", "\\'"), repr(PASSWORD)]
    message = scrub(" | ".join(f"password {form} failed" for form in forms), PASSWORD)
    assert_no_part(message, PASSWORD)
    assert message.count("password *** failed") >= len(forms) - 1


# --- a real role with a password ----------------------------------------------------------------------


def test_a_role_with_that_password_connects_through_psycopg_sqlalchemy_and_dagster(
    password_role: PasswordRole, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = password_role.target
    for url in (password_role.url(), password_role.url(encode=False)):
        target = check_database_url(url)
        assert target == expected
        with connect(target) as connection:
            assert connection.execute("SELECT current_user, current_database()").fetchone() == (
                expected.user,
                expected.dbname,
            )
    engine = create_engine(expected.sqlalchemy_url("psycopg2"), poolclass=NullPool)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT current_user")).scalar() == expected.user

    import dagster as dg

    for name in ("DAGSTER_HOME", "ADS_DAGSTER_STORAGE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ADS_HOME", str(tmp_path / "home"))
    _prepare_dagster_home(Settings.from_env(), expected)
    written = (tmp_path / "home" / "dagster" / "dagster.yaml").read_text()
    assert_no_part(written, PASSWORD)
    with dg.DagsterInstance.get() as instance:
        assert instance.get_runs() == []
    with connect(expected) as connection:
        owner = connection.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'runs'").fetchone()
    assert owner == (expected.user,)


def test_dbt_connects_as_that_role(
    password_role: PasswordRole, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dbt.cli.main import dbtRunner

    from tests.marts import DBT_PROJECT

    for name, value in password_role.target.dbt_profile_env().items():
        monkeypatch.setenv(name, value)
    folders = ["--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT), "--log-path", str(tmp_path)]
    result = dbtRunner().invoke(["debug", "--connection", *folders])
    assert result.success and result.result is True, result.exception
    logs = "".join(path.read_text() for path in tmp_path.rglob("*.log"))
    assert "Connection 'debug' was properly closed" in logs
    assert_no_part(logs, PASSWORD)


def test_a_refused_password_is_named_in_no_message(password_role: PasswordRole) -> None:
    wrong = password_role.url(WRONG)
    with pytest.raises(SettingsError) as refused:
        check_database_url(wrong)
    message = str(refused.value)
    assert "password authentication failed" in message and "\n" not in message
    assert_no_part(message, WRONG)
    assert_no_part(message, PASSWORD)
    with pytest.raises(SettingsError) as scrubbed:
        check_postgres(replace(password_role.target, password=WRONG), "the test database")
    assert_no_part(str(scrubbed.value), WRONG)


def test_ads_run_prints_one_line_and_no_part_of_the_password_when_refused(tmp_path: Path) -> None:
    port = free_port()
    urls = {
        "raw": f"postgresql://ads:{WRONG}@127.0.0.1:{port}/ads",
        "encoded": f"postgresql://ads:{quote(WRONG, safe='')}@127.0.0.1:{port}/ads",
    }
    for name, url in urls.items():
        result = ads(
            "run",
            "--source",
            str(tmp_path / "no_source"),
            "--output",
            str(tmp_path / "out"),
            home=tmp_path / f"home_{name}",
            env={"ADS_DATABASE_URL": url},
            timeout=120,
        )
        message = result.stderr.strip()
        assert result.returncode == 2, result.stdout + result.stderr
        assert message.startswith("ads: error: cannot connect to ADS_DATABASE_URL postgresql://ads:***@127.0.0.1:")
        assert "\n" not in message and "Connection refused" in message
        assert_no_part(result.stdout + result.stderr, WRONG)
        logs = "".join(path.read_text() for path in (tmp_path / f"home_{name}").rglob("*.log"))
        assert_no_part(logs, WRONG)


def test_a_source_url_with_a_refused_password_is_named_without_it(tmp_path: Path) -> None:
    from ads_assets.environment import check_source
    from ads_assets.lib.berka.formats import SourceError

    url = f"postgresql://ads:{quote(WRONG, safe='')}@127.0.0.1:{free_port()}/bank"
    with pytest.raises(SourceError) as refused:
        check_source(url)
    assert "cannot connect to the source postgresql://ads:***@127.0.0.1" in str(refused.value)
    assert_no_part(str(refused.value), WRONG)


def test_tls_settings_of_the_url_reach_every_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """sslmode and sslrootcert in ADS_DATABASE_URL reach psycopg, SQLAlchemy (Dagster's storage, GX) and dbt."""
    monkeypatch.delenv("PGSSLMODE", raising=False)
    url = "postgresql://ads:pw@db.example.com:5432/ads?sslmode=verify-full&sslrootcert=%2Fetc%2Fssl%2Frds.pem"
    target = PostgresTarget.from_url(url)
    assert (target.sslmode, target.sslrootcert) == ("verify-full", "/etc/ssl/rds.pem")
    conninfo = conninfo_to_dict(target.conninfo())
    assert (conninfo["sslmode"], conninfo["sslrootcert"]) == ("verify-full", "/etc/ssl/rds.pem")
    storage = make_url(target.sqlalchemy_url())
    assert storage.query == {"sslmode": "verify-full", "sslrootcert": "/etc/ssl/rds.pem"}
    environment = target.dbt_profile_env()
    assert (environment["PGSSLMODE"], environment["PGSSLROOTCERT"]) == ("verify-full", "/etc/ssl/rds.pem")


def tls_of_every_client(target: PostgresTarget) -> tuple[str | None, str | None, str | None]:
    """The sslmode that psycopg's conninfo, the SQLAlchemy URL (Dagster's storage, GX) and dbt's environment carry."""
    return (
        conninfo_to_dict(target.conninfo()).get("sslmode"),
        make_url(target.sqlalchemy_url()).query.get("sslmode"),
        target.dbt_profile_env().get("PGSSLMODE"),
    )


@pytest.mark.parametrize(
    "host",
    ["db.example.com", "ads-db.xxxx.eu-central-1.rds.amazonaws.com", "10.0.0.5", "[2001:db8::1]", "localhost.evil.com"],
)
def test_a_server_off_this_machine_requires_tls_by_default(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGSSLMODE", raising=False)
    target = PostgresTarget.from_url(f"postgresql://ads:pw@{host}:5432/ads")
    assert target.sslmode == "require"
    assert tls_of_every_client(target) == ("require", "require", "require")
    assert PostgresTarget.from_url(target.sqlalchemy_url()) == target


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres:@/postgres?host=/tmp/pgserver-socket",
        "postgresql://ads@localhost:5432/ads",
        "postgresql://ads@LOCALHOST/ads",
        "postgresql://ads@127.0.0.1:5432/ads",
        "postgresql://ads@127.0.0.53/ads",
        "postgresql://ads@[::1]:5432/ads",
        "postgresql:///ads",
    ],
)
def test_a_local_server_keeps_libpq_defaults(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGSSLMODE", "verify-full")
    target = PostgresTarget.from_url(url)
    assert target.sslmode is None
    assert tls_of_every_client(target) == (None, None, None)


def test_the_url_or_pgsslmode_overrides_the_tls_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGSSLMODE", raising=False)
    disabled = PostgresTarget.from_url("postgresql://ads:pw@db.example.com/ads?sslmode=disable")
    assert tls_of_every_client(disabled) == ("disable", "disable", "disable")
    verified = PostgresTarget.from_url("postgresql+psycopg2://ads:pw@db.example.com/ads?sslmode=verify-ca")
    assert tls_of_every_client(verified) == ("verify-ca", "verify-ca", "verify-ca")
    monkeypatch.setenv("PGSSLMODE", "allow")
    from_environment = PostgresTarget.from_url("postgresql://ads:pw@db.example.com/ads")
    assert tls_of_every_client(from_environment) == ("allow", "allow", "allow")
    assert PostgresTarget.from_url("postgresql://ads:pw@db.example.com/ads?sslmode=require").sslmode == "require"
