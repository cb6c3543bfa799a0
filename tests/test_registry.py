"""The model registry (local Fernet, S3 SSE-KMS on moto's server, signed manifests) and the Dagster IO manager on top of it."""

from __future__ import annotations

import json
import os
import pickle
import stat
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pytest
from cryptography.fernet import Fernet
from dagster_aws.s3 import S3Resource
from sklearn.ensemble import IsolationForest

from ads_assets.defs.detection.io_manager import (
    ModelIOManager,
    TrainedModel,
    model_io_manager,
    recorded_partition_model,
)
from ads_assets.defs.resources import OutputStoreResource, output_store_resource
from ads_assets.lib.registry import (
    ModelIntegrityError,
    ModelNotFoundError,
    ModelRegistry,
    model_key,
    model_version,
)
from ads_assets.lib.storage import OutputStore
from ads_assets.settings import Settings

WINDOW = ("1993-01", "1996-12")
PARAMETERS = {"n_estimators": 50, "contamination": 0.005, "random_state": 7}
MARKER = "a-plaintext-marker-in-the-model"


@pytest.fixture(autouse=True)
def ads_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "ads_home"
    monkeypatch.setenv("ADS_HOME", str(home))
    monkeypatch.delenv("ADS_MODEL_KEY", raising=False)
    monkeypatch.delenv("ADS_MODEL_SIGNING_KEY", raising=False)
    return home


@pytest.fixture(scope="module")
def training() -> tuple[IsolationForest, np.ndarray]:
    features = np.random.default_rng(3).normal(size=(300, 4))
    return IsolationForest(n_estimators=50, contamination=0.005, random_state=7).fit(features), features


def save_forest(registry: ModelRegistry, model: Any, window: tuple[str, str] = WINDOW, **parameters: Any):
    return registry.save(
        "isolation_forest",
        model,
        {"rows": 300, "features": ["a", "b", "c", "d"], "metrics": {"precision": 0.8}, "note": MARKER},
        window,
        PARAMETERS | parameters,
        "v1",
    )


def manifest_path(record: Any) -> Path:
    return Path(record.path).with_name("manifest.json")


def flip_byte(path: Path, position: int = -20) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x01
    path.write_bytes(bytes(data))


def test_local_round_trip_returns_the_same_model(tmp_path: Path, training) -> None:
    model, features = training
    registry = ModelRegistry(str(tmp_path / "models"))
    record = save_forest(registry, model)

    loaded, loaded_record = registry.load("isolation_forest")

    assert np.array_equal(loaded.score_samples(features), model.score_samples(features))
    assert loaded_record == record
    assert record.path == str(tmp_path / "models" / "isolation_forest" / record.version / "model.joblib.fernet")
    assert record.metadata["metrics"] == {"precision": 0.8}
    assert (record.training_window, record.parameters, record.code_version) == (WINDOW, PARAMETERS, "v1")
    manifest = json.loads(manifest_path(record).read_text())
    assert manifest["sha256"] == record.sha256 and manifest["version"] == record.version
    assert registry.versions("isolation_forest") == [record.version]


def test_the_file_on_disk_is_encrypted(tmp_path: Path, training, ads_home: Path) -> None:
    record = save_forest(ModelRegistry(str(tmp_path / "models")), training[0])
    stored = Path(record.path).read_bytes()

    assert not stored.startswith(b"\x80")
    assert MARKER.encode() not in stored and b"IsolationForest" not in stored
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(stored)
    decrypted = Fernet((ads_home / "model.key").read_bytes()).decrypt(stored)
    assert b"IsolationForest" in decrypted


def test_a_flipped_byte_is_refused_naming_the_file(tmp_path: Path, training) -> None:
    registry = ModelRegistry(str(tmp_path / "models"))
    record = save_forest(registry, training[0])
    flip_byte(Path(record.path))

    with pytest.raises(ModelIntegrityError, match=r"model\.joblib\.fernet was changed or truncated"):
        registry.load("isolation_forest")


def test_a_truncated_file_is_refused(tmp_path: Path, training) -> None:
    registry = ModelRegistry(str(tmp_path / "models"))
    record = save_forest(registry, training[0])
    path = Path(record.path)
    path.write_bytes(path.read_bytes()[:-100])

    with pytest.raises(ModelIntegrityError, match=str(path)):
        registry.load("isolation_forest", record.version)


