"""`ads alerts`: the flagged transactions of a hand-built score table, filtered, with status, printed and exported."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from psycopg.types.json import Jsonb

from ads_assets.alerts import AlertFilter, fetch_alerts, read_labels, render
from ads_assets.cli import main
from ads_assets.lib.db import PostgresTarget, connect, temporary_database
from ads_assets.lib.tables import ensure_anomaly_schema

SCORED_AT = datetime(1998, 1, 2, 3, 4, 5, tzinfo=UTC)
SCORES = [
    (1, 7, date(1997, 3, 2), "1997-03", 0.95, True, '=HYPERLINK("http://evil.example","click")'),
    (2, 7, date(1997, 3, 5), "1997-03", 0.80, True, "+1 payment more than usual"),
    (3, 8, date(1997, 3, 9), "1997-03", 0.90, True, "-cmd|' /C calc'!A0"),
    (4, 8, date(1997, 4, 1), "1997-04", 0.99, True, "  @SUM(A1:A9)"),
    (5, 7, date(1997, 4, 3), "1997-04", 0.7049, True, "amount 12 times the usual"),
    (6, 7, date(1997, 3, 7), "1997-03", 0.97, False, "not flagged"),
]
FEATURES = [(1, "-1234.50", "withdrawal"), (2, "500.00", "household"), (3, "-20.00", "cash"), (4, "9000.00", "credit")]
LABELS = "trans_id,account_id,month,kind\n1,7,1997-03,large_amount\n3,8,1997-03,burst\n,9,1997-03,missing_bill\n"


def build_tables(target: PostgresTarget) -> None:
    with connect(target) as connection, connection.cursor() as cursor:
        ensure_anomaly_schema(cursor)
        for trans_id, account_id, day, month, score, flagged, text in SCORES:
            cursor.execute(
                "INSERT INTO anomaly.transaction_scores (trans_id, account_id, trans_date, month, score, is_anomaly, "
                "detector_scores, rule_hits, reasons, model_version, scored_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    trans_id,
                    account_id,
                    day,
                    month,
                    score,
                    flagged,
                    Jsonb({"iforest": 0.5, "rules": 0.25}),
                    ["burst"] if trans_id == 1 else [],
                    Jsonb({"sentence": text, "drivers": ["amount"]}),
                    "v1",
                    SCORED_AT,
                ),
            )
        cursor.execute("CREATE SCHEMA marts")
        cursor.execute(
            "CREATE TABLE marts.fct_transaction_features "
            "(trans_id bigint, signed_amount numeric(14, 2), transaction_kind text)"
        )
        for row in FEATURES:
            cursor.execute("INSERT INTO marts.fct_transaction_features VALUES (%s, %s, %s)", row)
        cursor.execute(
            "INSERT INTO anomaly.labels (trans_id, label, by) VALUES (3, 'confirmed', 'analyst'), "
            "(2, 'false_positive', 'analyst')"
        )
        connection.commit()


def url_of(target: PostgresTarget) -> str:
    return f"postgresql://{quote(target.user)}@/{target.dbname}?host={quote(target.host)}&port={target.port}"


@pytest.fixture(scope="module")
def scored(postgres_target: PostgresTarget) -> Iterator[PostgresTarget]:
    """A database with five flagged and one unflagged score, four of them with features, one labelled confirmed
    and one false_positive."""
    with temporary_database(postgres_target, prefix="alerts") as target:
        build_tables(target)
        yield target


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "bank"
    folder.mkdir()
    (folder / "labels.csv").write_text(LABELS)
    return folder


@pytest.fixture
def cli_env(scored: PostgresTarget, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ADS_DATABASE_URL on the scored database and an ADS_HOME whose last run read `source`."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "state.json").write_text(json.dumps({"source": str(source)}))
    monkeypatch.setenv("ADS_HOME", str(home))
    monkeypatch.setenv("ADS_DATABASE_URL", url_of(scored))
    monkeypatch.delenv("ADS_SOURCE", raising=False)
    return home


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (AlertFilter(), [4, 1, 3, 2, 5]),
        (AlertFilter(month="1997-03"), [1, 3, 2]),
        (AlertFilter(account_id=7), [1, 2, 5]),
        (AlertFilter(top=2), [4, 1]),
        (AlertFilter(month="1997-03", account_id=7, top=1), [1]),
        (AlertFilter(month="1997-05"), []),
    ],
)
def test_flagged_rows_come_highest_score_first_within_the_filter(
    scored: PostgresTarget, selection: AlertFilter, expected: list[int]
) -> None:
    with connect(scored) as connection:
        assert [alert.trans_id for alert in fetch_alerts(connection, selection, {})] == expected


def test_status_is_the_analyst_label_before_labelled_before_new(scored: PostgresTarget, source: Path) -> None:
    labels = read_labels(str(source))
    with connect(scored) as connection:
        alerts = fetch_alerts(connection, AlertFilter(), labels)
    assert labels == {1: "large_amount", 3: "burst"}
    assert {alert.trans_id: alert.status for alert in alerts} == {
        4: "new",
        1: "labelled large_amount",
        3: "confirmed",
        2: "false positive",
        5: "new",
    }
    assert read_labels("postgresql://host/db") == {} and read_labels(str(source / "missing")) == {}


def test_the_cli_prints_aligned_lines_without_escape_codes(cli_env: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["alerts", "--account", "7"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "month    trans_id  account  date           amount  kind        score  status                 reason",
        '1997-03         1        7  1997-03-02  -1,234.50  withdrawal  0.950  labelled large_amount  =HYPERLINK("http://evil.example","click")',
        "1997-03         2        7  1997-03-05     500.00  household   0.800  false positive         +1 payment more than usual",
        "1997-04         5        7  1997-04-03                         0.705  new                    amount 12 times the usual",
    ]


def test_lines_are_cut_to_a_width_when_given(scored: PostgresTarget) -> None:
    with connect(scored) as connection:
        lines = render(fetch_alerts(connection, AlertFilter(top=1), {}), width=40)
    assert lines == ["month    trans_id  account  date       …", "1997-04         4        8  1997-04-01 …"]


def test_no_flagged_rows_is_one_line_naming_the_filter(cli_env: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["alerts", "--month", "1997-05", "--account", "7"]) == 0
    assert capsys.readouterr().out == "ads alerts: no flagged transactions in 1997-05 for account 7\n"


def test_the_export_neutralizes_formula_text_and_keeps_numbers(
    cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "alerts.csv"
    assert main(["alerts", "--month", "1997-03", "--export", str(path)]) == 0
    assert capsys.readouterr().out == f"ads alerts: wrote 3 flagged transactions in 1997-03 to {path}\n"
    with path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [row["trans_id"] for row in rows] == ["1", "3", "2"]
    assert [row["sentence"] for row in rows] == [
        '\'=HYPERLINK("http://evil.example","click")',
        "'-cmd|' /C calc'!A0",
        "'+1 payment more than usual",
    ]
    assert [row["amount"] for row in rows] == ["-1234.50", "-20.00", "500.00"]
    assert [row["status"] for row in rows] == ["labelled large_amount", "confirmed", "false positive"]
    assert json.loads(rows[1]["reasons"]) == {"sentence": "-cmd|' /C calc'!A0", "drivers": ["amount"]}
    assert rows[0]["rule_hits"] == '["burst"]'
    assert json.loads(rows[0]["detector_scores"]) == {"iforest": 0.5, "rules": 0.25}
    assert rows[0]["score"] == "0.95" and rows[0]["scored_at"] == "1998-01-02T03:04:05+00:00"

    assert main(["alerts", "--month", "1997-04", "--export", str(path)]) == 0
    with path.open(newline="", encoding="utf-8") as file:
        april = list(csv.DictReader(file))
    assert [(row["trans_id"], row["sentence"], row["amount"]) for row in april] == [
        ("4", "'  @SUM(A1:A9)", "9000.00"),
        ("5", "amount 12 times the usual", ""),
    ]


def test_no_scores_table_is_a_one_line_error(
    postgres_target: PostgresTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("ADS_HOME", str(tmp_path / "home"))
    with temporary_database(postgres_target, prefix="noscores") as empty:
        monkeypatch.setenv("ADS_DATABASE_URL", url_of(empty))
        assert main(["alerts"]) == 2
    assert capsys.readouterr().err == "ads: error: no scores yet: run ads run first\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["alerts", "--top", "0"], "ads: error: --top must be 1 or more, not 0\n"),
        (
            ["alerts", "--month", "1997-01:1997-03"],
            "ads: error: bad --month '1997-01:1997-03': expected one month YYYY-MM, e.g. 1997-03\n",
        ),
    ],
)
def test_bad_options_are_refused_before_any_database(
    argv: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err == message
