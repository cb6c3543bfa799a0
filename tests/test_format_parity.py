"""The same records from either published format give identical feature and missing-payment rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ads_assets.lib.berka.generator import GeneratorConfig, generate, write_dataset
from ads_assets.lib.db import PostgresTarget, connect, temporary_database
from tests.marts import build_feature_mart


def features_from(folder: Path, postgres_target: PostgresTarget, work: Path) -> dict[str, list[tuple[Any, ...]]]:
    with temporary_database(postgres_target, "parity") as target:
        build_feature_mart(folder, target, work, "fct_transaction_features", "fct_missing_payments")
        with connect(target) as connection:
            return {
                table: connection.execute(f"SELECT * FROM marts.{table} ORDER BY 1").fetchall()
                for table in ("fct_transaction_features", "fct_missing_payments")
            }


def test_asc_and_fin_files_give_identical_feature_rows(postgres_target, tmp_path: Path) -> None:
    data = generate(GeneratorConfig(accounts=40, start="1993-01", end="1993-06", seed=5, anomaly_rate=0.01))
    write_dataset(data, tmp_path / "asc", "asc")
    write_dataset(data, tmp_path / "fin", "fin")

    from_asc = features_from(tmp_path / "asc", postgres_target, tmp_path / "work_asc")
    from_fin = features_from(tmp_path / "fin", postgres_target, tmp_path / "work_fin")

    assert len(from_asc["fct_transaction_features"]) == len(data.relations["trans"])
    assert from_asc["fct_missing_payments"]
    assert from_asc == from_fin
