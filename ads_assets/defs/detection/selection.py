"""The model selection asset: each retrain's candidates evaluated on canaries and labels, and the champion chosen."""

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import psycopg

from ads_assets.defs.dbt.project import dbt_project, target_folder
from ads_assets.defs.keys import FEATURES_KEY, MODELS_KEY, SELECTION_KEY
from ads_assets.defs.partitions import monthly_partitions, next_month, partition_months
from ads_assets.defs.resources import AlertsResource, MetricsResource, OutputStoreResource, PostgresResource
from ads_assets.defs.run_scope import run_months
from ads_assets.lib.alerting import AlertEvent, model_performance
from ads_assets.lib.canaries import NORMAL, Canaries, build_canaries, read_spans
from ads_assets.lib.detection.ensemble import EnsembleDetector
from ads_assets.lib.detection.scoring import by_date, empty_scores, score_month
from ads_assets.lib.detection.selection import (
    BASELINE,
    LEADERBOARD_PUBLICATION,
    baseline_ensemble,
    baseline_training,
    candidate_scores,
    candidate_weights,
    candidates,
    ensure_selection_tables,
    flagged,
    leaderboard,
    markdown,
    per_kind_json,
    record_shadow,
    selected,
    top_overlap,
)
from ads_assets.lib.metrics import Metric, canary_metrics
from ads_assets.lib.publish import publish_month, reconcile
from ads_assets.lib.tables import FEATURES_TABLE, read_labels, read_query, with_analyst_labels

ANALYST_CONFIRMED = "analyst_confirmed"


class SelectionConfig(dg.Config):
    """The canary copy: `canary_accounts` accounts sampled with `seed`, `canaries_per_kind` rows of each kind per
    validation month (one group for the kinds of several postings)."""

    canary_accounts: int = 400
    canaries_per_kind: int = 4
    seed: int = 0


@dataclass(frozen=True)
class Retrain:
    """A model to select for: its version, the months it scores and its training window (dates, inclusive)."""

    version: str
    model: EnsembleDetector
    months: tuple[date, ...]
    trained_from: date
    trained_to: date

    @property
    def retrain_month(self) -> date:
        """The month after the model's last training day: when it was retrained."""
        return next_month(self.trained_to.replace(day=1))

    @property
    def validation_month(self) -> date:
        """The last month before the retrain month, the last its training saw: known at retrain time."""
        return self.trained_to.replace(day=1)

    @property
    def cold_start(self) -> bool:
        return self.retrain_month > self.months[0]


