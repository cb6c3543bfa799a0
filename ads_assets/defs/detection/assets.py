"""Detection assets: monthly anomaly models, scored transactions with reasons, and missing payments."""

import time
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pandas as pd

from ads_assets.defs.detection.io_manager import TrainedModel, recorded_partition_model
from ads_assets.defs.detection.selection import Champions
from ads_assets.defs.keys import FEATURES_KEY, LABELS_KEY, MISSING_PAYMENTS_KEY, MODELS_KEY, SCORES_KEY, SELECTION_KEY
from ads_assets.defs.partitions import monthly_partitions, next_month, partition_months
from ads_assets.defs.resources import AlertsResource, MetricsResource, OutputStoreResource, PostgresResource
from ads_assets.defs.run_scope import run_months
from ads_assets.lib.alerting import HIGH_SEVERITY_SCORE, AlertEvent, high_severity_anomalies
from ads_assets.lib.alerting import drift as drift_event
from ads_assets.lib.athena import ATHENA_FOLDER, write_athena
from ads_assets.lib.detection.drift import DRIFT_COLUMNS, drift_retrain_months, monthly_drift, write_drift
from ads_assets.lib.detection.ensemble import DEFAULT_WEIGHTS, EnsembleDetector
from ads_assets.lib.detection.online import Batch, OnlineState, OnlineUpdater
from ads_assets.lib.detection.scoring import by_date, parquet_rows, postgres_rows
from ads_assets.lib.detection.tables import SCORES_TABLE_NAME, upgrade_scores_parquet
from ads_assets.lib.detection.training import TrainingWindow, frame_digest, training_frame, training_windows
from ads_assets.lib.metrics import Metric, delivery_metric, flagged_metrics, training_metrics
from ads_assets.lib.publish import MISSING_PUBLICATION, SCORES_PUBLICATION, migrate, publish_month, reconcile
from ads_assets.lib.tables import (
    FEATURES_TABLE,
    MISSING_PAYMENTS_TABLE,
    label_map,
    read_query,
    read_window,
    with_analyst_labels,
)


class DetectionConfig(dg.Config):
    """How models are trained and alerts are raised.

    `detectors` names the ML detectors of the ensemble (from the detector registry) with the weight of
    each one's evidence. `threshold` trades recall for analyst load: lower raises more alerts, most of
    them weaker; `alert_budget` caps each month's alerts at that share of its transactions, highest
    scores first, so a bad month cannot flood the queue (what is cut stays ranked in `transaction_scores`).

    `retrain_every_months` trades freshness for training time: with 1 every month gets a model trained
    on the `training_months` before it; with N, models are trained for calendar-fixed months (with 3:
    January, April, July, October) and the months up to the next one are scored by that model, which
    saw nothing of them either. Where that window holds less than `min_training_weeks` weeks and fewer
    than `min_training_rows` rows (the data starts shortly before it), the month gets a model trained on
    everything before it. The data's first month has nothing before it: a cold start, scored by a model
    trained on that month itself (and the next ones while it holds fewer than `min_cold_start_rows`
    rows), which the metadata and the run summary say.

    With `retrain_on_drift`, a month whose key features drifted beyond the major band (PSI > 0.25, recorded
    per month in `anomaly.drift`) against the window of the model that scores it makes the next month a
    retrain month: it gets a model of its own, trained on the `training_months` before it.

    With `online_learning`, each model keeps a fixed reference of its clean training rows, and between
    retrains `anomaly/transaction_scores` refreshes it with every month's normal rows before the next month
    (`lib.detection.online`: a capped share of the forest's trees, one LSTM pass, calibration on the fixed
    reference plus a capped share of recent rows; flagged, rule-hit and labelled rows never enter). Off by
    default: a refreshed model depends on the months scored before it in the same run, so a run over part of
    a retrain period scores its months differently from a run over the whole period.
    """

    detectors: dict[str, float] = dict(DEFAULT_WEIGHTS)
    training_months: int = 12
    min_training_weeks: int = 8
    min_training_rows: int = 50_000
    min_cold_start_rows: int = 2_000
    threshold: float = 0.5
    alert_budget: float = 0.01
    retrain_every_months: int = 6
    retrain_on_drift: bool = True
    online_learning: bool = False
    random_state: int = 0