def resign(registry: ModelRegistry, manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest signed again with the registry's signing key, as only a holder of that key can."""
    return manifest | {"signature": registry.signing_key.sign(manifest)}


def test_a_changed_manifest_is_refused(tmp_path: Path, training) -> None:
    registry = ModelRegistry(str(tmp_path / "models"))
    record = save_forest(registry, training[0])
    manifest_file = manifest_path(record)
    manifest = json.loads(manifest_file.read_text())
    manifest["metadata"]["metrics"]["precision"] = 0.99
    manifest_file.write_text(json.dumps(manifest))

    with pytest.raises(ModelIntegrityError, match=r"failed signature verification .*the manifest or its signature"):
        registry.load("isolation_forest")
    manifest_file.write_text(json.dumps(resign(registry, manifest)))
    with pytest.raises(ModelIntegrityError, match=r"manifest\.json was changed: metadata differ"):
        registry.load("isolation_forest")


def test_a_changed_file_with_a_matching_manifest_is_refused(tmp_path: Path, training) -> None:
    import hashlib

    registry = ModelRegistry(str(tmp_path / "models"))
    record = save_forest(registry, training[0])
    path = Path(record.path)
    flip_byte(path, position=40)
    manifest_file = manifest_path(record)
    manifest = json.loads(manifest_file.read_text())
    manifest["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest_file.write_text(json.dumps(manifest))

    with pytest.raises(ModelIntegrityError, match="failed signature verification"):
        registry.load("isolation_forest")
    manifest_file.write_text(json.dumps(resign(registry, manifest)))
    with pytest.raises(ModelIntegrityError, match="cannot be decrypted"):
        registry.load("isolation_forest")


def test_a_manifest_that_is_not_json_is_refused(tmp_path: Path, training) -> None:
    registry = ModelRegistry(str(tmp_path / "models"))
    record = save_forest(registry, training[0])
    manifest_path(record).write_text("{not json")

    with pytest.raises(ModelIntegrityError, match="not a valid model manifest"):
        registry.load("isolation_forest", record.version)


def test_another_key_cannot_load(tmp_path: Path, training) -> None:
    save_forest(ModelRegistry(str(tmp_path / "models")), training[0])

    with pytest.raises(ModelIntegrityError, match="another key"):
        ModelRegistry(str(tmp_path / "models"), key=Fernet.generate_key()).load("isolation_forest")


def test_the_version_follows_window_parameters_and_code() -> None:
    base = model_version("isolation_forest", WINDOW, PARAMETERS, "v1")

    assert base == model_version("isolation_forest", WINDOW, dict(reversed(PARAMETERS.items())), "v1")
    assert len(base) == 16
    assert base != model_version("isolation_forest", ("1993-01", "1997-12"), PARAMETERS, "v1")
    assert base != model_version("isolation_forest", WINDOW, PARAMETERS | {"n_estimators": 51}, "v1")
    assert base != model_version("isolation_forest", WINDOW, PARAMETERS, "v2")
    assert base != model_version("autoencoder", WINDOW, PARAMETERS, "v1")
    assert base != model_version("isolation_forest", WINDOW, PARAMETERS, "v1", "ab" * 32)


def test_a_data_digest_is_part_of_the_version_and_sealed_in_the_manifest(tmp_path: Path, training) -> None:
    registry = ModelRegistry(str(tmp_path / "models"))
    digest = "ab" * 32
    record = registry.save("isolation_forest", training[0], {"rows": 300}, WINDOW, PARAMETERS, "v1", digest)

    assert record.version == model_version("isolation_forest", WINDOW, PARAMETERS, "v1", digest)
    assert record.training_data_sha256 == digest
    assert registry.verify("isolation_forest", record.version) == record
    manifest = json.loads(manifest_path(record).read_text())
    manifest["training_data_sha256"] = "cd" * 32
    manifest_path(record).write_text(json.dumps(manifest))
    with pytest.raises(ModelIntegrityError, match="failed signature verification"):
        registry.verify("isolation_forest", record.version)
    manifest_path(record).write_text(json.dumps(resign(registry, manifest)))
    with pytest.raises(ModelIntegrityError, match="training_data_sha256 differ"):
        registry.verify("isolation_forest", record.version)


def test_intact_is_the_record_of_an_unchanged_version_only(tmp_path: Path, training) -> None:
    registry = ModelRegistry(str(tmp_path / "models"))
    record = save_forest(registry, training[0])

    assert registry.intact("isolation_forest", record.version) == record
    assert registry.intact("isolation_forest", "0" * 16) is None
    flip_byte(Path(record.path))
    assert registry.intact("isolation_forest", record.version) is None


def test_latest_by_default_and_any_version_by_name(tmp_path: Path, training) -> None:
    registry = ModelRegistry(str(tmp_path / "models"))
    first = save_forest(registry, training[0])
    second = save_forest(registry, {"weights": [1, 2]}, window=("1993-01", "1997-12"))

    assert first.version != second.version
    assert registry.versions("isolation_forest") == [first.version, second.version]
    assert registry.load("isolation_forest")[0] == {"weights": [1, 2]}
    assert isinstance(registry.load("isolation_forest", first.version)[0], IsolationForest)
    with pytest.raises(ModelIntegrityError, match="expected"):
        registry.load("isolation_forest", first.version, expected_sha256=second.sha256)
    with pytest.raises(ModelNotFoundError):
        registry.load("autoencoder")
    with pytest.raises(ModelNotFoundError):
        registry.load("isolation_forest", "0" * 16)
    assert registry.versions("autoencoder") == []


def test_the_key_is_generated_once_with_owner_only_permissions(ads_home: Path, monkeypatch) -> None:
    key = model_key()

    assert (ads_home / "model.key").read_bytes() == key
    assert stat.S_IMODE(os.stat(ads_home / "model.key").st_mode) == 0o600
    assert model_key() == key
    assert [path.name for path in ads_home.iterdir()] == ["model.key"]
    monkeypatch.setenv("ADS_MODEL_KEY", Fernet.generate_key().decode())
    assert model_key() == os.environ["ADS_MODEL_KEY"].encode()
    monkeypatch.setenv("ADS_MODEL_KEY", "not-a-key")
    with pytest.raises(ValueError, match="ADS_MODEL_KEY is not a Fernet key"):
        model_key()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def sse_headers(client: Any) -> list[dict[str, str]]:
    """The server-side-encryption headers of every PutObject the client sends."""
    sent: list[dict[str, str]] = []

    def record(request: Any, **_: Any) -> None:
        headers = {name.lower(): value for name, value in request.headers.items()}
        sent.append({name: _text(value) for name, value in headers.items() if "server-side" in name})

    client.meta.events.register("before-send.s3.PutObject", record)
    return sent


def test_s3_round_trip_sends_sse_kms_and_verifies(s3: Any, s3_bucket: str, kms_key_id: str, training) -> None:
    model, features = training
    sent = sse_headers(s3)
    registry = ModelRegistry(f"s3://{s3_bucket}/models", kms_key_id=kms_key_id, s3_client=s3)

    record = save_forest(registry, model)
    loaded, loaded_record = registry.load("isolation_forest")

    assert np.array_equal(loaded.score_samples(features), model.score_samples(features))
    assert loaded_record == record
    assert record.path == f"s3://{s3_bucket}/models/isolation_forest/{record.version}/model.joblib"
    assert record.encryption == "aws:kms"
    assert (
        sent
        == [
            {
                "x-amz-server-side-encryption": "aws:kms",
                "x-amz-server-side-encryption-aws-kms-key-id": kms_key_id,
            }
        ]
        * 2
    )
    head = s3.head_object(Bucket=s3_bucket, Key=f"models/isolation_forest/{record.version}/model.joblib")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert kms_key_id in head["SSEKMSKeyId"]


def test_s3_tampering_is_refused(s3: Any, s3_bucket: str, kms_key_id: str, training) -> None:
    registry = ModelRegistry(f"s3://{s3_bucket}/models", kms_key_id=kms_key_id)
    record = save_forest(registry, training[0])
    folder = f"models/isolation_forest/{record.version}"
    original = s3.get_object(Bucket=s3_bucket, Key=f"{folder}/model.joblib")["Body"].read()
    tampered = bytearray(original)
    tampered[-20] ^= 0x01
    encryption = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}

    s3.put_object(Bucket=s3_bucket, Key=f"{folder}/model.joblib", Body=bytes(tampered), **encryption)
    with pytest.raises(ModelIntegrityError, match=rf"s3://{s3_bucket}/{folder}/model\.joblib was changed"):
        registry.load("isolation_forest")

    s3.put_object(Bucket=s3_bucket, Key=f"{folder}/model.joblib", Body=original)
    with pytest.raises(ModelIntegrityError, match="not SSE-KMS"):
        registry.load("isolation_forest")

    s3.put_object(Bucket=s3_bucket, Key=f"{folder}/model.joblib", Body=original, **encryption)
    manifest = json.loads(s3.get_object(Bucket=s3_bucket, Key=f"{folder}/manifest.json")["Body"].read())
    manifest["parameters"]["contamination"] = 0.5
    s3.put_object(Bucket=s3_bucket, Key=f"{folder}/manifest.json", Body=json.dumps(manifest), **encryption)
    with pytest.raises(
        ModelIntegrityError, match=rf"signature verification .*s3://{s3_bucket}/{folder}/manifest\.json"
    ):
        registry.load("isolation_forest")
    s3.put_object(
        Bucket=s3_bucket, Key=f"{folder}/manifest.json", Body=json.dumps(resign(registry, manifest)), **encryption
    )
    with pytest.raises(ModelIntegrityError, match="manifest.json was changed: parameters differ"):
        registry.load("isolation_forest")


def training_assets() -> list[dg.AssetsDefinition]:
    @dg.asset(io_manager_key="models", code_version="forest-1")
    def isolation_forest() -> TrainedModel:
        features = np.random.default_rng(5).normal(size=(100, 3))
        model = IsolationForest(n_estimators=20, random_state=1).fit(features)
        return TrainedModel(model, {"rows": 100, "metrics": {"precision": 0.7}}, WINDOW, {"n_estimators": 20})

    @dg.asset
    def scores(isolation_forest: IsolationForest) -> int:
        return int(isolation_forest.n_estimators)

    return [isolation_forest, scores]


def test_io_manager_records_version_and_loads_the_verified_model(tmp_path: Path) -> None:
    manager = ModelIOManager(root=str(tmp_path / "models"))
    result = dg.materialize(training_assets(), resources={"models": manager})

    assert result.success
    assert result.output_for_node("scores") == 20
    [materialization] = [
        event.materialization
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey("isolation_forest")
    ]
    record = manager.registry().record("isolation_forest")
    assert materialization.metadata["model_version"].value == record.version
    assert materialization.metadata["model_sha256"].value == record.sha256
    assert materialization.metadata["dagster/row_count"].value == 100
    assert record.code_version == "forest-1"
    assert record.version == model_version("isolation_forest", WINDOW, {"n_estimators": 20}, "forest-1")


def test_io_manager_refuses_a_tampered_model(tmp_path: Path) -> None:
    manager = ModelIOManager(root=str(tmp_path / "models"))
    assets = training_assets()
    with dg.DagsterInstance.ephemeral() as instance:
        assert dg.materialize(assets, resources={"models": manager}, instance=instance).success
        flip_byte(Path(manager.registry().record("isolation_forest").path))

        result = dg.materialize(
            assets, resources={"models": manager}, instance=instance, selection=["scores"], raise_on_error=False
        )

    assert not result.success
    [failure] = result.get_step_failure_events()
    assert "ModelIntegrityError" in str(failure.step_failure_data.error)


def test_io_manager_loads_the_version_of_each_partition(tmp_path: Path) -> None:
    months = dg.StaticPartitionsDefinition(["1994-01", "1994-02"])

    @dg.asset(io_manager_key="models", partitions_def=months)
    def monthly_model(context) -> TrainedModel:
        month = context.partition_key
        return TrainedModel({"month": month}, {"rows": 1}, (month, month), {})

    @dg.asset(partitions_def=months)
    def monthly_scores(monthly_model: dict) -> str:
        return monthly_model["month"]

    manager = ModelIOManager(root=str(tmp_path / "models"))
    with dg.DagsterInstance.ephemeral() as instance:
        for month in ("1994-01", "1994-02"):
            dg.materialize([monthly_model], resources={"models": manager}, instance=instance, partition_key=month)
        result = dg.materialize(
            [monthly_model, monthly_scores],
            resources={"models": manager},
            instance=instance,
            partition_key="1994-01",
            selection=["monthly_scores"],
        )

    assert result.output_for_node("monthly_scores") == "1994-01"
    assert len(manager.registry().versions("monthly_model")) == 2


def test_io_manager_stores_a_model_shared_by_partitions_once_and_keeps_an_intact_version(tmp_path: Path) -> None:
    months = dg.StaticPartitionsDefinition(["1994-01", "1994-02", "1994-03"])

    @dg.asset(io_manager_key="models", partitions_def=months)
    def shared_model(context) -> dict[str, TrainedModel]:
        first = TrainedModel({"trained": "1994-01"}, {"rows": 1}, WINDOW, {}, data_sha256="ab" * 32)
        last = TrainedModel({"trained": "1994-03"}, {"rows": 1}, ("1993-03", "1994-02"), {}, data_sha256="cd" * 32)
        return {key: last if key == "1994-03" else first for key in context.partition_keys}

    scored: list[list[str]] = []

    @dg.asset(partitions_def=months)
    def shared_scores(context, shared_model: dict) -> None:
        scored.append([shared_model[key]["trained"] for key in context.partition_keys])

    manager = ModelIOManager(root=str(tmp_path / "models"))
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [shared_model, shared_scores],
            resources={"models": manager},
            instance=instance,
            tags={"dagster/asset_partition_range_start": "1994-01", "dagster/asset_partition_range_end": "1994-03"},
        )
        assert result.success and scored == [["1994-01", "1994-01", "1994-03"]]
        versions = manager.registry().versions("shared_model")
        assert len(versions) == 2
        recorded = {
            key: recorded_partition_model(instance, dg.AssetKey("shared_model"), key)
            for key in months.get_partition_keys()
        }
        assert recorded["1994-01"] == recorded["1994-02"] != recorded["1994-03"]
        assert recorded["1994-01"]["model_name"] == "shared_model"

        dg.materialize([shared_model], resources={"models": manager}, instance=instance, partition_key="1994-02")
        assert recorded_partition_model(instance, dg.AssetKey("shared_model"), "1994-02") == recorded["1994-02"]
        again = dg.materialize(
            [shared_model, shared_scores],
            resources={"models": manager},
            instance=instance,
            selection=["shared_scores"],
            tags={"dagster/asset_partition_range_start": "1994-01", "dagster/asset_partition_range_end": "1994-03"},
        )
    assert again.success and scored[-1] == ["1994-01", "1994-01", "1994-03"]