@dg.asset(
    key=SELECTION_KEY,
    deps=[FEATURES_KEY],
    ins={"anomaly_models": dg.AssetIn(MODELS_KEY)},
    partitions_def=monthly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="detection",
    kinds={"scikit-learn", "postgres", "parquet"},
)
def model_selection(
    context: dg.AssetExecutionContext,
    config: SelectionConfig,
    anomaly_models: dict[str, EnsembleDetector],
    postgres: PostgresResource,
    output_store: OutputStoreResource,
    metrics: MetricsResource,
    alerts: AlertsResource,
) -> dg.MaterializeResult:
    """Which way of scoring each retrain's model uses: the champion of its candidates, and the runner-up.

    Candidates: each detector alone, the configured weights, equal weights and each detector left out (all
    with the rules), and a plain Isolation Forest on the raw columns as the baseline. They are evaluated on
    the retrain's validation month, the last month before the retrain month (the last its training saw, so
    known at retrain time), where canaries are planted: the anomaly kinds injected into a copy of a sample
    of accounts whose features dbt builds with the production SQL; analyst labels of transactions dated before the retrain month count too
    (`confirmed` as positives of kind `analyst_confirmed`, `false_positive` as negatives). The champion has
    the best average precision among those whose top-1 % recall of every kind is at least the best single
    candidate's less 0.1. Published per retrain month in `anomaly.model_leaderboard` and
    `{output}/model_leaderboard/month=YYYY-MM/` (retrain_month, candidate, average_precision, recall_at_1pct,
    per_kind JSON, is_champion, rank, meets_floor); `anomaly/transaction_scores` scores with the champion
    and the runner-up in shadow. Cold-start models have no month before them and keep their configured weights.
    """
    started = time.perf_counter()
    months = partition_months(context)
    retrains = _retrains(context.instance, months, anomaly_models)
    selectable = [retrain for retrain in retrains if not retrain.cold_start and _reweightable(context, retrain)]
    store = output_store.store()
    champions: dict[str, dict[str, str | None]] = {}
    boards: dict[str, pd.DataFrame] = {}
    with postgres.connect() as connection:
        ensure_selection_tables(connection)
        reconcile(
            store,
            connection,
            LEADERBOARD_PUBLICATION,
            log=context.log.warning,
            months=run_months(context.job_def, context.run),
        )
        canaries = _canaries(postgres, connection, selectable, config) if selectable else None
        build_seconds = time.perf_counter() - started
        labels = read_labels(connection)
        canary_rows: list[Metric] = []
        for retrain in selectable:
            evaluation = _evaluate(connection, retrain, canaries, labels)
            if evaluation is None:
                context.log.info(f"{retrain.retrain_month:%Y-%m}: no positives in the validation month, no selection")
                continue
            board, scores, kinds = evaluation
            boards[f"{retrain.retrain_month:%Y-%m}"] = board
            champion = str(board["candidate"].iloc[0])
            threshold = -np.inf if champion == BASELINE else retrain.model.threshold
            champion_alerts = flagged(scores[champion], threshold, retrain.model.alert_budget)
            partition = f"{retrain.retrain_month:%Y-%m}"
            positives = int((kinds != NORMAL).sum())
            budget = max(1, int(np.floor(retrain.model.alert_budget * len(champion_alerts))))
            canary_rows += [
                *canary_metrics(context.run.run_id, partition, kinds != NORMAL, champion_alerts),
                Metric(context.run.run_id, partition, "canaries", "recall_achievable", min(1.0, budget / positives)),
            ]
            publish_month(
                store,
                connection,
                LEADERBOARD_PUBLICATION,
                f"{retrain.retrain_month:%Y-%m}",
                _postgres_rows(board, retrain),
                _parquet_rows(board, retrain),
            )
            champions[f"{retrain.retrain_month:%Y-%m}"] = {
                "champion": str(board["candidate"].iloc[0]),
                "runner_up": str(board["candidate"].iloc[1]) if len(board) > 1 else None,
                "model_version": retrain.version,
            }
        metrics.report(connection, canary_rows, context.log)
        alerts.raise_and_deliver(connection, _recall_drops(canary_rows, champions), context.log)
    for retrain in retrains:
        chosen = champions.get(f"{retrain.retrain_month:%Y-%m}", {"champion": "default", "runner_up": None})
        weights = candidate_weights(retrain.model.weights, chosen["champion"] or "default")
        for month in retrain.months:
            context.add_asset_metadata(
                {
                    "champion": chosen["champion"],
                    "champion_weights": dg.MetadataValue.json(weights or {"baseline": 1.0}),
                    "runner_up": chosen["runner_up"] or "none",
                    "retrain_month": f"{retrain.retrain_month:%Y-%m}",
                    "validation_month": f"{retrain.validation_month:%Y-%m}" if not retrain.cold_start else "none",
                },
                partition_key=month.isoformat(),
            )
    last = max(boards) if boards else None
    seconds = time.perf_counter() - started
    summary = ", ".join(f"{month} {chosen['champion']}" for month, chosen in sorted(champions.items()))
    context.log.info(
        f"model selection: {len(boards)} retrains evaluated in {seconds:.1f} s (canary copy {build_seconds:.1f} s, "
        f"{sum(canaries.counts().values()) if canaries else 0} canaries); champions: {summary or 'none'}"
    )
    return dg.MaterializeResult(
        metadata={
            "leaderboard": dg.MetadataValue.md(
                f"retrain {last}\n\n{markdown(boards[last])}" if last else "no retrain month with a validation month"
            ),
            "champions": dg.MetadataValue.json(champions),
            "canaries_per_kind": dg.MetadataValue.json(canaries.counts() if canaries else {}),
            "canary_build_seconds": round(build_seconds, 1),
            "seconds": round(seconds, 1),
            "parquet": dg.MetadataValue.url(store.url(LEADERBOARD_PUBLICATION.name)),
        }
    )


def _reweightable(context: dg.AssetExecutionContext, retrain: Retrain) -> bool:
    """Whether the model kept its detectors' reference evidence (models stored before selection existed did not)."""
    if getattr(retrain.model, "reference_evidence_", None) is not None:
        return True
    context.log.warning(
        f"model {retrain.version} was stored without its detectors' reference evidence: it keeps its weights "
        "(a retrain with the current code makes it selectable)"
    )
    return False


def recorded_training(instance: dg.DagsterInstance, month: date) -> tuple[str, date, date] | None:
    """The model version and training window (first and last day) that `detection/anomaly_models` recorded for `month`."""
    key = month.isoformat()
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=MODELS_KEY, asset_partitions=[key]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    models = records[0].asset_materialization.metadata.get("models")
    recorded = models.value.get(key, {}) if models is not None and isinstance(models.value, dict) else {}
    if "model_version" not in recorded or "training_window" not in recorded:
        return None
    first, last = recorded["training_window"].split(":")
    return recorded["model_version"], date.fromisoformat(first), date.fromisoformat(last)