def _monthly_rows(connection) -> tuple[date | None, dict[date, int]]:
    """The first transaction date of the feature table and its rows per month."""
    counts = read_query(
        connection,
        f"SELECT trans_month, count(*) AS rows, min(trans_date) AS first_day FROM {FEATURES_TABLE} GROUP BY trans_month",  # noqa: S608 - FEATURES_TABLE is a module constant
    )
    if counts.empty:
        return None, {}
    first_day = pd.Timestamp(counts["first_day"].min()).date()
    months = pd.to_datetime(counts["trans_month"]).dt.date
    return first_day, dict(zip(months, counts["rows"].astype(int), strict=True))


@dg.asset(
    key=MODELS_KEY,
    deps=[FEATURES_KEY, LABELS_KEY],
    partitions_def=monthly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    io_manager_key="models",
    group_name="detection",
    kinds={"scikit-learn", "python"},
    code_version="ensemble-v2",
)
def anomaly_models(
    context: dg.AssetExecutionContext,
    config: DetectionConfig,
    postgres: PostgresResource,
    alerts: AlertsResource,
    metrics: MetricsResource,
) -> dict[str, TrainedModel]:
    """The anomaly model that scores each month: rules plus the configured ML detectors, calibrated and combined.

    A month is scored by a model trained on the `training_months` months before its retrain month (every
    `retrain_every_months`-th month), or on everything before it where that window holds too little, without
    rows a rule flagged and without transactions analysts labelled `confirmed` (`anomaly.labels`), so past
    incidents do not teach it that they are normal. No month is scored by a model that saw it, except the
    data's first month, which has nothing before it: a cold start, trained on that month itself and marked
    `cold_start` in the metadata. Each distinct model is stored once; per month, the metadata names the model
    version that scores it.
    """
    months = partition_months(context)
    with postgres.connect() as connection:
        labels = label_map(connection)
        confirmed = {trans_id for trans_id, label in labels.items() if label == "confirmed"}
        first_day, monthly_rows = _monthly_rows(connection)
        if first_day is None:
            raise dg.Failure(f"{FEATURES_TABLE} has no rows: load transactions and build the features first")
        plan = training_windows(
            months,
            first_day,
            monthly_rows,
            config.retrain_every_months,
            config.training_months,
            config.min_training_weeks,
            config.min_training_rows,
            config.min_cold_start_rows,
        )
        history = with_analyst_labels(
            by_date(read_window(connection, FEATURES_TABLE, "trans_date", *_span(plan.values(), months))),
            labels,
        )
    forced = drift_retrain_months(history, plan, config.training_months) if config.retrain_on_drift else {}
    plan = with_drift_retrains(plan, forced)
    drift = _drift_report(history, plan)
    with postgres.connect() as connection:
        write_drift(connection, drift)
        alerts.raise_and_deliver(connection, _drift_alerts(drift), context.log)
    for month, window in sorted(forced.items()):
        context.log.warning(f"key features drifted beyond PSI 0.25 before {month:%Y-%m}: retrained on {window.label()}")
    windows = sorted(set(plan.values()), key=lambda window: (window.start, window.end))
    fitted: dict[TrainingWindow, TrainedModel] = {}
    fit_seconds = 0.0
    training_rows: list[Metric] = []
    for window in windows:
        training = training_frame(history, window)
        started = time.perf_counter()
        ensemble = EnsembleDetector(
            detectors=config.detectors,
            threshold=config.threshold,
            alert_budget=config.alert_budget,
            random_state=config.random_state,
        ).fit(training, confirmed=confirmed)
        fit_seconds += time.perf_counter() - started
        if config.online_learning:
            ensemble.online_reference_ = OnlineUpdater().reference_rows(ensemble, training, confirmed)
        training_rows += training_metrics(
            context.run.run_id, f"{window.end:%Y-%m}", time.perf_counter() - started, ensemble.parameters()
        )
        fitted[window] = TrainedModel(
            model=ensemble,
            metadata={
                "rows": int(len(training)),
                "excluded_rule_rows": ensemble.excluded_rule_rows_,
                "excluded_confirmed_rows": ensemble.excluded_confirmed_rows_,
                "training_flagged_rate": ensemble.training_flagged_rate_,
                "cold_start": window.cold_start,
                "detectors": dict(ensemble.weights),
            },
            training_window=(
                f"{pd.Timestamp(training['trans_date'].min()):%Y-%m-%d}",
                f"{pd.Timestamp(training['trans_date'].max()):%Y-%m-%d}",
            ),
            parameters={**ensemble.parameters(), **({"online_learning": True} if config.online_learning else {})},
            data_sha256=frame_digest(training),
        )
        scored_months = ", ".join(f"{month:%Y-%m}" for month in months if plan[month] == window)
        note = " (cold start: trained on the month it scores, nothing earlier exists)" if window.cold_start else ""
        context.log.info(f"model trained on {window.label()} ({len(training):,} rows) scores {scored_months}{note}")
    cold = [f"{month:%Y-%m}" for month in months if plan[month].cold_start]
    for month in months:
        context.add_asset_metadata(
            {"trained_on": plan[month].label(), "cold_start": plan[month].cold_start}, partition_key=month.isoformat()
        )
    with postgres.connect() as connection:
        metrics.report(connection, training_rows, context.log)
    major = sorted(set(drift.loc[drift["band"] == "major", "month"])) if len(drift) else []
    context.add_output_metadata(
        {
            "retrain_every_months": config.retrain_every_months,
            "models_fitted": len(fitted),
            "fit_seconds": round(fit_seconds, 1),
            "cold_start_months": dg.MetadataValue.json(cold),
            "drift_months_major": dg.MetadataValue.json(major),
            "drift_retrain_months": dg.MetadataValue.json([f"{month:%Y-%m}" for month in sorted(forced)]),
        }
    )
    return {month.isoformat(): fitted[plan[month]] for month in months}