def test_io_manager_on_s3_through_the_s3_resource(s3_endpoint: str, s3_bucket: str, kms_key_id: str) -> None:
    manager = ModelIOManager(
        root=f"s3://{s3_bucket}/models",
        kms_key_id=kms_key_id,
        s3=S3Resource(endpoint_url=s3_endpoint, region_name="us-east-1"),
    )

    result = dg.materialize(training_assets(), resources={"models": manager})

    assert result.output_for_node("scores") == 20
    assert manager.registry().record("isolation_forest").path.startswith(f"s3://{s3_bucket}/models/")


def test_the_output_store_resource(tmp_path: Path) -> None:
    store = OutputStoreResource(root=str(tmp_path / "out")).store()

    assert isinstance(store, OutputStore)
    assert store.url("quality/index.html") == (tmp_path / "out" / "quality" / "index.html").as_uri()


def test_factories_put_models_in_ads_home_or_beside_s3_outputs(tmp_path: Path) -> None:
    local = Settings(home=tmp_path, database_url=None, source=None, output=str(tmp_path / "out"), months=WINDOW)
    on_s3 = Settings(home=tmp_path, database_url=None, source=None, output="s3://bucket/ads/", months=WINDOW)

    assert model_io_manager(local).root == str(tmp_path / "models")
    assert model_io_manager(local).s3 is None
    assert model_io_manager(on_s3).root == "s3://bucket/ads/models"
    assert isinstance(model_io_manager(on_s3).s3, S3Resource)
    assert output_store_resource(on_s3).root == "s3://bucket/ads/"
