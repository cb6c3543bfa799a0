"""Publishing a month to Postgres and to Parquet is all or nothing as readers see it, and a crash is repaired.

Against the session's embedded Postgres and local folders (one case on moto's S3): crashes are simulated by
failing a step, by running the steps by hand, and by a SIGKILL of a process that is publishing.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pyarrow.dataset as ds
import pytest

from ads_assets.defs.partitions import add_months
from ads_assets.lib import publish
from ads_assets.lib.db import PostgresTarget, connect, temporary_database
from ads_assets.lib.detection.scoring import parquet_rows, postgres_rows
from ads_assets.lib.publish import (
    MISSING_PUBLICATION,
    PUBLICATIONS_TABLE,
    SCORES_PUBLICATION,
    postgres_month,
    publish_month,
    reconcile,
)
from ads_assets.lib.storage import OutputStore, StagedPartition
from ads_assets.lib.tables import MISSING_TABLE, SCORES_TABLE, read_query, replace_month

REPO_ROOT = Path(__file__).resolve().parents[1]
MONTHS = ["1997-01", "1997-02", "1997-03", "1997-04"]


def scores(month: str, ids: list[int], version: str) -> pd.DataFrame:
    """Score rows of `month` for `ids`, as `score_month` makes them; `version` names the model."""
    return pd.DataFrame(
        {
            "trans_id": pd.array(ids, dtype="int64"),
            "account_id": pd.array([7 + i % 3 for i in ids], dtype="int64"),
            "trans_date": [date.fromisoformat(f"{month}-{i % 28 + 1:02d}") for i in ids],
            "month": month,
            "score": [i / 1000 for i in ids],
            "is_anomaly": [i % 4 == 0 for i in ids],
            "detector_scores": [{"iforest": i / 100, "ml": 0.5, "rules": 0.0} for i in ids],
            "rule_hits": [["burst"] if i % 4 == 0 else [] for i in ids],
            "reasons": [json.dumps({"trans_id": i, "why": "burst"}) if i % 4 == 0 else None for i in ids],
            "model_version": version,
            "scored_at": datetime(1998, 1, 2, 3, 4, 5, tzinfo=UTC),
            "reason": [f"burst of {i % 7 + 2} withdrawals" if i % 4 == 0 else None for i in ids],
            "amount": [-(i % 50) * 10.5 for i in ids],
            "kind": "withdrawal",
            "district_id": pd.array([1 + i % 5 for i in ids], dtype="Int64"),
        }
    )


def old_ids(month: str) -> list[int]:
    base = int(month.replace("-", "")) * 100
    return [base + i for i in range(5)]


def new_ids(month: str) -> list[int]:
    base = int(month.replace("-", "")) * 100
    return [base + i for i in range(3, 9)]


def publish_scores(store: OutputStore, connection: psycopg.Connection, month: str, ids: list[int], version: str) -> int:
    frame = scores(month, ids, version)
    return publish_month(store, connection, SCORES_PUBLICATION, month, postgres_rows(frame), parquet_rows(frame))


def parquet_ids(store: OutputStore) -> dict[str, set[int]]:
    """Per month, the trans_ids of the Parquet table, read as a reader that discovers the files itself."""
    filesystem, base = store.location.arrow(SCORES_PUBLICATION.name)
    try:
        table = ds.dataset(base, filesystem=filesystem, format="parquet", partitioning="hive").to_table(
            columns=["trans_id", "month"]
        )
    except FileNotFoundError:
        return {}
    found: dict[str, set[int]] = {}
    for trans_id, month in zip(table.column("trans_id").to_pylist(), table.column("month").to_pylist(), strict=True):
        found.setdefault(str(month), set()).add(trans_id)
    return found


def parquet_versions(store: OutputStore) -> dict[str, set[str]]:
    table = store.read_table(SCORES_PUBLICATION.name)
    found: dict[str, set[str]] = {}
    for version, month in zip(
        table.column("model_version").to_pylist(), table.column("month").to_pylist(), strict=True
    ):
        found.setdefault(month, set()).add(version)
    return found


def postgres_ids(connection: psycopg.Connection) -> dict[str, set[int]]:
    rows = read_query(connection, f"SELECT month, trans_id FROM {SCORES_TABLE}")
    connection.commit()
    found: dict[str, set[int]] = {}
    for month, trans_id in zip(rows.get("month", []), rows.get("trans_id", []), strict=True):
        found.setdefault(str(month), set()).add(int(trans_id))
    return found


def postgres_versions(connection: psycopg.Connection) -> dict[str, set[str]]:
    rows = read_query(connection, f"SELECT DISTINCT month, model_version FROM {SCORES_TABLE}")
    connection.commit()
    found: dict[str, set[str]] = {}
    for month, version in zip(rows["month"], rows["model_version"], strict=True):
        found.setdefault(str(month), set()).add(str(version))
    return found


def staged_files(store: OutputStore) -> list[str]:
    return [staged.key for staged in store.staged_partitions(SCORES_PUBLICATION.name)]


@pytest.fixture
def connection(fresh_database: PostgresTarget) -> Iterator[psycopg.Connection]:
    with connect(fresh_database) as connection:
        yield connection


@pytest.fixture
def store(tmp_path: Path) -> OutputStore:
    return OutputStore(str(tmp_path / "ads_output"))


def crash_before_rename(self: StagedPartition) -> str:
    """`StagedPartition.commit` of a process killed after the Postgres commit and before the rename."""
    raise OSError("killed before the rename")


def test_a_published_month_is_the_same_in_both_and_names_its_publication(
    store: OutputStore, connection: psycopg.Connection, fresh_database: PostgresTarget
) -> None:
    publish_scores(store, connection, "1997-01", old_ids("1997-01"), "v1")
    connection.execute("SELECT 1")
    written = publish_scores(store, connection, "1997-01", new_ids("1997-01"), "v2")

    assert written == 6
    assert connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert parquet_ids(store) == postgres_ids(connection) == {"1997-01": set(new_ids("1997-01"))}
    assert staged_files(store) == []
    token = connection.execute(f"SELECT token, rows FROM {PUBLICATIONS_TABLE}").fetchall()
    assert len(token) == 1 and token[0][1] == 6
    summary = publish._read_summary(store, "transaction_scores/month=1997-01/part-0.parquet", "trans_id")
    assert summary.token == token[0][0]
    with connect(fresh_database) as other:
        assert other.execute(f"SELECT count(*) FROM {SCORES_TABLE}").fetchone() == (6,)
    assert reconcile(store, connection, SCORES_PUBLICATION).fixes == {}


def test_a_crash_between_the_postgres_and_the_parquet_commit_is_committed_by_reconcile(
    store: OutputStore, connection: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_scores(store, connection, "1997-01", old_ids("1997-01"), "v1")
    with monkeypatch.context() as patch:
        patch.setattr(StagedPartition, "commit", crash_before_rename)
        with pytest.raises(OSError, match="killed before the rename"):
            publish_scores(store, connection, "1997-01", new_ids("1997-01"), "v2")

    assert postgres_ids(connection) == {"1997-01": set(new_ids("1997-01"))}
    assert parquet_ids(store) == {"1997-01": set(old_ids("1997-01"))}
    assert store.read_table(SCORES_PUBLICATION.name).column("trans_id").to_pylist() == old_ids("1997-01")
    assert len(staged_files(store)) == 1
    logged: list[str] = []

    fixed = reconcile(store, connection, SCORES_PUBLICATION, log=logged.append)

    assert list(fixed.fixes) == ["1997-01"]
    assert fixed.fixes["1997-01"][0].startswith("committed the staged Parquet of publication")
    assert logged == [f"reconciled Parquet with Postgres: transaction_scores 1997-01: {fixed.fixes['1997-01'][0]}"]
    assert parquet_ids(store) == postgres_ids(connection) == {"1997-01": set(new_ids("1997-01"))}
    assert parquet_versions(store) == {"1997-01": {"v2"}}
    assert staged_files(store) == []


def test_a_failure_before_the_postgres_commit_leaves_both_old(
    store: OutputStore, connection: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_scores(store, connection, "1997-01", old_ids("1997-01"), "v1")

    def fail(*args: Any) -> None:
        raise psycopg.OperationalError("connection lost")

    with monkeypatch.context() as patch:
        patch.setattr(publish, "_record_publication", fail)
        with pytest.raises(psycopg.OperationalError):
            publish_scores(store, connection, "1997-01", new_ids("1997-01"), "v2")

    assert postgres_ids(connection) == parquet_ids(store) == {"1997-01": set(old_ids("1997-01"))}
    assert staged_files(store) == []
    assert reconcile(store, connection, SCORES_PUBLICATION).fixes == {}


def test_a_staged_rescoring_with_the_same_ids_that_postgres_never_committed_is_discarded(
    store: OutputStore, connection: psycopg.Connection
) -> None:
    publish_scores(store, connection, "1997-01", old_ids("1997-01"), "v1")
    rescored = scores("1997-01", old_ids("1997-01"), "v2")
    store.stage_partition(SCORES_PUBLICATION.name, "1997-01", parquet_rows(rescored), schema=SCORES_PUBLICATION.schema)

    fixed = reconcile(store, connection, SCORES_PUBLICATION)

    assert fixed.fixes == {"1997-01": ["discarded a staged Parquet file that Postgres does not hold"]}
    assert parquet_versions(store) == postgres_versions(connection) == {"1997-01": {"v1"}}
    assert staged_files(store) == []


def test_a_parquet_month_without_postgres_rows_is_deleted_and_a_postgres_month_without_parquet_is_written(
    store: OutputStore, connection: psycopg.Connection
) -> None:
    publish_scores(store, connection, "1997-01", old_ids("1997-01"), "v1")
    stray = scores("1997-02", old_ids("1997-02"), "v1")
    store.write_partition(SCORES_PUBLICATION.name, "1997-02", parquet_rows(stray), schema=SCORES_PUBLICATION.schema)
    unpublished = scores("1997-03", new_ids("1997-03"), "v2")
    replace_month(connection, SCORES_TABLE, "1997-03", postgres_rows(unpublished))

    fixed = reconcile(store, connection, SCORES_PUBLICATION)

    assert fixed.fixes == {
        "1997-02": ["deleted from Parquet: Postgres holds no rows of this month"],
        "1997-03": ["written from Postgres (6 rows), missing from Parquet"],
    }
    assert store.months(SCORES_PUBLICATION.name) == ["1997-01", "1997-03"]
    assert parquet_ids(store) == postgres_ids(connection)
    written = store.read_table(SCORES_PUBLICATION.name, months=["1997-03"]).drop_columns(["month"])
    expected = parquet_rows(unpublished)
    assert written.column("trans_id").to_pylist() == expected["trans_id"].tolist()
    assert [dict(pairs) for pairs in written.column("detector_scores").to_pylist()] == [
        dict(pairs) for pairs in expected["detector_scores"]
    ]
    assert written.column("rule_hits").to_pylist() == expected["rule_hits"].tolist()
    assert [json.loads(value) if value else None for value in written.column("reasons").to_pylist()] == [
        json.loads(value) if isinstance(value, str) else None for value in expected["reasons"]
    ]
    assert set(written.column("scored_at").to_pylist()) == {datetime(1998, 1, 2, 3, 4, 5, tzinfo=UTC)}
    assert written.column("trans_date").to_pylist() == expected["trans_date"].tolist()
    assert reconcile(store, connection, SCORES_PUBLICATION).fixes == {}


def test_a_parquet_month_that_differs_or_cannot_be_read_is_rewritten_from_postgres(
    store: OutputStore, connection: psycopg.Connection
) -> None:
    for month in MONTHS[:3]:
        publish_scores(store, connection, month, old_ids(month), "v1")
    replace_month(connection, SCORES_TABLE, "1997-01", postgres_rows(scores("1997-01", new_ids("1997-01"), "v2")))
    store.location.write_bytes("transaction_scores/month=1997-02/part-0.parquet", b"PAR1 truncated")
    store.location.write_bytes("transaction_scores/month=1997-03/.part-0.parquet.1f2e.tmp", b"half a file")

    fixed = reconcile(store, connection, SCORES_PUBLICATION)

    assert fixed.fixes == {
        "1997-01": [
            f"rewritten from Postgres (6 rows): Parquet held 5 rows, key sum {sum(old_ids('1997-01'))}",
        ],
        "1997-02": ["rewritten from Postgres (5 rows): the Parquet file cannot be read"],
        "1997-03": ["removed the leftover .part-0.parquet.1f2e.tmp"],
    }
    assert parquet_ids(store) == postgres_ids(connection)
    assert parquet_versions(store) == postgres_versions(connection)


def test_missing_payments_are_rewritten_from_postgres_with_their_values(
    store: OutputStore, connection: psycopg.Connection
) -> None:
    published_at = datetime(1998, 2, 1, 12, 30, tzinfo=UTC)
    frame = pd.DataFrame(
        {
            "account_id": pd.array([11, 12], dtype="int64"),
            "month": "1997-02",
            "expected_payee": ["AB/123", None],
            "category": ["standing_order", "habit"],
            "expected_amount": [1234.5, 99.99],
            "last_seen": ["1997-01", "1996-12"],
            "expectation_source": ["order", "history"],
            "published_at": published_at,
        }
    )
    replace_month(connection, MISSING_TABLE, "1997-02", frame)

    fixed = reconcile(store, connection, MISSING_PUBLICATION)

    assert fixed.fixes == {"1997-02": ["written from Postgres (2 rows), missing from Parquet"]}
    assert store.read_table("missing_payments").to_pylist() == [
        {
            "account_id": 11,
            "expected_payee": "AB/123",
            "category": "standing_order",
            "expected_amount": 1234.5,
            "last_seen": "1997-01",
            "expectation_source": "order",
            "published_at": published_at,
            "month": "1997-02",
        },
        {
            "account_id": 12,
            "expected_payee": None,
            "category": "habit",
            "expected_amount": 99.99,
            "last_seen": "1996-12",
            "expectation_source": "history",
            "published_at": published_at,
            "month": "1997-02",
        },
    ]
    assert postgres_month(connection, MISSING_PUBLICATION, "1997-02").num_rows == 2


def test_on_s3_a_crash_before_the_rename_shows_readers_the_old_month_until_reconciled(
    s3_bucket: str, connection: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = OutputStore(f"s3://{s3_bucket}/ads_output")
    publish_scores(store, connection, "1997-01", old_ids("1997-01"), "v1")
    with monkeypatch.context() as patch:
        patch.setattr(StagedPartition, "commit", crash_before_rename)
        with pytest.raises(OSError, match="killed before the rename"):
            publish_scores(store, connection, "1997-01", new_ids("1997-01"), "v2")

    assert parquet_ids(store) == {"1997-01": set(old_ids("1997-01"))}

    fixed = reconcile(store, connection, SCORES_PUBLICATION)

    assert list(fixed.fixes) == ["1997-01"]
    assert parquet_ids(store) == postgres_ids(connection) == {"1997-01": set(new_ids("1997-01"))}
    assert sorted(store.location.list()) == [
        "transaction_scores/_schema.arrow",
        "transaction_scores/month=1997-01/part-0.parquet",
    ]


MISSING_MART_DDL = """
CREATE SCHEMA marts;
CREATE TABLE marts.fct_missing_payments (
    account_id bigint, missing_month date, counterparty_bank text, counterparty_account text, category text,
    expected_amount numeric(14, 2), last_seen_month date, expectation_source text
);
INSERT INTO marts.fct_missing_payments VALUES
    (11, '1996-06-01', 'AB', '123', 'household', 250.00, '1996-05-01', 'standing_order'),
    (12, '1996-06-01', NULL, NULL, 'loan', 99.50, '1996-04-01', 'habit');
