"""Detection assets: monthly anomaly models, scored transactions with reasons, and missing payments."""

import json
import time
from datetime import UTC, date, datetime

import dagster as dg
import numpy as np
import pandas as pd

from ads_assets.defs.io_managers import OutputStoreResource, TrainedModel, recorded_partition_model
from ads_assets.defs.partitions import monthly_partitions, next_month
from ads_assets.defs.resources import PostgresResource
from ads_assets.lib.detectors.ensemble import EnsembleDetector, frame_digest, retrain_month, training_frame
from ads_assets.lib.tables import (
    FEATURES_TABLE,
    MISSING_PARQUET_SCHEMA,
    MISSING_PAYMENTS_TABLE,
    MISSING_TABLE,
    SCORES_PARQUET_SCHEMA,
    SCORES_TABLE,
    confirmed_anomalies,
    read_query,
    read_window,
    replace_month,
)

FEATURES_KEY = dg.AssetKey(["marts", "fct_transaction_features"])
MISSING_PAYMENTS_KEY = dg.AssetKey(["marts", "fct_missing_payments"])
MODELS_KEY = dg.AssetKey(["detection", "anomaly_models"])


class DetectionConfig(dg.Config):
    """How models are trained and alerts are raised.

    `threshold` trades recall for analyst load: lower raises more alerts, most of them weaker;
    `alert_budget` caps each month's alerts at that share of its transactions, highest scores first,
    so a bad month cannot flood the queue (what is cut stays ranked in `transaction_scores`).

    `retrain_every_months` trades freshness for training time: with 1 every month gets a model trained
    on the `training_months` before it; with N, models are trained for calendar-fixed months (with 3:
    January, April, July, October) and the months up to the next one are scored by that model, which
    saw nothing of them either. A full run over 72 months then fits about 72 / N models instead of 72;
    the cost is a model up to N - 1 months older than the month it scores.
    """

    training_months: int = 12
    min_training_rows: int = 2000
    threshold: float = 0.5
    alert_budget: float = 0.01
    retrain_every_months: int = 3
    random_state: int = 0


def _months(context: dg.AssetExecutionContext) -> list[date]:
    window = context.partition_time_window
    months, month = [], window.start.date()
    while month < window.end.date():
        months.append(month)
        month = next_month(month)
    return months


