"""Asset checks of detection: `model_integrity`, whether the models that score the months are signed and intact."""

from typing import Any

import dagster as dg

from ads_assets.defs.detection.assets import MODELS_KEY
from ads_assets.defs.detection.io_manager import UNTRUSTED_MODELS, ModelIOManager
from ads_assets.lib.registry import ModelIntegrityError, ModelNotFoundError, ModelRegistry

MODEL_INTEGRITY = "model_integrity"


def model_integrity_result(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, registry: ModelRegistry, run_id: str
) -> dg.AssetCheckResult:
    """Whether the latest materialization of `asset_key` met only trusted stored models, and its models verify now.

    Fails (severity ERROR) when that materialization found stored models that were unsigned, signed with another
    key, changed or truncated (its `untrusted_models` metadata), which it did not use and replaced, or when a
    model it recorded now fails verification (signature, sha256 and sealed manifest; nothing is unpickled) or no
    longer has the sha256 it recorded.
    """
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=asset_key), limit=1).records
    if not records or records[0].asset_materialization is None:
        return dg.AssetCheckResult(passed=True, description=f"{asset_key.to_user_string()} has no materialization")
    record = records[0]
    metadata = record.asset_materialization.metadata
    untrusted = _json(metadata.get(UNTRUSTED_MODELS), [])
    problems = [
        {"model_name": found["model_name"], "model_version": found["model_version"], "problem": found["problem"]}
        for found in untrusted
    ]
    recorded = _recorded_models(metadata, asset_key)
    for name, version, sha256 in sorted(recorded):
        try:
            verified = registry.verify(name, version)
        except (ModelNotFoundError, ModelIntegrityError) as error:
            problems.append({"model_name": name, "model_version": version, "problem": str(error)})
            continue
        if verified.sha256 != sha256:
            problems.append(
                {
                    "model_name": name,
                    "model_version": version,
                    "problem": f"{verified.path} has sha256 {verified.sha256}, the materialization recorded {sha256}",
                }
            )
    which = "this run" if record.run_id == run_id else f"run {record.run_id}"
    if untrusted:
        listed = "; ".join(f"{found['model_name']} version {found['model_version']}" for found in untrusted)
        description = (
            f"{len(untrusted)} stored model(s) were not trusted (unsigned, forged or changed) and were replaced by "
            f"the models of {which}: {listed}"
        )
    elif problems:
        description = f"{len(problems)} model(s) recorded by {which} fail verification"
    else:
        description = f"{len(recorded)} model(s) recorded by {which} are signed and intact"
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "models_verified": len(recorded),
            "untrusted_replaced": len(untrusted),
            "problems": dg.MetadataValue.json(problems),
            "materialization_run_id": record.run_id,
        },
    )


@dg.asset_check(
    asset=MODELS_KEY,
    name=MODEL_INTEGRITY,
    blocking=False,
    required_resource_keys={"models"},
    description=(
        "Every model the latest materialization recorded is signed with the model signing key and intact, and it "
        "met no untrusted stored model (one it met was not used and was replaced by the model it trained)."
    ),
)
def model_integrity(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """The `model_integrity` check of `detection/anomaly_models`, through the `models` IO manager's registry."""
    models: ModelIOManager = context.resources.models
    return model_integrity_result(context.instance, MODELS_KEY, models.registry(), context.run.run_id)


def _json(value: dg.MetadataValue | None, default: Any) -> Any:
    return value.value if value is not None and isinstance(value.value, type(default)) else default


def _recorded_models(metadata: dict[str, dg.MetadataValue], asset_key: dg.AssetKey) -> set[tuple[str, str, str]]:
    """(name, version, sha256) of each distinct model a materialization recorded: per partition, or its one model."""
    per_partition = _json(metadata.get("models"), {})
    if per_partition:
        return {
            (model["model_name"], model["model_version"], model["model_sha256"])
            for model in per_partition.values()
            if {"model_name", "model_version", "model_sha256"} <= set(model)
        }
    version, sha256 = _json(metadata.get("model_version"), ""), _json(metadata.get("model_sha256"), "")
    return {(asset_key.to_python_identifier(), version, sha256)} if version and sha256 else set()


detection_checks = [model_integrity]