def _span(windows: Iterable[TrainingWindow], months: list[date]) -> tuple[date, date]:
    """The first and the last day (exclusive) that the windows and the scored months cover."""
    chosen = list(windows)
    return min(window.start for window in chosen), max(*(window.end for window in chosen), next_month(months[-1]))


def with_drift_retrains(
    plan: dict[date, TrainingWindow], forced: dict[date, TrainingWindow]
) -> dict[date, TrainingWindow]:
    """The plan with each drift retrain in force from its month until the plan's own model changes."""
    effective: dict[date, TrainingWindow] = {}
    override: tuple[TrainingWindow, TrainingWindow] | None = None
    for month in sorted(plan):
        if month in forced:
            override = (plan[month], forced[month])
        elif override is not None and override[0] != plan[month]:
            override = None
        effective[month] = override[1] if override is not None else plan[month]
    return effective


def _drift_report(history: pd.DataFrame, plan: dict[date, TrainingWindow]) -> pd.DataFrame:
    """Per month (not a cold start), the drift of its key features against the window of the model that scores it."""
    months = pd.to_datetime(history["trans_month"]).dt.date
    reports = []
    for window in sorted({window for window in plan.values() if not window.cold_start}, key=lambda w: (w.start, w.end)):
        scored = [month for month, chosen in plan.items() if chosen == window]
        current = history.loc[months.isin(scored).to_numpy()]
        reference = training_frame(history, window)
        if len(current) and len(reference):
            reports.append(monthly_drift(reference, current, window.label()))
    return pd.concat(reports, ignore_index=True) if reports else pd.DataFrame(columns=list(DRIFT_COLUMNS[:-1]))


def _drift_alerts(drift: pd.DataFrame) -> list[AlertEvent]:
    return [
        drift_event(row.month, row.subject, float(row.psi), row.band, row.reference)
        for row in drift.itertuples()
        if row.band == "major"
    ]