def _retrains(instance: dg.DagsterInstance, months: list[date], models: dict[str, EnsembleDetector]) -> list[Retrain]:
    grouped: dict[str, list[date]] = {}
    windows: dict[str, tuple[date, date]] = {}
    for month in months:
        recorded = recorded_training(instance, month)
        if recorded is None:
            continue
        version, first, last = recorded
        grouped.setdefault(version, []).append(month)
        windows[version] = (first, last)
    return [
        Retrain(version, models[scored[0].isoformat()], tuple(scored), *windows[version])
        for version, scored in grouped.items()
    ]


def _canaries(
    postgres: PostgresResource, connection: psycopg.Connection, retrains: list[Retrain], config: SelectionConfig
) -> Canaries:
    return build_canaries(
        postgres.target(),
        connection,
        sorted({retrain.validation_month for retrain in retrains}),
        dbt_project.project_dir,
        target_folder(dbt_project).parent / "canaries",
        accounts=config.canary_accounts,
        per_kind=config.canaries_per_kind,
        lookback_days=max(retrain.model.lookback_days for retrain in retrains),
        seed=config.seed,
    )


CANARY_RECALL_FLOOR = 0.5
"""A champion whose alerts catch less than this share of the canaries they could catch (the month's alert budget
caps them: `recall_achievable`) raises a `model_performance` alert."""


def _recall_drops(rows: list[Metric], champions: dict[str, dict[str, str | None]]) -> list[AlertEvent]:
    values = {(row.partition, row.name): row.value for row in rows}
    drops = []
    for (partition, name), recall in values.items():
        if name != "recall" or partition not in champions:
            continue
        floor = CANARY_RECALL_FLOOR * values.get((partition, "recall_achievable"), 1.0)
        if recall < floor:
            version = str(champions[partition]["model_version"])
            drops.append(model_performance(version, "canary_recall", recall, round(floor, 3), partition))
    return drops


def _evaluate(
    connection: psycopg.Connection, retrain: Retrain, canaries: Canaries, labels: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, np.ndarray], np.ndarray] | None:
    """The leaderboard of `retrain` on its validation month with canaries and the labels known then, with every
    candidate's scores and each row's kind (`NORMAL` for the rest).

    The rows carry the labels known at retrain time (`analyst_label`), so the supervised candidate reads its
    label risk features as it will when scoring."""
    month = retrain.validation_month
    model = retrain.model
    start = month - timedelta(days=model.lookback_days)
    real = read_spans(connection, [(start, next_month(month))])
    real = real.loc[~real["account_id"].isin(list(canaries.accounts))]
    planted = canaries.features
    planted_days = pd.to_datetime(planted["trans_date"])
    planted = planted.loc[(planted_days >= pd.Timestamp(start)) & (planted_days < pd.Timestamp(next_month(month)))]
    rows = by_date(pd.concat([real, planted], ignore_index=True))
    in_month = pd.to_datetime(rows["trans_date"]) >= pd.Timestamp(month)
    frame, history = rows.loc[in_month.to_numpy()], rows.loc[~in_month.to_numpy()]
    known = labels.loc[pd.to_datetime(labels["trans_date"]) < pd.Timestamp(retrain.retrain_month)]
    earlier = known.loc[~known["trans_id"].isin(frame["trans_id"])]
    if len(earlier):
        extra = read_query(
            connection,
            f"SELECT * FROM {FEATURES_TABLE} WHERE trans_id = ANY(%s)",  # noqa: S608 - module constant, values as parameters
            (earlier["trans_id"].astype(int).tolist(),),
        )
        frame = pd.concat([frame, extra], ignore_index=True)
    frame = frame.reset_index(drop=True)
    kinds = _kinds(frame, canaries, known)
    if not (kinds != NORMAL).any():
        return None
    label_of = dict(zip(known["trans_id"].astype(int), known["label"].astype(str), strict=True))
    frame, history = with_analyst_labels(frame, label_of), with_analyst_labels(history, label_of)
    scored = model.score_frame(frame, history if model.lookback_days else None)
    baseline = baseline_ensemble(model, _baseline_training(connection, retrain), model.random_state)
    scores = candidate_scores(model, scored, baseline, frame)
    singles = [candidate.name for candidate in candidates(model.weights) if candidate.is_single]
    return leaderboard(scores, kinds, singles), scores, kinds


def _kinds(frame: pd.DataFrame, canaries: Canaries, labels: pd.DataFrame) -> np.ndarray:
    analyst = dict(zip(labels["trans_id"].astype(int), labels["label"].astype(str), strict=True))
    kinds = []
    for trans_id in frame["trans_id"].astype(int):
        planted = canaries.kinds.get(trans_id)
        if planted is not None:
            kinds.append(planted)
        else:
            kinds.append(ANALYST_CONFIRMED if analyst.get(trans_id) == "confirmed" else NORMAL)
    return np.array(kinds, dtype=object)


