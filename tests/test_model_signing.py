"""Models are trusted only when signed: HMAC-signed manifests, the signing key, owner-only files, model_integrity.

The forgeries here are made as someone who can write the model store and read `model.key` but not the signing
key would make them: a flipped byte, and a model re-encrypted with `model.key` behind a manifest whose sha256,
size and sealed copy all match it. Models record every unpickling (`UNPICKLED`), so a test sees that a refused
file was never unpickled.
"""

import hashlib
import io
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import joblib
import pytest
from cryptography.fernet import Fernet
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from ads_assets.defs.detection.assets import MODELS_KEY
from ads_assets.defs.detection.checks import MODEL_INTEGRITY, detection_checks, model_integrity
from ads_assets.defs.detection.io_manager import ModelIOManager, TrainedModel, model_io_manager
from ads_assets.lib.registry import (
    SEAL_MAGIC,
    ModelIntegrityError,
    ModelRecord,
    ModelRegistry,
    SigningKey,
    canonical_json,
    model_key,
    model_signing_key,
)
from ads_assets.settings import Settings, SettingsError

WINDOW = ("1995-01-01", "1995-12-31")
ENV_KEY = "e" * 24 + "0123456789abcdef0123456789abcdef"
OTHER_KEY = "o" * 48
PARTITIONS = dg.StaticPartitionsDefinition(["1996-01-01", "1996-02-01"])
RANGE = {ASSET_PARTITION_RANGE_START_TAG: "1996-01-01", ASSET_PARTITION_RANGE_END_TAG: "1996-02-01"}
UNPICKLED: list[str] = []
"""The tag of every Marker unpickled, in order."""