@dg.asset(
    key=SCORES_KEY,
    deps=[FEATURES_KEY, SELECTION_KEY],
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
    alerts: AlertsResource,
    metrics: MetricsResource,
) -> dg.MaterializeResult:
    """Every transaction's anomaly score for the month, with alerts and the reasons behind each alert.

    Postgres `anomaly.transaction_scores` (trans_id, account_id, trans_date, month, score, is_anomaly,
    detector_scores, rule_hits, reasons, model_version, scored_at, and for analysts reason, amount, kind and
    district_id) and the same rows as Parquet under `{output}/transaction_scores/month=YYYY-MM/`, with the
    Athena DDL and Glue definitions of every published table under `{output}/athena/`. `detector_scores` maps each ML detector's name, `ml` and
    `rules` to their scores. Each month is scored by the model that `detection/anomaly_models` recorded for
    it, verified against its sha256; `model_version` names that model (months that share a model share the
    version). Detectors that read sequences get the accounts' earlier rows. Re-scoring a month replaces it.

    Where `detection/model_selection` chose for the model, the month is scored by its champion
    (`model_version` is then `<model version>+<champion>`) and the runner-up in shadow: per month,
    `anomaly.shadow_comparison` (champion, runner_up, rows, flagged by each and by both, overlap of their
    top 1 %) and this partition's metadata compare them.

    Transactions scoring at least 0.95 raise `high_severity_anomaly` events in `anomaly.alerts` (each once,
    delivered to the webhook when one is configured); each month's scored and flagged counts and delivery go
    to `ops.metrics` and to the partition's metadata.
    """
    store = output_store.store()
    recent = RecentMonths()
    with postgres.connect() as connection:
        migrated = migrate(store, connection, SCORES_PUBLICATION, upgrade_scores_parquet)
        if migrated:
            context.log.info(f"upgraded {len(migrated)} stored months of transaction_scores to today's columns")
        reconciled = reconcile(
            store,
            connection,
            SCORES_PUBLICATION,
            log=context.log.warning,
            months=run_months(context.job_def, context.run),
        )
        champions = Champions(context.instance, connection)
        labels = label_map(connection)
        online = OnlineMonths()
        for month in partition_months(context):
            recorded = recorded_partition_model(context.instance, MODELS_KEY, month.isoformat())
            version = recorded.get("model_version", "unknown")
            ensemble, refreshed = online.model(anomaly_models[month.isoformat()], version)
            features = with_analyst_labels(
                by_date(read_window(connection, FEATURES_TABLE, "trans_date", month, next_month(month))), labels
            )
            history = (
                with_analyst_labels(recent.history(connection, month, ensemble.lookback_days), labels)
                if ensemble.lookback_days and not features.empty
                else None
            )
            recent.add(month, features)
            scored = champions.score(ensemble, features, month, version, history, refreshed)
            scores = scored.scores
            publish_month(
                store, connection, SCORES_PUBLICATION, f"{month:%Y-%m}", postgres_rows(scores), parquet_rows(scores)
            )
            flagged = int(scores["is_anomaly"].sum()) if len(scores) else 0
            events = high_severity_anomalies(
                scores.loc[scores["score"] >= HIGH_SEVERITY_SCORE, list(ALERT_COLUMNS)].to_dict("records")
            )
            alerts.raise_and_deliver(connection, events, context.log)
            partition = f"{month:%Y-%m}"
            operational = metrics.report(
                connection,
                [
                    *flagged_metrics(context.run.run_id, partition, flagged, len(scores)),
                    delivery_metric(context.run.run_id, partition, SCORES_TABLE_NAME, True),
                ],
                context.log,
            )
            refresh = online.learn(version, features, scores, set(labels), history)
            context.add_asset_metadata(
                {
                    **operational,
                    **refresh,
                    "high_severity_alerts": len(events),
                    "dagster/row_count": len(scores),
                    "flagged": flagged,
                    "flagged_rate": flagged / len(scores) if len(scores) else 0.0,
                    "model_version": recorded.get("model_version", "unknown"),
                    "champion": scored.champion or "none",
                    "shadow": dg.MetadataValue.json(scored.shadow or {}),
                },
                partition_key=month.isoformat(),
            )
    athena = write_athena(store)
    return dg.MaterializeResult(
        metadata={
            "parquet": dg.MetadataValue.url(store.url(SCORES_TABLE_NAME)),
            "athena_ddl": dg.MetadataValue.url(store.url(ATHENA_FOLDER)) if athena else "none: nothing published",
            "reconciled_months": dg.MetadataValue.json(reconciled.fixes),
        }
    )