"""


def test_the_missing_payments_asset_reconciles_its_months_before_publishing_and_says_what_it_fixed(
    fresh_database: PostgresTarget, tmp_path: Path
) -> None:
    import dagster as dg
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from ads_assets.defs.detection.assets import missing_payments
    from ads_assets.defs.resources import OutputStoreResource, PostgresResource

    store = OutputStore(str(tmp_path / "output"))
    with connect(fresh_database) as connection:
        connection.execute(MISSING_MART_DDL)
        connection.commit()
        stray = pd.DataFrame(
            {
                "account_id": pd.array([5], dtype="int64"),
                "expected_payee": ["XY/1"],
                "category": ["household"],
                "expected_amount": [10.0],
                "last_seen": ["1996-01"],
                "expectation_source": ["habit"],
                "published_at": [datetime(1998, 1, 1, tzinfo=UTC)],
            }
        )
        for month in ("1996-02", "1996-05"):
            store.write_partition("missing_payments", month, stray, schema=MISSING_PUBLICATION.schema)
    resources = {
        "postgres": PostgresResource(pgdata=str(tmp_path / "unused"), database_url=fresh_database.sqlalchemy_url()),
        "output_store": OutputStoreResource(root=store.root),
    }
    with dg.DagsterInstance.ephemeral() as instance:
        add_months(instance, ["1996-05", "1996-06"])
        result = dg.materialize(
            [missing_payments],
            instance=instance,
            resources=resources,
            tags={ASSET_PARTITION_RANGE_START_TAG: "1996-05-01", ASSET_PARTITION_RANGE_END_TAG: "1996-06-01"},
        )
        warnings = [
            entry.user_message
            for entry in instance.all_logs(result.run_id)
            if entry.level == logging.WARNING and "reconciled" in entry.user_message
        ]

    fixed = {"1996-05": ["deleted from Parquet: Postgres holds no rows of this month"]}
    metadata = [event.materialization.metadata for event in result.get_asset_materialization_events()]
    assert [entry["reconciled_months"].value for entry in metadata] == [fixed, fixed]
    assert warnings == [
        "reconciled Parquet with Postgres: missing_payments 1996-05: "
        "deleted from Parquet: Postgres holds no rows of this month"
    ]
    assert store.months("missing_payments") == ["1996-02", "1996-05", "1996-06"]
    assert store.read_table("missing_payments").column("account_id").to_pylist() == [5, 11, 12]
    with connect(fresh_database) as connection:
        assert reconcile(store, connection, MISSING_PUBLICATION).fixes == {"1996-02": fixed["1996-05"]}
        assert reconcile(store, connection, MISSING_PUBLICATION).fixes == {}


PUBLISHER = """
import json, sys