class Marker:
    """A model object that records its own unpickling in UNPICKLED."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return unpickled_marker, (self.tag,)


def unpickled_marker(tag: str) -> Marker:
    UNPICKLED.append(tag)
    return Marker(tag)


@pytest.fixture(autouse=True)
def ads_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "ads_home"
    monkeypatch.setenv("ADS_HOME", str(home))
    for variable in ("ADS_MODEL_KEY", "ADS_MODEL_SIGNING_KEY"):
        monkeypatch.delenv(variable, raising=False)
    UNPICKLED.clear()
    yield home
    UNPICKLED.clear()


def save_marker(registry: ModelRegistry, tag: str = "trained") -> ModelRecord:
    return registry.save("isolation_forest", Marker(tag), {"rows": 10}, WINDOW, {"n": 1}, "v1")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def flip_byte(path: Path, position: int = -20) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x01
    path.write_bytes(bytes(data))


def forge(model_path: Path, model_object: Any, sign_with: SigningKey | None = None) -> None:
    """Replace a stored local model with `model_object` as a holder of `model.key` would: re-encrypted, its
    manifest's sha256 and size recomputed and its sealed copy matching; signed with `sign_with`, else keeping the
    old signature."""
    manifest_file = model_path.with_name("manifest.json")
    manifest = json.loads(manifest_file.read_text())
    sealed = canonical_json(
        {name: value for name, value in manifest.items() if name not in ("sha256", "size", "signature")}
    )
    buffer = io.BytesIO()
    joblib.dump(model_object, buffer)
    stored = Fernet(model_key()).encrypt(SEAL_MAGIC + len(sealed).to_bytes(8, "big") + sealed + buffer.getvalue())
    model_path.write_bytes(stored)
    manifest |= {"sha256": hashlib.sha256(stored).hexdigest(), "size": len(stored)}
    if sign_with is not None:
        manifest["signature"] = sign_with.sign(manifest)
    manifest_file.write_text(json.dumps(manifest))


def test_the_key_file_is_made_once_owner_only_in_ads_home_keys(ads_home: Path) -> None:
    key = model_signing_key()
    key_file = ads_home / "keys" / "model-signing.key"

    assert key.origin == str(key_file)
    assert key.secret == key_file.read_text().strip().encode()
    assert re.fullmatch(rb"[0-9a-f]{64}", key.secret)
    assert (mode(key_file), mode(key_file.parent)) == (0o600, 0o700)
    assert model_signing_key() == key
    assert key.secret.decode() not in repr(key)
    registry = ModelRegistry(str(ads_home / "models"))
    record = save_marker(registry)
    manifest = json.loads(Path(record.path).with_name("manifest.json").read_text())
    assert manifest["signature"]["key_id"] == key.key_id and manifest["signature"]["algorithm"] == "HMAC-SHA256"
    assert manifest["format"] == "ads-model/2"
    assert sorted(path.name for path in (ads_home / "models").rglob("*")) == sorted(
        ["isolation_forest", record.version, "manifest.json", "model.joblib.fernet"]
    )


def test_the_key_from_the_environment_comes_first_and_writes_no_file(
    tmp_path: Path, ads_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADS_MODEL_SIGNING_KEY", ENV_KEY)
    signed = ModelRegistry(str(tmp_path / "models"))
    record = save_marker(signed)

    assert signed.signing_key == SigningKey(ENV_KEY.encode(), "ADS_MODEL_SIGNING_KEY")
    assert not (ads_home / "keys").exists()
    assert signed.load("isolation_forest")[0].tag == "trained"
    monkeypatch.delenv("ADS_MODEL_SIGNING_KEY")
    file_key = model_signing_key()
    with pytest.raises(ModelIntegrityError) as refused:
        ModelRegistry(str(tmp_path / "models")).load("isolation_forest")
    assert str(refused.value) == (
        f"model 'isolation_forest' version '{record.version}' failed signature verification (HMAC-SHA256 of "
        f"{Path(record.path).with_name('manifest.json')}): it is signed with another key (key id "
        f"{signed.signing_key.key_id}), not the model signing key of {file_key.origin} (key id {file_key.key_id}); "
        f"refusing to load"
    )
    assert UNPICKLED == ["trained"]


def test_a_short_key_or_a_key_file_others_may_read_is_refused(ads_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADS_MODEL_SIGNING_KEY", "too-short-a-secret")
    with pytest.raises(SettingsError, match="ADS_MODEL_SIGNING_KEY is too short .* 18 bytes") as short:
        model_signing_key()
    assert "too-short-a-secret" not in str(short.value)

    monkeypatch.delenv("ADS_MODEL_SIGNING_KEY")
    key_file = ads_home / "keys" / "model-signing.key"
    model_signing_key()
    key_file.chmod(0o644)
    with pytest.raises(SettingsError, match=r"model-signing\.key has mode 0644: the group or others may read"):
        model_signing_key()


def test_the_io_manager_reads_the_key_as_an_env_var_in_and_out_of_a_run(
    tmp_path: Path, ads_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(home=ads_home, database_url=None, source=None, output=str(tmp_path / "out"), months=WINDOW)
    on_s3 = Settings(home=ads_home, database_url=None, source=None, output="s3://bucket/ads", months=WINDOW)
    assert model_io_manager(settings).signing_key is None
    assert model_io_manager(settings).keys_folder == str(ads_home / "keys")
    assert model_io_manager(on_s3).keys_folder == str(ads_home / "keys")
    monkeypatch.setenv("ADS_MODEL_SIGNING_KEY", ENV_KEY)
    manager = model_io_manager(settings)

    assert isinstance(manager.signing_key, dg.EnvVar) and manager.signing_key.env_var_name == "ADS_MODEL_SIGNING_KEY"
    assert manager.registry().signing_key.secret == ENV_KEY.encode()
    result = dg.materialize(detection_assets(), resources={"models": manager}, tags=RANGE)
    assert result.success
    manifest = json.loads(next((ads_home / "models").rglob("manifest.json")).read_text())
    assert manifest["signature"]["key_id"] == SigningKey(ENV_KEY.encode(), "").key_id
    assert not (ads_home / "keys").exists()
    assert ENV_KEY not in json.dumps(result.dagster_run.run_config)
    monkeypatch.delenv("ADS_MODEL_SIGNING_KEY")
    with pytest.raises(SettingsError, match="ADS_MODEL_SIGNING_KEY holds the model signing key but is not set"):
        manager.registry()


def test_model_files_are_0600_in_0700_folders_whatever_the_umask(tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    previous = os.umask(0)
    try:
        record = save_marker(ModelRegistry(str(root)))
    finally:
        os.umask(previous)
    model_file = Path(record.path)

    assert (mode(model_file), mode(model_file.with_name("manifest.json"))) == (0o600, 0o600)
    assert [mode(folder) for folder in (root, root / "isolation_forest", model_file.parent)] == [0o700] * 3
    assert not [path.name for path in model_file.parent.iterdir() if path.name.startswith(".")]


def test_a_flipped_byte_is_detected_and_the_file_never_unpickled(tmp_path: Path) -> None:
    registry = ModelRegistry(str(tmp_path / "models"))
    record = save_marker(registry)
    model_file = Path(record.path)
    flip_byte(model_file)

    with pytest.raises(ModelIntegrityError, match=rf"{model_file} was changed or truncated: .*refusing to load"):
        registry.load("isolation_forest")
    with pytest.raises(ModelIntegrityError, match="was changed or truncated"):
        registry.verify("isolation_forest", record.version)
    assert registry.intact("isolation_forest", record.version) is None
    assert UNPICKLED == []
    flip_byte(model_file)
    assert registry.load("isolation_forest")[0].tag == "trained" and UNPICKLED == ["trained"]


def test_a_model_re_encrypted_with_model_key_behind_a_matching_manifest_is_refused(tmp_path: Path) -> None:
    registry = ModelRegistry(str(tmp_path / "models"))
    record = save_marker(registry)
    model_file = Path(record.path)

    forge(model_file, Marker("forged"))
    with pytest.raises(ModelIntegrityError, match=r"failed signature verification .*manifest or its signature was"):
        registry.load("isolation_forest")
    forge(model_file, Marker("forged"), sign_with=SigningKey(OTHER_KEY.encode(), "elsewhere"))
    with pytest.raises(ModelIntegrityError, match=r"signed with another key \(key id [0-9a-f]{16}\)"):
        registry.load("isolation_forest")
    manifest_file = model_file.with_name("manifest.json")
    unsigned = json.loads(manifest_file.read_text()) | {"format": "ads-model/1"}
    del unsigned["signature"]
    manifest_file.write_text(json.dumps(unsigned))
    with pytest.raises(
        ModelIntegrityError, match=r"is not signed: .*manifest\.json has no signature \(format ads-model/1\)"
    ):
        registry.load("isolation_forest")
    assert registry.versions("isolation_forest") == [record.version]
    assert UNPICKLED == []

    manifest_file.write_text(json.dumps(unsigned | {"format": "ads-model/2"}))
    forge(model_file, Marker("forged"), sign_with=registry.signing_key)
    assert registry.load("isolation_forest")[0].tag == "forged" and UNPICKLED == ["forged"]


def detection_assets(scored: list[list[str]] | None = None) -> list[Any]:
    """A stand-in for detection/anomaly_models (one shared model for its two months), a consumer, model_integrity."""

    @dg.asset(
        key=MODELS_KEY,
        partitions_def=PARTITIONS,
        io_manager_key="models",
    )
    def anomaly_models(context: dg.AssetExecutionContext) -> dict[str, TrainedModel]:
        trained = TrainedModel(Marker("trained"), {"rows": 10}, WINDOW, {"n": 1}, data_sha256="ab" * 32)
        return {key: trained for key in context.partition_keys}

    @dg.asset(
        key=["anomaly", "scores"],
        partitions_def=PARTITIONS,
        ins={"models": dg.AssetIn(MODELS_KEY)},
    )
    def scores(context: dg.AssetExecutionContext, models: dict[str, Marker]) -> None:
        if scored is not None:
            scored.append([models[key].tag for key in context.partition_keys])

    return [anomaly_models, scores, model_integrity]


def run_detection(
    manager: ModelIOManager, instance: dg.DagsterInstance, scored: list[list[str]]
) -> tuple[dg.ExecuteInProcessResult, dg.AssetCheckEvaluation, list[Any]]:
    result = dg.materialize(detection_assets(scored), resources={"models": manager}, instance=instance, tags=RANGE)
    [evaluation] = result.get_asset_check_evaluations()
    return result, evaluation, instance.all_logs(result.run_id)


def stored_model(manager: ModelIOManager) -> Path:
    return Path(manager.registry().record("detection__anomaly_models").path)


def integrity_warnings(logs: list[Any]) -> list[tuple[int, str]]:
    return [
        (index, entry.user_message)
        for index, entry in enumerate(logs)
        if not entry.is_dagster_event and entry.level == 30 and "MODEL INTEGRITY" in entry.user_message
    ]


def first_materialization(logs: list[Any]) -> int:
    return next(
        index
        for index, entry in enumerate(logs)
        if entry.is_dagster_event
        and entry.dagster_event.event_type_value == "ASSET_MATERIALIZATION"
        and entry.dagster_event.asset_key == MODELS_KEY
    )


def test_a_run_that_finds_a_flipped_byte_warns_fails_the_check_and_replaces_the_model(tmp_path: Path) -> None:
    manager = ModelIOManager(root=str(tmp_path / "models"))
    scored: list[list[str]] = []
    with dg.DagsterInstance.ephemeral() as instance:
        first, clean, first_logs = run_detection(manager, instance, scored)
        assert first.success and clean.passed and integrity_warnings(first_logs) == []
        assert clean.description == "1 model(s) recorded by this run are signed and intact"
        model_file = stored_model(manager)
        flip_byte(model_file)
        UNPICKLED.clear()

        second, tampered, logs = run_detection(manager, instance, scored)
        third, again, _ = run_detection(manager, instance, scored)

    assert second.success and third.success
    assert (tampered.passed, tampered.severity, tampered.check_name) == (
        False,
        dg.AssetCheckSeverity.ERROR,
        MODEL_INTEGRITY,
    )
    version = model_file.parent.name
    assert tampered.description == (
        "1 stored model(s) were not trusted (unsigned, forged or changed) and were replaced by the models of this "
        f"run: detection__anomaly_models version {version}"
    )
    [problem] = tampered.metadata["problems"].data
    assert problem["model_version"] == version and f"{model_file} was changed or truncated" in problem["problem"]
    assert tampered.metadata["untrusted_replaced"].value == 1
    [(index, warning)] = integrity_warnings(logs)
    assert index < first_materialization(logs)
    assert f"the stored model detection__anomaly_models version {version}" in warning
    assert "was changed or truncated" in warning and "replaces it" in warning
    assert UNPICKLED == ["trained", "trained"]
    assert scored == [["trained", "trained"]] * 3
    assert manager.registry().verify("detection__anomaly_models", version).version == version
    assert again.passed and again.metadata["models_verified"].value == 1


def test_a_run_never_adopts_a_forged_model(tmp_path: Path) -> None:
    manager = ModelIOManager(root=str(tmp_path / "models"))
    scored: list[list[str]] = []
    with dg.DagsterInstance.ephemeral() as instance:
        assert run_detection(manager, instance, scored)[1].passed
        model_file = stored_model(manager)
        forge(model_file, Marker("forged"))
        UNPICKLED.clear()

        result, evaluation, logs = run_detection(manager, instance, scored)

    assert result.success and not evaluation.passed
    [(_, warning)] = integrity_warnings(logs)
    assert "failed signature verification" in warning
    assert "failed signature verification" in evaluation.metadata["problems"].data[0]["problem"]
    assert "forged" not in UNPICKLED and scored[-1] == ["trained", "trained"]
    assert manager.registry().load("detection__anomaly_models")[0].tag == "trained"


def test_the_check_fails_for_a_model_changed_after_its_run(tmp_path: Path) -> None:
    manager = ModelIOManager(root=str(tmp_path / "models"))
    with dg.DagsterInstance.ephemeral() as instance:
        run_detection(manager, instance, [])
        flip_byte(stored_model(manager))
        result = dg.materialize(
            detection_assets(),
            resources={"models": manager},
            instance=instance,
            selection=dg.AssetSelection.checks(model_integrity),
            tags=RANGE,
        )

    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.description.startswith("1 model(s) recorded by run ")
    assert "was changed or truncated" in evaluation.metadata["problems"].data[0]["problem"]
    assert UNPICKLED == ["trained"]


def test_model_integrity_is_a_non_blocking_check_of_detection_anomaly_models() -> None:
    [check] = detection_checks
    [spec] = check.check_specs

    assert (spec.asset_key, spec.name, spec.blocking) == (MODELS_KEY, "model_integrity", False)
    assert check.node_def.name == "detection__anomaly_models_model_integrity"
    assert "models" in check.required_resource_keys