class OnlineMonths:
    """Online learning across the months of one run: each stored model refreshed with the months it scored.

    Only models stored with an `online_reference_` (trained with `online_learning`) are refreshed.
    """

    def __init__(self) -> None:
        self.updater = OnlineUpdater()
        self.states: dict[str, OnlineState] = {}

    def model(self, stored: EnsembleDetector, version: str) -> tuple[EnsembleDetector, str]:
        """The model to score the next month of `version` with, and its version suffix (`+online.<n>` or '')."""
        reference = getattr(stored, "online_reference_", None)
        if reference is None:
            return stored, ""
        if version not in self.states:
            self.states[version] = self.updater.start(stored, reference, version)
        state = self.states[version]
        return state.model, state.model_version[len(version) :]

    def learn(
        self,
        version: str,
        rows: pd.DataFrame,
        scores: pd.DataFrame,
        labelled: set[int],
        history: pd.DataFrame | None,
    ) -> dict[str, object]:
        """Refresh the model of `version` with the month just scored; the refresh's metadata (empty when off)."""
        state = self.states.get(version)
        if state is None or rows.empty:
            return {}
        self.states[version], report = self.updater.refresh(state, Batch(rows, scores, labelled, history))
        return {
            "online_admitted_rows": report.admitted_rows,
            "online_lstm_windows": report.lstm_windows,
            "online_threshold_moved": report.threshold.moved,
            "online_refresh_seconds": round(report.seconds, 2),
        }


ALERT_COLUMNS = ("trans_id", "month", "score", "account_id", "reasons", "model_version")
"""The score columns a high-severity alert carries."""


class RecentMonths:
    """The feature rows of the months scored last, so a month's sequence history is not read twice."""

    def __init__(self) -> None:
        self.frames: dict[date, pd.DataFrame] = {}

    def add(self, month: date, frame: pd.DataFrame) -> None:
        self.frames[month] = frame
        for old in sorted(self.frames)[:-HISTORY_MONTHS_KEPT]:
            del self.frames[old]

    def history(self, connection, month: date, lookback_days: int) -> pd.DataFrame:
        """The feature rows of the `lookback_days` before `month`: from memory when held, else read."""
        start = month - timedelta(days=lookback_days)
        held = sorted(self.frames)
        covered = bool(held) and held[0] <= start and held[-1] < month and _consecutive(held + [month])
        if not covered:
            return by_date(read_window(connection, FEATURES_TABLE, "trans_date", start, month))
        rows = pd.concat([self.frames[key] for key in held], ignore_index=True)
        return rows.loc[pd.to_datetime(rows["trans_date"]) >= pd.Timestamp(start)].reset_index(drop=True)


HISTORY_MONTHS_KEPT = 4
"""Months of feature rows `RecentMonths` keeps: enough for a lookback of up to about 90 days."""


def _consecutive(months: list[date]) -> bool:
    return all(next_month(earlier) == later for earlier, later in zip(months, months[1:], strict=False))


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
    with postgres.connect() as connection:
        reconciled = reconcile(
            store,
            connection,
            MISSING_PUBLICATION,
            log=context.log.warning,
            months=run_months(context.job_def, context.run),
        )
        for month in partition_months(context):
            found = read_window(connection, MISSING_PAYMENTS_TABLE, "missing_month", month, next_month(month))
            frame = _missing_rows(found, month, published_at)
            publish_month(
                store, connection, MISSING_PUBLICATION, f"{month:%Y-%m}", frame, frame.drop(columns=["month"])
            )
            context.add_asset_metadata({"dagster/row_count": len(frame)}, partition_key=month.isoformat())
    return dg.MaterializeResult(
        metadata={
            "parquet": dg.MetadataValue.url(store.url("missing_payments")),
            "reconciled_months": dg.MetadataValue.json(reconciled.fixes),
        }
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