def _shift_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 - count
    return date(index // 12, index % 12 + 1, 1)


def _by_date(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in (trans_date, trans_id) order, so training and digests do not depend on the database's row order."""
    return frame.sort_values(["trans_date", "trans_id"], kind="stable").reset_index(drop=True) if len(frame) else frame


def _cold_start_frame(connection, config: DetectionConfig) -> pd.DataFrame:
    first = read_query(connection, f"SELECT min(trans_date) AS first_day FROM {FEATURES_TABLE}")
    first_day = pd.Timestamp(first["first_day"].iloc[0]).date().replace(day=1)
    return _by_date(
        read_window(
            connection, FEATURES_TABLE, "trans_date", first_day, _shift_months(first_day, -config.training_months)
        )
    )


@dg.asset(
    key=MODELS_KEY,
    deps=[FEATURES_KEY],
    partitions_def=monthly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    io_manager_key="models",
    group_name="detection",
    kinds={"scikit-learn", "python"},
    code_version="ensemble-v1",
)
def anomaly_models(
    context: dg.AssetExecutionContext, config: DetectionConfig, postgres: PostgresResource
) -> dict[str, TrainedModel]:
    """The anomaly model that scores each month: rules plus Isolation Forest and LOF, calibrated and combined.

    A model is trained for every `retrain_every_months`-th month on the `training_months` months before it,
    without rows a rule flagged and without analyst-confirmed anomalies (`anomaly.confirmed_anomalies`), so
    past incidents do not teach it that they are normal; the months up to the next retrain month reuse it.
    No month is scored by a model that saw it. Months without enough history (the start of the data) use
    the first `training_months` months of the data instead (a cold start, stated in the model's metadata).
    Each distinct model is stored once; per month, the metadata names the model version that scores it.
    """
    months = _months(context)
    schedule = {month: retrain_month(month, config.retrain_every_months) for month in months}
    retrain_months = sorted(set(schedule.values()))
    with postgres.connect() as connection:
        confirmed = confirmed_anomalies(connection)
        history = _by_date(
            read_window(
                connection,
                FEATURES_TABLE,
                "trans_date",
                _shift_months(retrain_months[0], config.training_months),
                retrain_months[-1],
            )
        )
        cold_start: pd.DataFrame | None = None
        fitted: dict[tuple[str, str], TrainedModel] = {}
        by_retrain_month: dict[date, TrainedModel] = {}
        fit_seconds = 0.0
        for retrain in retrain_months:
            training = (
                training_frame(history, pd.Timestamp(retrain), config.training_months, confirmed)
                if len(history)
                else history
            )
            is_cold_start = len(training) < config.min_training_rows
            if is_cold_start:
                if cold_start is None:
                    cold_start = _cold_start_frame(connection, config)
                training = cold_start.loc[~cold_start["trans_id"].isin(list(confirmed))]
            window = (
                f"{pd.Timestamp(training['trans_date'].min()):%Y-%m-%d}",
                f"{pd.Timestamp(training['trans_date'].max()):%Y-%m-%d}",
            )
            if window not in fitted:
                started = time.perf_counter()
                ensemble = EnsembleDetector(
                    threshold=config.threshold, alert_budget=config.alert_budget, random_state=config.random_state
                ).fit(training, confirmed=confirmed)
                fit_seconds += time.perf_counter() - started
                fitted[window] = TrainedModel(
                    model=ensemble,
                    metadata={
                        "rows": int(len(training)),
                        "excluded_rule_rows": ensemble.excluded_rule_rows_,
                        "excluded_confirmed_rows": ensemble.excluded_confirmed_rows_,
                        "training_flagged_rate": ensemble.training_flagged_rate_,
                        "cold_start": is_cold_start,
                        "features": sorted({name for d in ensemble.detectors for name in getattr(d, "features_", [])}),
                    },
                    training_window=window,
                    parameters=ensemble.parameters(),
                    data_sha256=frame_digest(training),
                )
            by_retrain_month[retrain] = fitted[window]
            context.log.info(
                f"model for {retrain:%Y-%m}: trained on {window[0]}..{window[1]} ({len(training):,} rows), scores "
                + ", ".join(f"{month:%Y-%m}" for month in months if schedule[month] == retrain)
            )
    context.add_output_metadata(
        {
            "retrain_every_months": config.retrain_every_months,
            "models_fitted": len(fitted),
            "fit_seconds": round(fit_seconds, 1),
        }
    )
    return {month.isoformat(): by_retrain_month[schedule[month]] for month in months}


def _rule_hits(scored_table: pd.DataFrame, rule_names: list[str]) -> list[list[str]]:
    severities = scored_table[rule_names].to_numpy() if rule_names else np.zeros((len(scored_table), 0))
    return [[rule_names[i] for i in np.flatnonzero(row > 0)] for row in severities]


def score_month(ensemble: EnsembleDetector, features: pd.DataFrame, month: date, version: str) -> pd.DataFrame:
    """The `anomaly.transaction_scores` rows of one month: scores, alert flags and reasons."""
    frame = features.reset_index(drop=True)
    scored = ensemble.score_frame(frame)
    table = scored.table
    reasons = ensemble.explain(frame, scored=scored, only_flagged=True)
    reason_by_trans = {int(reason["trans_id"]): json.dumps(reason, default=str) for reason in reasons}
    rule_names = [rule.name for rule in ensemble.rules.rules]
    trans_ids = table["trans_id"].astype("int64")
    return pd.DataFrame(
        {
            "trans_id": trans_ids.to_numpy(),
            "account_id": table["account_id"].astype("int64").to_numpy(),
            "trans_date": pd.to_datetime(frame["trans_date"]).dt.date.to_numpy(),
            "month": f"{month:%Y-%m}",
            "score": table["score"].astype(float).to_numpy(),
            "is_anomaly": table["flagged"].astype(bool).to_numpy(),
            "iforest_score": table.get("iforest_score", pd.Series(np.nan, index=table.index)).astype(float).to_numpy(),
            "lof_score": table.get("lof_score", pd.Series(np.nan, index=table.index)).astype(float).to_numpy(),
            "rule_hits": _rule_hits(table, rule_names),
            "reasons": [reason_by_trans.get(int(trans_id)) for trans_id in trans_ids],
            "model_version": version,
            "scored_at": datetime.now(UTC),
        }
    )


@dg.asset(
    key=dg.AssetKey(["anomaly", "transaction_scores"]),
    deps=[FEATURES_KEY],
    partitions_def=monthly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="detection",
    kinds={"postgres", "parquet"},
)
def transaction_scores(
    context: dg.AssetExecutionContext,
    anomaly_models: dict[str, EnsembleDetector],
    postgres: PostgresResource,
    output_store: OutputStoreResource,
) -> dg.MaterializeResult:
    """Every transaction's anomaly score for the month, with alerts and the reasons behind each alert.

    Postgres `anomaly.transaction_scores` (trans_id, account_id, trans_date, month, score, is_anomaly,
    iforest_score, lof_score, rule_hits, reasons, model_version, scored_at) and the same rows as
    Parquet under `{output}/transaction_scores/month=YYYY-MM/`. Each month is scored by the model that
    `detection/anomaly_models` recorded for it, verified against its sha256; `model_version` names that
    model (months that share a model share the version). Re-scoring a month replaces it.
    """
    store = output_store.store()
    rows = flagged = 0
    thresholds: set[float] = set()
    with postgres.connect() as connection:
        for month in _months(context):
            ensemble = anomaly_models[month.isoformat()]
            recorded = recorded_partition_model(context.instance, MODELS_KEY, month.isoformat())
            features = _by_date(read_window(connection, FEATURES_TABLE, "trans_date", month, next_month(month)))
            if features.empty:
                scores = pd.DataFrame(columns=SCORE_COLUMNS)
            else:
                scores = score_month(ensemble, features, month, recorded.get("model_version", "unknown"))
            replace_month(connection, SCORES_TABLE, f"{month:%Y-%m}", scores)
            store.write_partition(
                "transaction_scores", f"{month:%Y-%m}", scores.drop(columns=["month"]), schema=SCORES_PARQUET_SCHEMA
            )
            rows += len(scores)
            flagged += int(scores["is_anomaly"].sum()) if len(scores) else 0
            thresholds.add(ensemble.threshold)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "flagged": flagged,
            "flagged_rate": flagged / rows if rows else 0.0,
            "threshold": dg.MetadataValue.json(sorted(thresholds)),
            "parquet": dg.MetadataValue.url(store.url("transaction_scores")),
        }
    )


