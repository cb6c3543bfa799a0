"""The IO manager of trained models: the model registry, local or on S3, signed on save and verified on every load."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource

from ads_assets.lib.registry import (
    KEYS_FOLDER,
    SIGNING_KEY_VARIABLE,
    ModelIntegrityError,
    ModelNotFoundError,
    ModelRecord,
    ModelRegistry,
    model_signing_key,
    model_version,
)
from ads_assets.lib.storage import is_s3, s3_endpoint_url, s3_region
from ads_assets.settings import Settings, SettingsError

MODELS_FOLDER = "models"
UNTRUSTED_MODELS = "untrusted_models"
"""Output metadata: the stored models that an output found untrusted (unsigned, forged or changed) and replaced."""


@dataclass(frozen=True)
class TrainedModel:
    """What a training asset returns: the fitted model and what it was trained on.

    `code_version` defaults to the asset's `code_version`, else the installed ADS version. `data_sha256`, a
    digest of the training rows, makes the version name the model's content (window, parameters, code and data):
    in a partitioned output such a model is stored once under the asset's name and shared by every partition
    that returns it, in this run or a later one. Without it each partition's model is stored under its own name.
    """

    model: Any
    metadata: dict[str, Any]
    training_window: tuple[str, str]
    parameters: dict[str, Any] = field(default_factory=dict)
    code_version: str | None = None
    data_sha256: str | None = None


class ModelIOManager(dg.ConfigurableIOManager):
    """Stores `TrainedModel` outputs in the model registry at `root` (a folder or `s3://bucket/prefix`).

    Each materialization records the model's version and sha256; a downstream input gets the model object of
    the version the upstream materialization (of the same partition) recorded, verified against that sha256,
    or the latest version when there is no such record. A partitioned output records, per partition, the name,
    version and sha256 of its model; models with a `data_sha256` are stored once and shared (an intact stored
    version is kept, not rewritten, so what other partitions recorded stays valid). S3 objects are written with SSE-KMS (`kms_key_id`,
    else `ADS_S3_KMS_KEY_ID`, else the default S3 KMS key) through the `s3` resource's client when given.

    Manifests are signed with `signing_key` (set it with `dg.EnvVar("ADS_MODEL_SIGNING_KEY")`; unset: that
    variable, else the key file in `keys_folder`, default `$ADS_HOME/keys`; see `ads_assets.lib.registry`). A
    stored version that an output would keep or replace but that fails verification is never adopted: a warning
    names it, the output's model replaces it, and the output's `untrusted_models` metadata lists it, which fails
    the `model_integrity` check.
    """

    root: str
    kms_key_id: str | None = None
    s3: S3Resource | None = None
    signing_key: str | None = None
    keys_folder: str | None = None

    def registry(self) -> ModelRegistry:
        client = self.s3.get_client() if self.s3 is not None and is_s3(self.root) else None
        key = model_signing_key(self._signing_key_value(), Path(self.keys_folder) if self.keys_folder else None)
        return ModelRegistry(self.root, kms_key_id=self.kms_key_id, s3_client=client, signing_key=key)

    def _signing_key_value(self) -> str | None:
        """`signing_key`, read from its environment variable when it is an `EnvVar` not yet resolved by a run."""
        if not isinstance(self.signing_key, dg.EnvVar):
            return self.signing_key
        value = self.signing_key.get_value()
        if not value:
            raise SettingsError(f"{self.signing_key.env_var_name} holds the model signing key but is not set")
        return value

    def handle_output(self, context: dg.OutputContext, obj: TrainedModel | Mapping[str, TrainedModel]) -> None:
        if isinstance(obj, Mapping):
            self._handle_partitioned_output(context, obj)
            return
        if not isinstance(obj, TrainedModel):
            raise TypeError(
                f"{context.asset_key.to_user_string() if context.has_asset_key else context.name}: the model IO "
                f"manager stores TrainedModel objects, got {type(obj).__name__}"
            )
        name = _model_name(context)
        registry = self.registry()
        code_version = obj.code_version or _code_version(context)
        version = model_version(name, obj.training_window, obj.parameters, code_version, obj.data_sha256)
        untrusted: list[dict[str, str]] = []
        _stored_version(context, registry, name, version, untrusted)
        record = registry.save(
            name, obj.model, obj.metadata, obj.training_window, obj.parameters, code_version, obj.data_sha256
        )
        context.add_output_metadata(_record_metadata(record) | {UNTRUSTED_MODELS: dg.MetadataValue.json(untrusted)})

    def _handle_partitioned_output(self, context: dg.OutputContext, models: Mapping[str, TrainedModel]) -> None:
        """One model per partition key, for an output that spans several partitions (a single-run backfill)."""
        expected = set(context.asset_partition_keys) if context.has_asset_partitions else set()
        if set(models) != expected:
            raise dg.DagsterInvariantViolationError(
                f"{_model_name(context)}: models for partitions {sorted(models)} but the output covers {sorted(expected)}"
            )
        registry = self.registry()
        name = _model_name(context)
        stored: dict[tuple[str, str], ModelRecord] = {}
        recorded: dict[str, dict[str, str]] = {}
        untrusted: list[dict[str, str]] = []
        for partition_key, trained in sorted(models.items()):
            code_version = trained.code_version or _code_version(context)
            shared = trained.data_sha256 is not None
            stored_name = name if shared else _partition_model_name(name, partition_key)
            version = model_version(
                stored_name, trained.training_window, trained.parameters, code_version, trained.data_sha256
            )
            record = stored.get((stored_name, version))
            if record is None:
                intact = _stored_version(context, registry, stored_name, version, untrusted)
                record = intact if shared else None
            if record is None:
                record = registry.save(
                    stored_name,
                    trained.model,
                    trained.metadata,
                    trained.training_window,
                    trained.parameters,
                    code_version,
                    trained.data_sha256,
                )
            stored[(stored_name, version)] = record
            recorded[partition_key] = {
                "model_name": stored_name,
                "model_version": record.version,
                "model_sha256": record.sha256,
                "training_window": f"{record.training_window[0]}:{record.training_window[1]}",
            }
        context.add_output_metadata(
            {
                "model_count": len(recorded),
                "distinct_models": len(stored),
                "models": dg.MetadataValue.json(recorded),
                UNTRUSTED_MODELS: dg.MetadataValue.json(untrusted),
            }
        )

    def load_input(self, context: dg.InputContext) -> Any:
        upstream = context.upstream_output
        if upstream is None:
            raise dg.DagsterInvariantViolationError(f"{context.name}: a model input needs an upstream output")
        name = _model_name(upstream)
        if context.has_asset_partitions and _stored_per_partition(context):
            return self._load_partitioned(context, name)
        recorded = _recorded_model(context)
        model, record = self.registry().load(
            name,
            recorded.get("model_version"),
            expected_sha256=recorded.get("model_sha256"),
        )
        context.add_input_metadata({"model_version": record.version, "model_sha256": record.sha256})
        return model

    def _load_partitioned(self, context: dg.InputContext, name: str) -> dict[str, Any]:
        """Per partition key of the input, that partition's model, verified against the recorded sha256.

        A model that several partitions share is loaded once.
        """
        registry = self.registry()
        cache: dict[tuple[str, str | None, str | None], Any] = {}
        loaded: dict[str, Any] = {}
        for partition_key in context.asset_partition_keys:
            recorded = recorded_partition_model(context.instance, context.asset_key, partition_key)
            key = (
                recorded.get("model_name", _partition_model_name(name, partition_key)),
                recorded.get("model_version"),
                recorded.get("model_sha256"),
            )
            if key not in cache:
                cache[key] = registry.load(key[0], key[1], expected_sha256=key[2])[0]
            loaded[partition_key] = cache[key]
        return loaded


def model_io_manager(settings: Settings) -> ModelIOManager:
    """Models in `$ADS_HOME/models`, or in `{ADS_OUTPUT}/models` when the outputs go to S3.

    Signed with `ADS_MODEL_SIGNING_KEY` (an `EnvVar`, never written to run config) when set, else with the key file
    in `$ADS_HOME/keys`, on the local disk in both cases.
    """
    signing_key = dg.EnvVar(SIGNING_KEY_VARIABLE) if os.environ.get(SIGNING_KEY_VARIABLE) else None
    keys_folder = str(settings.home / KEYS_FOLDER)
    if is_s3(settings.output):
        return ModelIOManager(
            root=f"{settings.output.rstrip('/')}/{MODELS_FOLDER}",
            s3=S3Resource(region_name=s3_region(), endpoint_url=s3_endpoint_url()),
            signing_key=signing_key,
            keys_folder=keys_folder,
        )
    return ModelIOManager(root=str(settings.models), signing_key=signing_key, keys_folder=keys_folder)


def _stored_version(
    context: dg.OutputContext, registry: ModelRegistry, name: str, version: str, untrusted: list[dict[str, str]]
) -> ModelRecord | None:
    """The verified record of a stored version, or None when it is absent or untrusted.

    An untrusted version (unsigned, signed with another key, changed or truncated) is logged as a warning and
    appended to `untrusted`; nothing of it is unpickled.
    """
    try:
        return registry.verify(name, version)
    except ModelNotFoundError:
        return None
    except ModelIntegrityError as error:
        path = registry.where(f"{name}/{version}")
        context.log.warning(
            f"MODEL INTEGRITY: the stored model {name} version {version} ({path}) is not trusted and is not used: "
            f"{error}. The model trained in this run replaces it, and the model_integrity check fails."
        )
        untrusted.append({"model_name": name, "model_version": version, "path": path, "problem": str(error)})
        return None


def _model_name(context: dg.OutputContext) -> str:
    if context.has_asset_key:
        return context.asset_key.to_python_identifier()
    return f"{context.step_key}__{context.name}".replace("[", "_").replace("]", "")


def _code_version(context: dg.OutputContext) -> str:
    if context.has_asset_key:
        try:
            code_version = context.asset_spec.code_version
        except dg.DagsterInvariantViolationError:
            code_version = None
        if code_version:
            return code_version
    try:
        return f"ads-{package_version('ads')}"
    except PackageNotFoundError:
        return "ads-unversioned"


def _record_metadata(record: ModelRecord) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "model_version": record.version,
        "model_sha256": record.sha256,
        "model_path": dg.MetadataValue.url(record.path) if is_s3(record.path) else dg.MetadataValue.path(record.path),
        "training_window": f"{record.training_window[0]}:{record.training_window[1]}",
        "code_version": record.code_version,
        "parameters": dg.MetadataValue.json(record.parameters),
        "model_metadata": dg.MetadataValue.json(record.metadata),
    }
    if isinstance(record.metadata.get("rows"), int):
        metadata["dagster/row_count"] = record.metadata["rows"]
    return metadata


def _partition_model_name(name: str, partition_key: str) -> str:
    return f"{name}__{partition_key}"


def recorded_partition_model(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition_key: str
) -> dict[str, str]:
    """The model name, version and sha256 that the latest materialization of `partition_key` recorded for it.

    Empty when the partition was never materialized; no `model_name` when it was stored under the partition's
    own name.
    """
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition_key]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return {}
    models = records[0].asset_materialization.metadata.get("models")
    recorded = models.value.get(partition_key, {}) if models is not None and isinstance(models.value, dict) else {}
    return {key: value for key, value in recorded.items() if key in ("model_name", "model_version", "model_sha256")}


def _stored_per_partition(context: dg.InputContext) -> bool:
    """True when the input gets a {partition key: model} dict rather than one model.

    That is when it spans several partitions, or when its one partition was stored by a partitioned output
    (which records its models per partition); a model stored alone is loaded as itself.
    """
    keys = context.asset_partition_keys
    return len(keys) > 1 or bool(recorded_partition_model(context.instance, context.asset_key, keys[0]))


def _recorded_model(context: dg.InputContext) -> dict[str, str]:
    """model_version and model_sha256 of the upstream asset's latest materialization (of this partition)."""
    if not context.has_asset_key:
        return {}
    partition = None
    if context.has_asset_partitions:
        keys = context.asset_partition_keys
        if len(keys) != 1:
            raise dg.DagsterInvariantViolationError(
                f"{context.name}: a model input maps to one partition of {context.asset_key.to_user_string()}, "
                f"not {len(keys)}"
            )
        partition = keys[0]
    try:
        instance = context.instance
    except dg.DagsterInvariantViolationError:
        return {}
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=[partition] if partition else None),
        limit=1,
    ).records
    if not records or records[0].asset_materialization is None:
        return {}
    metadata = records[0].asset_materialization.metadata
    return {
        field_name: metadata[field_name].value
        for field_name in ("model_version", "model_sha256")
        if field_name in metadata and isinstance(metadata[field_name].value, str)
    }
