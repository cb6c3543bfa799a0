"""The ADS roles on a real Postgres: what the loader, scorer and analyst can and cannot read and write, the
analyst's masked views against Python's HMAC, the audit trail, and `ads db-url`."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict

from ads_assets.cli import main
from ads_assets.environment import stop_embedded_postgres
from ads_assets.lib.alerting import AlertEvent, raise_events
from ads_assets.lib.db import PostgresTarget, connect, embedded_postgres
from ads_assets.lib.labels import label_transaction
from ads_assets.lib.raw_schema import ensure_raw_schema
from ads_assets.lib.security.analyst import masking_key, pseudonym, publish_analyst_views
from ads_assets.lib.security.roles import ensure_roles, role_target
from ads_assets.settings import SettingsError
from tests.end_to_end import Built

KEY = b"k" * 40
COUNTERPARTY = "12345678"
FEATURES_DDL = """
CREATE SCHEMA marts;
CREATE TABLE marts.fct_transaction_features (
    trans_id bigint, account_id bigint, trans_date date, client_id bigint, client_age_years int,
    client_district_id int, account_district_id int, transaction_kind text, direction text,
    amount numeric(14, 2), signed_amount numeric(14, 2), counterparty_bank text, counterparty_account text
)
"""
FEATURES = [
    (101, 55, "1997-03-04", 7, 34, 1, 2, "remittance_to_another_bank", "debit", 52000, -52000, "AB", COUNTERPARTY),
    (102, 56, "1997-03-05", 8, 81, 2, 2, "cash_withdrawal", "debit", 9000, -9000, None, None),
    (103, 57, "1997-03-06", 9, 19, 2, 1, "cash_withdrawal", "debit", 100, -100, None, None),
]
REASON = f"first remittance to account {COUNTERPARTY} at bank AB, a payee never paid before"


SCORE_COLUMNS = (
    "trans_id, account_id, trans_date, month, score, is_anomaly, rule_hits, reasons, model_version, scored_at"
)


def scores() -> list[tuple[Any, ...]]:
    reasons = json.dumps({"sentence": REASON, "rules": [{"rule": "new_payee_large", "reason": REASON}]})
    cash = json.dumps({"sentence": "large cash"})
    return [
        (101, 55, "1997-03-04", "1997-03", 0.97, True, ["new_payee_large"], reasons, "v1", "1997-04-01"),
        (102, 56, "1997-03-05", "1997-03", 0.81, True, [], cash, "v1", "1997-04-01"),
        (103, 57, "1997-03-06", "1997-03", 0.10, False, [], None, "v1", "1997-04-01"),
    ]


@pytest.fixture
def secured(fresh_database: PostgresTarget) -> Iterator[PostgresTarget]:
    """A database with hand-built raw, marts and anomaly rows, the analyst views under KEY, and the three roles."""
    with connect(fresh_database) as connection, connection.cursor() as cursor:
        ensure_raw_schema(cursor)
        cursor.execute(
            "INSERT INTO raw.fin_district (district_id, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a13, a14, a16) "
            "VALUES (1, 'Hl.m. Praha', 'Prague', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), "
            "(2, 'Benesov', 'central Bohemia', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)"
        )
        cursor.execute(FEATURES_DDL)
        cursor.executemany(
            "INSERT INTO marts.fct_transaction_features VALUES (" + ", ".join(["%s"] * 13) + ")", FEATURES
        )
        publish_analyst_views(connection, KEY)
        cursor.executemany(
            f"INSERT INTO anomaly.transaction_scores ({SCORE_COLUMNS}) VALUES ({', '.join(['%s'] * 10)})",  # noqa: S608 - the test's constant column list, values go as parameters
            scores(),
        )
        connection.commit()
        raise_events(
            connection,
            [
                AlertEvent(
                    kind="high_severity_anomaly",
                    severity="critical",
                    subject="trans_id 101",
                    message=f"score 0.970 in 1997-03: {REASON}",
                    details={"trans_id": 101, "month": "1997-03", "account_id": 55},
                )
            ],
        )
        ensure_roles(connection, passwords={}, trusted_local=True)
        ensure_roles(connection, passwords={}, trusted_local=True)
    yield fresh_database


def as_role(target: PostgresTarget, role: str) -> psycopg.Connection:
    return psycopg.connect(role_target(target, role, passwords={}).conninfo(), autocommit=True)


def refused(connection: psycopg.Connection, statement: str) -> bool:
    try:
        connection.execute(statement)
    except errors.InsufficientPrivilege:
        return True
    return False


def audit_rows(target: PostgresTarget) -> list[tuple[str, str, str, dict]]:
    with connect(target) as connection:
        return connection.execute("SELECT action, by, db_user, details FROM ops.audit ORDER BY id").fetchall()


def test_sql_hmac_is_python_hmac(fresh_database: PostgresTarget) -> None:
    message = "counterparty:AB/12345678 ř".encode()
    keys = [b"k", b"a 32-byte key for ads masking.!", bytes(range(64)), bytes(range(200))]
    with connect(fresh_database) as connection:
        publish_analyst_views_tables(connection)
        computed = [
            bytes(connection.execute("SELECT ads_private.hmac_sha256(%s, %s)", (key, message)).fetchone()[0])
            for key in keys
        ]
    assert computed == [hmac.new(key, message, hashlib.sha256).digest() for key in keys]


def publish_analyst_views_tables(connection: psycopg.Connection) -> None:
    with connection.cursor() as cursor:
        ensure_raw_schema(cursor)
        cursor.execute(FEATURES_DDL)
    publish_analyst_views(connection, KEY)


def test_the_analyst_reads_only_masked_views(secured: PostgresTarget) -> None:
    with as_role(secured, "analyst") as analyst:
        rows = analyst.execute(
            "SELECT trans_id, account_pseudonym, client_pseudonym, client_age_band, client_district, "
            "account_district, counterparty_pseudonym, reason, reasons FROM analyst.flagged_transactions "
            "ORDER BY trans_id"
        ).fetchall()
        alert = analyst.execute("SELECT message, details FROM analyst.alerts").fetchone()
        analyst.execute("SELECT count(*) FROM analyst.flagged_transactions")
        for statement in (
            "SELECT * FROM raw.fin_client",
            "SELECT * FROM raw.quarantine",
            "SELECT * FROM marts.fct_transaction_features",
            "SELECT * FROM anomaly.transaction_scores",
            "SELECT * FROM anomaly.labels",
            "SELECT * FROM anomaly.alerts",
            "SELECT * FROM ads_private.masking_key",
            "SELECT * FROM ops.audit",
            "INSERT INTO ops.audit (action, by) VALUES ('label', 'forged')",
            "DELETE FROM ops.audit",
            "CREATE TABLE public.mine (x int)",
            "CREATE VIEW analyst.mine AS SELECT 1",
        ):
            assert refused(analyst, statement), statement
    masked = pseudonym(KEY, "counterparty", f"AB/{COUNTERPARTY}")
    assert [row[:7] for row in rows] == [
        (
            101,
            pseudonym(KEY, "account", "55"),
            pseudonym(KEY, "client", "7"),
            "30-39",
            "Hl.m. Praha",
            "Benesov",
            masked,
        ),
        (102, pseudonym(KEY, "account", "56"), pseudonym(KEY, "client", "8"), "80+", "Benesov", "Benesov", None),
    ]
    assert rows[0][7] == REASON.replace(COUNTERPARTY, masked)
    assert COUNTERPARTY not in json.dumps(rows[0][8]) and masked in rows[0][8]["rules"][0]["reason"]
    assert alert == (
        f"score 0.970 in 1997-03: {REASON.replace(COUNTERPARTY, masked)}",
        {"trans_id": 101, "month": "1997-03", "account_pseudonym": pseudonym(KEY, "account", "55")},
    )
    reads = [(by, db_user, details) for action, by, db_user, details in audit_rows(secured) if action == "read_masked"]
    assert reads == [
        ("ads_analyst", "ads_analyst", {"view": "analyst.flagged_transactions"}),
        ("ads_analyst", "ads_analyst", {"view": "analyst.alerts"}),
    ]


def test_the_loader_writes_raw_and_the_scorer_reads_marts_and_writes_anomaly(secured: PostgresTarget) -> None:
    with as_role(secured, "loader") as loader:
        loader.execute(
            "INSERT INTO raw.quarantine (relation, source_file, source_sha256, line_number, raw_line, reason) "
            "VALUES ('trans', 'trans.asc', 'ab12', 3, 'x', 'bad date')"
        )
        assert loader.execute("SELECT count(*) FROM raw.quarantine").fetchone() == (1,)
        for statement in (
            "SELECT * FROM anomaly.transaction_scores",
            "SELECT * FROM marts.fct_transaction_features",
            "SELECT * FROM analyst.flagged_transactions",
        ):
            assert refused(loader, statement), statement
    with connect(secured, autocommit=True) as owner:
        owner.execute("CREATE TABLE anomaly.created_later (x int)")
    with as_role(secured, "scorer") as scorer:
        assert scorer.execute("SELECT count(*) FROM marts.fct_transaction_features").fetchone() == (3,)
        assert scorer.execute("SELECT count(*) FROM raw.fin_district").fetchone() == (2,)
        scorer.execute("INSERT INTO anomaly.labels (trans_id, label, by) VALUES (101, 'confirmed', 'scorer')")
        scorer.execute("INSERT INTO anomaly.created_later VALUES (1)")
        for statement in (
            "INSERT INTO raw.fin_district (district_id) VALUES (3)",
            "SELECT * FROM ops.audit",
            "SELECT * FROM analyst.labels",
        ):
            assert refused(scorer, statement), statement


def test_labels_and_exports_are_audited(
    secured: PostgresTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with connect(secured, autocommit=True) as connection:
        label_transaction(connection, 101, "confirmed", "skimming", "ana")
    url = f"postgresql://{secured.user}@/{secured.dbname}?host={secured.host}&port={secured.port}"
    monkeypatch.setenv("ADS_DATABASE_URL", url)
    export = tmp_path / "alerts.csv"
    assert main(["alerts", "--export", str(export), "--month", "1997-03", "--by", "bo"]) == 0
    rows = [(action, by, details) for action, by, _, details in audit_rows(secured)]
    assert rows == [
        ("label", "ana", {"source": "command line", "added": 1, "replaced": 0, "trans_ids": [101]}),
        (
            "export",
            "bo",
            {"file": str(export.resolve()), "month": "1997-03", "account_id": None, "top": 50, "trans_ids": [101, 102]},
        ),
    ]


def test_db_url_names_each_role_and_masks_its_password(
    secured: PostgresTarget, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "ADS_DATABASE_URL", f"postgresql://{secured.user}:owner-secret@/{secured.dbname}?host={secured.host}"
    )
    monkeypatch.setenv("ADS_ANALYST_PASSWORD", "an@lyst secret")
    printed = {}
    for arguments in (
        ["--role", "analyst"],
        ["--role", "analyst", "--show-password"],
        ["--role", "admin"],
        ["--role", "scorer"],
    ):
        assert main(["db-url", *arguments]) == 0
        printed[" ".join(arguments)] = capsys.readouterr().out.strip()
    assert (
        printed["--role analyst"]
        == f"postgresql://ads_analyst:***@/{secured.dbname}?host={quote(secured.host, safe='/')}&port=5432"
    )
    shown = conninfo_to_dict(printed["--role analyst --show-password"])
    assert (shown["user"], shown["password"], shown["host"]) == ("ads_analyst", "an@lyst secret", secured.host)
    assert "owner-secret" not in printed["--role admin"] and ":***@" in printed["--role admin"]
    scorer = printed["--role scorer"]
    assert scorer.startswith("postgresql://ads_scorer@/")
    with psycopg.connect(scorer) as connection:
        assert connection.execute("SELECT session_user").fetchone() == ("ads_scorer",)


def test_role_passwords_reach_the_server_as_scram_verifiers(secured: PostgresTarget) -> None:
    with connect(secured) as connection:
        ensure_roles(connection, passwords={"loader": "l0ader secret"})
        stored = connection.execute(
            "SELECT rolcanlogin, rolpassword FROM pg_authid WHERE rolname = 'ads_loader'"
        ).fetchone()
        ensure_roles(connection, passwords={}, trusted_local=True)
    assert stored[0] and stored[1].startswith("SCRAM-SHA-256$") and "l0ader" not in stored[1]


def test_the_masking_key_comes_from_the_environment_or_the_signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADS_MODEL_SIGNING_KEY", "s" * 40)
    derived = masking_key()
    assert len(derived) == 32 and derived != b"s" * 40
    monkeypatch.setenv("ADS_MODEL_SIGNING_KEY", "t" * 40)
    assert masking_key() != derived
    monkeypatch.setenv("ADS_MASKING_KEY", "m" * 32)
    assert masking_key() == b"m" * 32
    monkeypatch.setenv("ADS_MASKING_KEY", "short")
    with pytest.raises(SettingsError, match="ADS_MASKING_KEY is too short: 5 bytes"):
        masking_key()


def test_a_run_publishes_the_views_and_the_roles(built: Built, monkeypatch: pytest.MonkeyPatch) -> None:
    assert built.result.returncode == 0
    pgdata = built.home / "pgdata"
    try:
        target = embedded_postgres(pgdata)
        with connect(target) as owner:
            accounts = dict(
                owner.execute("SELECT trans_id, account_id FROM anomaly.transaction_scores WHERE is_anomaly")
            )
        with as_role(target, "analyst") as analyst:
            rows = analyst.execute(
                "SELECT trans_id, account_pseudonym, client_age_band FROM analyst.flagged_transactions"
            ).fetchall()
            assert refused(analyst, "SELECT * FROM anomaly.transaction_scores")
    finally:
        stop_embedded_postgres(pgdata)
    monkeypatch.setenv("ADS_HOME", str(built.home))
    key = masking_key()
    assert len(rows) == len(accounts) > 0
    assert {trans_id: masked for trans_id, masked, _ in rows} == {
        trans_id: pseudonym(key, "account", str(account_id)) for trans_id, account_id in accounts.items()
    }
    assert {band for _, _, band in rows} <= {"under 20", "80+", *(f"{low}-{low + 9}" for low in range(20, 80, 10))}
    logs = "".join(log.read_text() for log in (built.home / "logs").glob("*.log")) + built.result.stdout
    assert key.hex() not in logs