SCORE_COLUMNS = [
    "trans_id",
    "account_id",
    "trans_date",
    "month",
    "score",
    "is_anomaly",
    "iforest_score",
    "lof_score",
    "rule_hits",
    "reasons",
    "model_version",
    "scored_at",
]


@dg.asset(
    key=dg.AssetKey(["anomaly", "missing_payments"]),
    deps=[MISSING_PAYMENTS_KEY],
    partitions_def=monthly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="detection",
    kinds={"postgres", "parquet"},
)
def missing_payments(
    context: dg.AssetExecutionContext, postgres: PostgresResource, output_store: OutputStoreResource
) -> dg.MaterializeResult:
    """Recurring payments that were expected in the month and did not arrive: standing orders and habits.

    Postgres `anomaly.missing_payments` and Parquet `{output}/missing_payments/month=YYYY-MM/`
    (account_id, month, expected payee, category, expected amount, last seen).
    """
    store = output_store.store()
    published_at = datetime.now(UTC)
    rows = 0
    with postgres.connect() as connection:
        for month in _months(context):
            found = read_window(connection, MISSING_PAYMENTS_TABLE, "missing_month", month, next_month(month))
            frame = _missing_rows(found, month, published_at)
            replace_month(connection, MISSING_TABLE, f"{month:%Y-%m}", frame)
            store.write_partition(
                "missing_payments", f"{month:%Y-%m}", frame.drop(columns=["month"]), schema=MISSING_PARQUET_SCHEMA
            )
            rows += len(frame)
    return dg.MaterializeResult(
        metadata={"dagster/row_count": rows, "parquet": dg.MetadataValue.url(store.url("missing_payments"))}
    )


def _missing_rows(found: pd.DataFrame, month: date, published_at: datetime) -> pd.DataFrame:
    if found.empty:
        return pd.DataFrame(
            {
                "account_id": pd.Series(dtype="int64"),
                "month": pd.Series(dtype="str"),
                "expected_payee": pd.Series(dtype="str"),
                "category": pd.Series(dtype="str"),
                "expected_amount": pd.Series(dtype="float64"),
                "last_seen": pd.Series(dtype="str"),
                "expectation_source": pd.Series(dtype="str"),
                "published_at": pd.Series(dtype="datetime64[us, UTC]"),
            }
        )
    payee = (
        found["counterparty_bank"].astype("string").fillna("")
        + "/"
        + found["counterparty_account"].astype("string").fillna("")
    )
    return pd.DataFrame(
        {
            "account_id": found["account_id"].astype("int64"),
            "month": f"{month:%Y-%m}",
            "expected_payee": payee.astype(object).where(payee != "/", None),
            "category": found["category"].astype("str"),
            "expected_amount": found["expected_amount"].astype("float64").round(2),
            "last_seen": pd.to_datetime(found["last_seen_month"]).dt.strftime("%Y-%m"),
            "expectation_source": found["expectation_source"].astype("str"),
            "published_at": published_at,
        }
    )