def _baseline_training(connection: psycopg.Connection, retrain: Retrain) -> pd.DataFrame:
    return baseline_training(connection, retrain.trained_from, retrain.trained_to)


def _postgres_rows(board: pd.DataFrame, retrain: Retrain) -> pd.DataFrame:
    return _parquet_rows(board, retrain).assign(month=f"{retrain.retrain_month:%Y-%m}")


def _parquet_rows(board: pd.DataFrame, retrain: Retrain) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "retrain_month": retrain.retrain_month,
            "validation_month": retrain.validation_month,
            "model_version": retrain.version,
            "candidate": board["candidate"].astype(str),
            "rank": board["rank"].astype("int64"),
            "average_precision": board["average_precision"].astype(float),
            "recall_at_1pct": board["recall_at_1pct"].astype(float),
            "per_kind": [per_kind_json(per_kind) for per_kind in board["per_kind"]],
            "meets_floor": board["meets_floor"].astype(bool),
            "is_champion": board["is_champion"].astype(bool),
            "evaluated_at": datetime.now(UTC),
        }
    )


@dataclass
class ScoredMonth:
    """A month's score rows, the candidate that scored them (None: no selection, the model as trained) and
    the shadow comparison with the runner-up (None without one)."""

    scores: pd.DataFrame
    champion: str | None
    shadow: dict[str, object] | None


class Champions:
    """Scores months with the champion of their model's selection and the runner-up in shadow."""

    def __init__(self, instance: dg.DagsterInstance, connection: psycopg.Connection) -> None:
        self.instance = instance
        self.connection = connection
        self.baselines: dict[str, EnsembleDetector] = {}

    def score(
        self,
        ensemble: EnsembleDetector,
        features: pd.DataFrame,
        month: date,
        version: str,
        history: pd.DataFrame | None,
        refreshed: str = "",
    ) -> ScoredMonth:
        """`features` scored by the champion (version `<model version>+<champion>`), the runner-up compared in
        `anomaly.shadow_comparison`; by `ensemble` itself under `version` when no selection names the model.

        `refreshed`: the suffix of an ensemble that online learning refreshed since it was stored (`+online.<n>`),
        appended to the version the scores carry.
        """
        chosen = selected(self.connection, version) if not features.empty else None
        if chosen is None:
            scores = (
                score_month(ensemble, features, month, version + refreshed, history)
                if not features.empty
                else empty_scores()
            )
            return ScoredMonth(scores, None, None)
        champion_name, runner_up_name = chosen
        champion = self._candidate(ensemble, champion_name, month, version)
        frame = features.reset_index(drop=True)
        scored = champion.score_frame(frame, history)
        scores = score_month(champion, frame, month, f"{version}+{champion_name}{refreshed}", history, scored=scored)
        if runner_up_name is None:
            return ScoredMonth(scores, champion_name, None)
        runner_up = self._candidate(ensemble, runner_up_name, month, version)
        shared = all(any(detector is ours for ours in champion.detectors) for detector in runner_up.detectors)
        evidence = scored.evidence if shared else runner_up.score_frame(frame, history).evidence
        shadow = runner_up.score_evidence(evidence, scored.rules)
        champion_alerts = scores["is_anomaly"].to_numpy(dtype=bool)
        shadow_alerts = flagged(
            shadow, runner_up.threshold, runner_up.alert_budget, runner_up.combined_evidence(evidence)
        )
        comparison = {
            "model_version": version,
            "champion": champion_name,
            "runner_up": runner_up_name,
            "rows": len(frame),
            "champion_flagged": int(champion_alerts.sum()),
            "runner_up_flagged": int(shadow_alerts.sum()),
            "flagged_by_both": int((champion_alerts & shadow_alerts).sum()),
            "top_overlap": top_overlap(scores["score"].to_numpy(dtype=float), shadow),
        }
        record_shadow(self.connection, f"{month:%Y-%m}", comparison)
        return ScoredMonth(scores, champion_name, comparison)

    def _candidate(self, ensemble: EnsembleDetector, name: str, month: date, version: str) -> EnsembleDetector:
        weights = candidate_weights(ensemble.weights, name)
        if weights is not None:
            return ensemble.reweighted(weights)
        if version not in self.baselines:
            recorded = recorded_training(self.instance, month)
            if recorded is None:
                raise dg.Failure(
                    f"{month:%Y-%m}: the baseline won the selection but the model's training window is not recorded"
                )
            _, first, last = recorded
            self.baselines[version] = baseline_ensemble(
                ensemble, baseline_training(self.connection, first, last), ensemble.random_state
            )
        return self.baselines[version]
