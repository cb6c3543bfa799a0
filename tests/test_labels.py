"""Analyst labels: `ads label`, labels files all or nothing, the inbox asset, the legacy migration, training."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import pytest

from ads_assets.cli import main
from ads_assets.defs.labels.assets import analyst_labels
from ads_assets.defs.resources import PostgresResource
from ads_assets.lib.db import PostgresTarget, connect, temporary_database
from ads_assets.lib.detection.training import TrainingWindow, training_frame
from ads_assets.lib.labels import (
    NO_TRANSACTIONS,
    Applied,
    BadLine,
    Label,
    apply_labels,
    labeller,
    labels_inbox,
    parse_labels,
    unknown_ids,
)
from ads_assets.lib.raw_schema import ensure_raw_schema
from ads_assets.lib.tables import FEATURES_TABLE, confirmed_ids, ensure_anomaly_schema, read_labels, read_window
from ads_assets.settings import SettingsError

FEATURES = [
    (11, 7, date(1997, 3, 2), "AB", "00123456"),
    (12, 7, date(1997, 3, 5), None, None),
    (13, 8, date(1997, 4, 1), "CD", "0042"),
    (14, 8, date(1997, 4, 9), "CD", "0042"),
]
GOOD_FILE = "trans_id,label,note\n11,confirmed,card skimming\n13, False_Positive ,\n"
BAD_FILE = (
    "trans_id,label,note\n"
    "11,confirmed,fine\n"
    "12,maybe,\n"
    "999,false_positive,\n"
    "abc,confirmed,\n"
    "11,false_positive,twice\n"
    "14,confirmed,too,many\n"
)
BAD_LINES = [
    "line 3: label 'maybe' is neither confirmed nor false_positive",
    "line 4: unknown transaction 999",
    "line 5: trans_id 'abc' is not a transaction id",
    "line 6: transaction 11 is labelled on line 2 too",
    "line 7: 4 fields, the header has 3",
]


def url_of(target: PostgresTarget) -> str:
    return f"postgresql://{quote(target.user)}@/{target.dbname}?host={quote(target.host)}&port={target.port}"


@pytest.fixture(scope="module")
def mart(postgres_target: PostgresTarget) -> Iterator[PostgresTarget]:
    """A template database whose feature mart holds transactions 11..14."""
    with temporary_database(postgres_target, prefix="labels_mart") as target:
        with connect(target) as connection, connection.cursor() as cursor:
            cursor.execute("CREATE SCHEMA marts")
            cursor.execute(
                "CREATE TABLE marts.fct_transaction_features (trans_id bigint, account_id bigint, trans_date date, "
                "trans_month date, counterparty_bank text, counterparty_account text)"
            )
            for trans_id, account_id, day, bank, account in FEATURES:
                cursor.execute(
                    "INSERT INTO marts.fct_transaction_features VALUES (%s, %s, %s, date_trunc('month', %s)::date, %s, %s)",
                    (trans_id, account_id, day, day, bank, account),
                )
        yield target


@pytest.fixture
def database(postgres_target: PostgresTarget, mart: PostgresTarget) -> Iterator[PostgresTarget]:
    """A copy of the mart database for one test."""
    with temporary_database(postgres_target, prefix="labels", template=mart.dbname) as target:
        yield target


@pytest.fixture
def cli_env(database: PostgresTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PostgresTarget:
    monkeypatch.setenv("ADS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ADS_DATABASE_URL", url_of(database))
    return database


def labels_of(target: PostgresTarget) -> list[tuple]:
    with connect(target) as connection, connection.cursor() as cursor:
        ensure_anomaly_schema(cursor)
        return cursor.execute("SELECT trans_id, label, note, by FROM anomaly.labels ORDER BY trans_id").fetchall()


def test_one_label_by_the_cli_then_a_replacement(cli_env: PostgresTarget, capsys: pytest.CaptureFixture) -> None:
    assert main(["label", "11", "confirmed", "--note", "card skimming", "--by", "ana"]) == 0
    assert capsys.readouterr().out == "ads label: 11 confirmed (added)\n"
    assert labels_of(cli_env) == [(11, "confirmed", "card skimming", "ana")]

    assert main(["label", "11", "false_positive"]) == 0
    assert capsys.readouterr().out == "ads label: 11 false_positive (replaced)\n"
    with connect(cli_env) as connection:
        frame = read_labels(connection)
    assert list(frame.columns) == [
        "trans_id",
        "label",
        "note",
        "by",
        "at",
        "trans_date",
        "account_id",
        "counterparty_bank",
        "counterparty_account",
    ]
    row = frame.iloc[0]
    assert len(frame) == 1 and (row["trans_id"], row["label"], row["by"]) == (11, "false_positive", labeller())
    assert frame["note"].isna().all() and row["at"] is not None
    assert (row["account_id"], row["counterparty_bank"], row["counterparty_account"]) == (7, "AB", "00123456")
    assert str(row["trans_date"])[:10] == "1997-03-02"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["label", "999", "confirmed"], "ads: error: unknown transaction 999\n"),
        (["label", "11", "fraud"], "ads: error: label 'fraud' is neither confirmed nor false_positive\n"),
        (["label", "11"], "ads: error: give TRANS_ID and LABEL (confirmed or false_positive), or --file F\n"),
    ],
)
def test_a_refused_label_is_one_line_and_status_2(
    cli_env: PostgresTarget, argv: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err == message


def test_a_file_with_bad_lines_applies_nothing_and_names_each_line(
    cli_env: PostgresTarget, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(BAD_FILE)
    assert main(["label", "--file", str(bad)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        *(f"ads label: {bad} {line}" for line in BAD_LINES),
        f"ads: error: {bad}: 5 bad lines, nothing applied",
    ]
    assert labels_of(cli_env) == []

    good = tmp_path / "good.csv"
    good.write_text(GOOD_FILE)
    assert main(["label", "--file", str(good), "--by", "ana"]) == 0
    assert capsys.readouterr().out == f"ads label: applied {good}: 2 labels added, 0 replaced\n"
    assert labels_of(cli_env) == [(11, "confirmed", "card skimming", "ana"), (13, "false_positive", None, "ana")]


def test_a_file_needs_the_label_columns() -> None:
    assert parse_labels("id,verdict\n11,confirmed\n") == (
        [],
        [BadLine(1, "expected the columns trans_id,label[,note], found id,verdict")],
    )
    assert parse_labels("Trans_ID,Label\n\n12,confirmed\n") == ([Label(12, "confirmed", None, 3)], [])


def test_ids_are_checked_against_the_raw_transactions_before_the_mart(fresh_database: PostgresTarget) -> None:
    with connect(fresh_database) as connection:
        with pytest.raises(SettingsError, match=NO_TRANSACTIONS):
            unknown_ids(connection, [1])
        with connection.cursor() as cursor:
            ensure_raw_schema(cursor)
            cursor.execute(
                "INSERT INTO raw.fin_trans (trans_id, account_id, date, type, amount, balance) "
                "VALUES (5, 1, '1995-01-01', 'PRIJEM', 10, 10)"
            )
        assert unknown_ids(connection, [5, 6]) == {6}
        apply_labels(connection, [Label(5, "confirmed", "before the mart")], "ana")
        frame = read_labels(connection)
    assert frame[["trans_id", "label", "note", "by"]].values.tolist() == [[5, "confirmed", "before the mart", "ana"]]
    assert frame[["trans_date", "account_id", "counterparty_bank", "counterparty_account"]].isna().all(axis=None)


def test_the_legacy_confirmed_table_is_migrated_once(database: PostgresTarget) -> None:
    at = datetime(1998, 2, 3, 4, 5, 6, tzinfo=UTC)
    with connect(database) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE SCHEMA anomaly")
        cursor.execute(
            "CREATE TABLE anomaly.confirmed_anomalies (trans_id bigint PRIMARY KEY, confirmed_by text, "
            "confirmed_at timestamptz NOT NULL DEFAULT now(), note text)"
        )
        cursor.execute(
            "INSERT INTO anomaly.confirmed_anomalies VALUES (11, 'ana', %s, 'skimming'), (13, NULL, %s, NULL)",
            (at, at),
        )
    with connect(database) as connection, connection.cursor() as cursor:
        ensure_anomaly_schema(cursor)
        ensure_anomaly_schema(cursor)
    with connect(database) as connection:
        rows = connection.execute("SELECT trans_id, label, note, by, at FROM anomaly.labels ORDER BY 1").fetchall()
        legacy = connection.execute("SELECT to_regclass('anomaly.confirmed_anomalies')").fetchone()
    assert rows == [(11, "confirmed", "skimming", "ana", at), (13, "confirmed", None, None, at)]
    assert legacy == (None,)


def test_the_asset_takes_each_inbox_file_once(
    database: PostgresTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.csv").write_text(GOOD_FILE)
    (inbox / "b.csv").write_text(BAD_FILE)
    (inbox / "c.csv").write_bytes("\ufefftrans_id,label\r\n13,confirmed\r\n14,confirmed\r\n".encode())
    (inbox / "notes.txt").write_text("not a labels file")
    monkeypatch.setenv("ADS_LABELS", str(inbox))
    assert labels_inbox() == inbox.resolve()
    resources = {"postgres": PostgresResource(pgdata=str(tmp_path / "pgdata"), database_url=url_of(database))}

    def materialize() -> dict[str, object]:
        result = dg.materialize([analyst_labels], resources=resources)
        metadata = result.asset_materializations_for_node("anomaly__labels")[0].metadata
        return {name: value.value for name, value in metadata.items() if name != "inbox"}

    assert materialize() == {
        "dagster/row_count": 3,
        "files_applied": 2,
        "labels_added": 3,
        "labels_replaced": 1,
        "files_failed": 1,
        "files_already_taken": 0,
    }
    assert labels_of(database) == [
        (11, "confirmed", "card skimming", labeller()),
        (13, "confirmed", None, labeller()),
        (14, "confirmed", None, labeller()),
    ]
    assert sorted(path.name for path in inbox.iterdir()) == ["failed", "notes.txt", "processed"]
    assert sorted(path.name for path in (inbox / "processed").iterdir()) == ["a.csv", "c.csv"]
    assert (inbox / "failed" / "b.csv.reason.txt").read_text().splitlines() == [
        "b.csv: 5 bad lines, nothing applied",
        *(f"b.csv {line}" for line in BAD_LINES),
    ]

    (inbox / "a.csv").write_text(GOOD_FILE)
    assert materialize() == {
        "dagster/row_count": 3,
        "files_applied": 0,
        "labels_added": 0,
        "labels_replaced": 0,
        "files_failed": 0,
        "files_already_taken": 1,
    }
    assert sorted(path.name for path in (inbox / "processed").iterdir()) == [
        "a.csv",
        f"a.{hashlib.sha256(GOOD_FILE.encode()).hexdigest()[:12]}.csv",
        "c.csv",
    ]
    assert labels_of(database)[1] == (13, "confirmed", None, labeller())


def test_confirmed_labels_are_left_out_of_training_and_false_positives_kept(database: PostgresTarget) -> None:
    labels = [Label(11, "confirmed"), Label(12, "false_positive"), Label(13, "confirmed")]
    with connect(database, autocommit=True) as connection:
        assert apply_labels(connection, labels, "ana") == Applied(added=3, replaced=0)
        confirmed = confirmed_ids(connection)
        features = read_window(connection, FEATURES_TABLE, "trans_date", date(1997, 3, 1), date(1997, 5, 1))
    assert confirmed == {11, 13}
    training = training_frame(features, TrainingWindow(date(1997, 3, 1), date(1997, 5, 1)), confirmed)
    assert training["trans_id"].tolist() == [12, 14]