from ads_assets.defs.partitions import add_months
from ads_assets.lib import publish
from ads_assets.lib.detection.scoring import parquet_rows, postgres_rows
from ads_assets.lib.storage import OutputStore, StagedPartition
from tests.test_publication import scores
import psycopg

conninfo, root, stop_month, phase = sys.argv[1:5]
plan = json.loads(sys.argv[5])


def pause(where: str, month: str) -> None:
    if (where, month) == (phase, stop_month):
        print(f"{where} {month}", flush=True)
        sys.stdin.readline()


record, commit = publish._record_publication, StagedPartition.commit


def recording(connection, table, month, token, rows):
    record(connection, table, month, token, rows)
    pause("in-transaction", month)


def committing(self):
    pause("postgres-committed", self.month)
    return commit(self)


publish._record_publication, StagedPartition.commit = recording, committing
store = OutputStore(root)
with psycopg.connect(conninfo) as connection:
    for month, ids, version in plan:
        frame = scores(month, ids, version)
        publish.publish_month(store, connection, publish.SCORES_PUBLICATION, month, postgres_rows(frame), parquet_rows(frame))
        print(f"published {month}", flush=True)
"""


def read_until(process: subprocess.Popen[bytes], prefix: str, timeout: float) -> list[str]:
    """The lines `process` printed up to and including one starting with `prefix`; fails after `timeout` s."""
    assert process.stdout is not None
    received = b""
    while True:
        lines = received.decode().splitlines()
        if any(line.startswith(prefix) for line in lines):
            return lines
        ready, _, _ = select.select([process.stdout], [], [], timeout)
        assert ready, f"no {prefix!r} from the publisher in {timeout} s; it printed {lines}"
        chunk = os.read(process.stdout.fileno(), 65536)
        if not chunk:
            stderr = process.stderr.read().decode() if process.stderr else ""
            raise AssertionError(f"the publisher exited with {process.wait()} before {prefix!r}: {stderr}")
        received += chunk


def month_ids(store: OutputStore, target: PostgresTarget) -> tuple[dict[str, set[int]], dict[str, set[int]]]:
    with connect(target) as connection:
        return postgres_ids(connection), parquet_ids(store)


@pytest.mark.parametrize("phase", ["in-transaction", "postgres-committed"])
def test_sigkill_while_publishing_then_reconcile_matches_a_clean_publication(
    phase: str, postgres_target: PostgresTarget, tmp_path: Path
) -> None:
    plan = [[month, new_ids(month), "v2"] for month in MONTHS]
    with temporary_database(postgres_target) as crashed, temporary_database(postgres_target) as clean:
        store = OutputStore(str(tmp_path / "crashed"))
        with connect(crashed) as connection:
            for month in MONTHS:
                publish_scores(store, connection, month, old_ids(month), "v1")
        process = subprocess.Popen(
            [sys.executable, "-c", PUBLISHER, crashed.conninfo(), store.root, "1997-03", phase, json.dumps(plan)],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            printed = read_until(process, f"{phase} 1997-03", timeout=60)
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            for stream in (process.stdin, process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
        assert process.returncode == -signal.SIGKILL
        assert printed == ["published 1997-01", "published 1997-02", f"{phase} 1997-03"]
        assert parquet_ids(store)["1997-03"] == set(old_ids("1997-03"))

        with connect(crashed) as connection:
            fixed = reconcile(store, connection, SCORES_PUBLICATION)
        after_crash, after_crash_parquet = month_ids(store, crashed)

        committed = phase == "postgres-committed"
        assert list(fixed.fixes) == ["1997-03"]
        assert fixed.fixes["1997-03"][0].startswith("committed" if committed else "discarded")
        assert (
            after_crash
            == after_crash_parquet
            == {
                "1997-01": set(new_ids("1997-01")),
                "1997-02": set(new_ids("1997-02")),
                "1997-03": set(new_ids("1997-03") if committed else old_ids("1997-03")),
                "1997-04": set(old_ids("1997-04")),
            }
        )

        clean_store = OutputStore(str(tmp_path / "clean"))
        with connect(crashed) as connection, connect(clean) as clean_connection:
            for month, ids, version in plan[2:]:
                publish_scores(store, connection, month, ids, version)
            for month, ids, version in plan:
                publish_scores(clean_store, clean_connection, month, ids, version)
        rerun, rerun_parquet = month_ids(store, crashed)
        reference, reference_parquet = month_ids(clean_store, clean)
        assert rerun == rerun_parquet == reference == reference_parquet
        assert staged_files(store) == []
