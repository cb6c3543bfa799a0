"""The model registry: versioned, encrypted model files, each with a signed manifest verified before unpickling.

A model is stored under `{root}/{name}/{version}/` as `model.joblib.fernet` (local) or `model.joblib` (S3)
and `manifest.json`: name, version, training window, parameters, code version, metadata (rows, features,
metrics…), save time, the sha256 and size of the stored bytes, and an HMAC-SHA256 signature of all of that.
The version is a short sha256 of the name, training window, parameters and code version, so retraining the same
thing replaces that version. When the caller also gives a digest of the training data (`data_sha256`), it is part
of the version and of the manifest (`training_data_sha256`): one version is then one model's content, which a
caller can store once and share.

Encryption at rest: on a local root, files are encrypted with Fernet under the key in `ADS_MODEL_KEY`; when
that is unset a key is generated once into `$ADS_HOME/model.key` (mode 0600) and reused, and losing that file
makes the stored models unreadable. On S3, objects are written with SSE-KMS (`aws:kms`, with the key
`ADS_S3_KMS_KEY_ID` when set, else the account's default S3 KMS key). On a local root, model files are
created with mode 0600 and their folders (the root included) with 0700.

Authenticity: the manifest carries an HMAC-SHA256 over its canonical JSON (sha256 and size of the stored
bytes included) under the model signing key, which is not stored with the models: `ADS_MODEL_SIGNING_KEY`
(a secret, at least 32 characters; `ModelIOManager` reads it as a Dagster `EnvVar`), else a key generated once
into `$ADS_HOME/keys/model-signing.key` (mode 0600, folder 0700), apart from the models folder and never on
S3. Encryption is no signature: whoever can read `model.key` can write a file that decrypts, and can
recompute the manifest's sha256, but cannot sign it. The trade-off of each place for the key:

- the key file is on the local disk only, so write access to the model store (an S3 bucket, a shared or mounted
  models folder, a restored backup, files copied from another installation) is not enough to make a model
  that is trusted; but a process that runs as the ADS user on this machine can read the key file and sign, and
  another machine sharing an S3 model store has another key file, so it distrusts (and retrains) the models of
  this one unless both set the same `ADS_MODEL_SIGNING_KEY`;
- `ADS_MODEL_SIGNING_KEY`, from a secret manager, keeps the key off the disk and can be shared by the machines
  that use one model store; changing it makes every stored model untrusted, so each is retrained (loudly) on
  its next materialization. The content of the key file is a valid value, to move a key to the environment.

Integrity: the stored bytes begin with a sealed copy of the manifest. `load` verifies the manifest's signature,
then the sha256 and size of the file against it, decrypts, checks the sealed copy against the manifest, and only
then unpickles, so an unsigned or forged manifest, a changed, truncated or swapped file, or a changed manifest
raises ModelIntegrityError naming the model, and nothing of it is unpickled. Manifests of format `ads-model/1`
(written before signing) are listed but never loaded.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import secrets
import stat
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from ads_assets.lib.storage import (
    KMS_KEY_VARIABLE,
    LocalLocation,
    Location,
    S3Location,
    is_s3,
    open_location,
    sse_kms_put_args,
)
from ads_assets.settings import Settings, SettingsError

MODEL_KEY_VARIABLE = "ADS_MODEL_KEY"
SIGNING_KEY_VARIABLE = "ADS_MODEL_SIGNING_KEY"
KEYS_FOLDER = "keys"
SIGNING_KEY_FILE = "model-signing.key"
MIN_SIGNING_KEY_LENGTH = 32
SIGNATURE_ALGORITHM = "HMAC-SHA256"
_SIGNED_PREFIX = b"ads-model-manifest/2\n"
_KEY_ID_MESSAGE = b"ads-model-signing-key-id"
KEY_FILE = "model.key"
MANIFEST_FILE = "manifest.json"
LOCAL_MODEL_FILE = "model.joblib.fernet"
S3_MODEL_FILE = "model.joblib"
MANIFEST_FORMAT = "ads-model/2"
UNSIGNED_FORMAT = "ads-model/1"
VERSION_LENGTH = 16
SEAL_MAGIC = b"ADS-MODEL-1\n"
_UNSEALED_FIELDS = ("sha256", "size", "signature")
_PRIVATE_FILE = 0o600
_PRIVATE_FOLDER = 0o700
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ModelIntegrityError(Exception):
    """A stored model or its manifest is unsigned, forged, changed, truncated or undecryptable; it is not loaded."""


class ModelNotFoundError(LookupError):
    """No stored model of that name (and version)."""


@dataclass(frozen=True)
class ModelRecord:
    """One stored model version, as its manifest describes it."""

    name: str
    version: str
    path: str
    sha256: str
    metadata: dict[str, Any]
    training_window: tuple[str, str]
    parameters: dict[str, Any]
    code_version: str
    saved_at: str
    size: int
    encryption: str
    training_data_sha256: str | None = None

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], path: str) -> ModelRecord:
        start, end = manifest["training_window"]
        return cls(
            name=manifest["name"],
            version=manifest["version"],
            path=path,
            sha256=manifest["sha256"],
            metadata=manifest["metadata"],
            training_window=(start, end),
            parameters=manifest["parameters"],
            code_version=manifest["code_version"],
            saved_at=manifest["saved_at"],
            size=manifest["size"],
            encryption=manifest["encryption"]["type"],
            training_data_sha256=manifest.get("training_data_sha256"),
        )


def model_version(
    name: str,
    training_window: tuple[str, str],
    parameters: dict[str, Any],
    code_version: str,
    data_sha256: str | None = None,
) -> str:
    """Short sha256 of name, training window, parameters (sorted JSON), code version and, when given, data digest."""
    identity: list[Any] = [name, list(training_window), parameters, code_version]
    if data_sha256 is not None:
        identity.append(data_sha256)
    return hashlib.sha256(canonical_json(identity)).hexdigest()[:VERSION_LENGTH]


def model_key(home: Path | None = None) -> bytes:
    """The Fernet key for local model files: `ADS_MODEL_KEY`, else `{home}/model.key`, created (0600) when absent.

    `home` defaults to `ADS_HOME`. A new key is written to a temporary file and linked into place, so concurrent
    first runs agree on one key.
    """
    if os.environ.get(MODEL_KEY_VARIABLE):
        return _checked_key(os.environ[MODEL_KEY_VARIABLE].encode(), MODEL_KEY_VARIABLE)
    home = home if home is not None else Settings.from_env().home
    key_file = home / KEY_FILE
    if not key_file.exists():
        home.mkdir(parents=True, exist_ok=True)
        temporary = home / f".{KEY_FILE}.{uuid.uuid4().hex}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(Fernet.generate_key())
            os.link(temporary, key_file)
        except FileExistsError:
            pass
        finally:
            temporary.unlink(missing_ok=True)
    return _checked_key(key_file.read_bytes().strip(), str(key_file))


def _checked_key(key: bytes, origin: str) -> bytes:
    try:
        Fernet(key)
    except ValueError as error:
        raise ValueError(f"{origin} is not a Fernet key (32 url-safe base64-encoded bytes): {error}") from None
    return key


@dataclass(frozen=True)
class SigningKey:
    """The HMAC-SHA256 key that signs model manifests, and where it comes from; its repr never shows the secret."""

    secret: bytes = field(repr=False)
    origin: str

    @property
    def key_id(self) -> str:
        """A short, one-way name of the key (an HMAC of a constant), to tell which key signed a manifest."""
        return hmac.new(self.secret, _KEY_ID_MESSAGE, hashlib.sha256).hexdigest()[:16]

    def sign(self, manifest: dict[str, Any]) -> dict[str, str]:
        """The `signature` field of a manifest: the HMAC of every other field."""
        return {"algorithm": SIGNATURE_ALGORITHM, "key_id": self.key_id, "hmac": self._hmac(manifest)}

    def verifies(self, manifest: dict[str, Any]) -> bool:
        """True when the manifest's `signature` is this key's HMAC of the rest of it (compared in constant time)."""
        signature = manifest.get("signature")
        if not isinstance(signature, dict) or signature.get("algorithm") != SIGNATURE_ALGORITHM:
            return False
        value = signature.get("hmac")
        return isinstance(value, str) and hmac.compare_digest(value.encode(), self._hmac(manifest).encode())

    def _hmac(self, manifest: dict[str, Any]) -> str:
        unsigned = {name: value for name, value in manifest.items() if name != "signature"}
        return hmac.new(self.secret, _SIGNED_PREFIX + canonical_json(unsigned), hashlib.sha256).hexdigest()


def model_signing_key(value: str | None = None, folder: Path | None = None) -> SigningKey:
    """The model signing key: `value`, else `ADS_MODEL_SIGNING_KEY`, else the key file `{folder}/model-signing.key`.

    `folder` defaults to `$ADS_HOME/keys`. The key file is created once (32 random bytes, hex) with mode 0600 in a
    folder of mode 0700, written to a temporary file and linked into place so that concurrent first runs agree on
    one key; a key file that the group or others may read or write is refused, since whoever reads it can sign.
    A key is at least 32 characters; its UTF-8 bytes are the HMAC key, so the file's content is a valid value.
    Raises SettingsError, without the key in the message, when the key is unusable.
    """
    if value is None and os.environ.get(SIGNING_KEY_VARIABLE):
        value = os.environ[SIGNING_KEY_VARIABLE]
    if value is not None:
        return _checked_signing_key(value, SIGNING_KEY_VARIABLE)
    folder = folder if folder is not None else Settings.from_env().home / KEYS_FOLDER
    key_file = folder / SIGNING_KEY_FILE
    if not key_file.exists():
        _private_folder(folder)
        temporary = folder / f".{SIGNING_KEY_FILE}.{uuid.uuid4().hex}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE_FILE)
        try:
            with os.fdopen(descriptor, "w", encoding="ascii") as handle:
                handle.write(secrets.token_hex(32) + "\n")
            os.link(temporary, key_file)
        except FileExistsError:
            pass
        finally:
            temporary.unlink(missing_ok=True)
    mode = stat.S_IMODE(key_file.stat().st_mode)
    if mode & 0o077:
        raise SettingsError(
            f"{key_file} has mode {mode:04o}: the group or others may read or change the model signing key, and "
            f"whoever reads it can sign models; make it 0600 (chmod 600), or delete it to make a new key (the "
            f"models it signed are then retrained)"
        )
    return _checked_signing_key(key_file.read_text(encoding="utf-8").strip(), str(key_file))


def _checked_signing_key(value: str, origin: str) -> SigningKey:
    secret = value.encode("utf-8")
    if len(secret) < MIN_SIGNING_KEY_LENGTH:
        raise SettingsError(
            f"{origin} is too short for a model signing key: {len(secret)} bytes, at least "
            f"{MIN_SIGNING_KEY_LENGTH} are needed (e.g. python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    return SigningKey(secret, origin)


def _private_folder(folder: Path) -> None:
    """Create `folder` (and its missing parents) with mode 0700, and take an existing one's access from others."""
    folder.mkdir(mode=_PRIVATE_FOLDER, parents=True, exist_ok=True)
    if stat.S_IMODE(folder.stat().st_mode) & 0o077:
        folder.chmod(_PRIVATE_FOLDER)


def _write_private(path: Path, data: bytes) -> None:
    """Create or replace `path` in one step with mode 0600, through a temporary file renamed into place."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE_FILE)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def canonical_json(value: Any) -> bytes:
    """Sorted, compact JSON; numpy scalars and arrays become numbers and lists, other objects strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default).encode("utf-8")


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


class ModelRegistry:
    """Trained models below a local folder or an `s3://bucket/prefix` root; see the module docstring."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        key: bytes | None = None,
        kms_key_id: str | None = None,
        s3_client: Any | None = None,
        signing_key: SigningKey | None = None,
    ) -> None:
        """`key`: the Fernet key for a local root (default: `model_key()`, read on first use).

        `kms_key_id`: the KMS key for an S3 root (default: `ADS_S3_KMS_KEY_ID`, else the default S3 KMS key).
        `s3_client`: a boto3 S3 client (default: one on `ADS_S3_ENDPOINT_URL` / `AWS_ENDPOINT_URL`).
        `signing_key`: the key that signs and verifies manifests (default: `model_signing_key()`, on first use).
        """
        self.root = str(root)
        self._key = key
        self._signing_key = signing_key
        if is_s3(self.root):
            self.kms_key_id = kms_key_id or os.environ.get(KMS_KEY_VARIABLE) or None
            put_args = sse_kms_put_args(self.kms_key_id)
            self.location: Location = open_location(self.root, client=s3_client, put_args=put_args)
            self.model_file = S3_MODEL_FILE
        else:
            self.kms_key_id = None
            self.location = open_location(self.root)
            self.model_file = LOCAL_MODEL_FILE

    def __repr__(self) -> str:
        return f"ModelRegistry({self.root!r})"

    @property
    def encrypted_locally(self) -> bool:
        return isinstance(self.location, LocalLocation)

    def where(self, key: str) -> str:
        """The local path, or the s3:// URL, of a key below the root."""
        return str(self.location.path(key)) if isinstance(self.location, LocalLocation) else self.location.url(key)

    def _fernet(self) -> Fernet:
        if self._key is None:
            self._key = model_key()
        return Fernet(self._key)

    @property
    def signing_key(self) -> SigningKey:
        if self._signing_key is None:
            self._signing_key = model_signing_key()
        return self._signing_key

    def save(
        self,
        name: str,
        model_object: Any,
        metadata: dict[str, Any],
        training_window: tuple[str, str],
        parameters: dict[str, Any],
        code_version: str,
        data_sha256: str | None = None,
    ) -> ModelRecord:
        """Store `model_object` as a version of `name`; saving the same version again replaces it.

        `data_sha256`: a digest of the training data, made part of the version and the manifest.
        """
        import joblib

        _check_name(name)
        start, end = training_window
        version = model_version(name, (start, end), parameters, code_version, data_sha256)
        encryption: dict[str, Any] = {"type": "fernet" if self.encrypted_locally else "aws:kms"}
        if self.kms_key_id:
            encryption["kms_key_id"] = self.kms_key_id
        body = json.loads(
            canonical_json(
                {
                    "format": MANIFEST_FORMAT,
                    "name": name,
                    "version": version,
                    "file": self.model_file,
                    "encryption": encryption,
                    "saved_at": datetime.now(UTC).isoformat(timespec="microseconds"),
                    "training_window": [start, end],
                    "parameters": parameters,
                    "code_version": code_version,
                    "metadata": metadata,
                }
                | ({"training_data_sha256": data_sha256} if data_sha256 is not None else {})
            )
        )
        sealed = canonical_json(body)
        buffer = io.BytesIO()
        joblib.dump(model_object, buffer)
        payload = SEAL_MAGIC + len(sealed).to_bytes(8, "big") + sealed + buffer.getvalue()
        stored = self._fernet().encrypt(payload) if self.encrypted_locally else payload
        manifest = body | {"sha256": hashlib.sha256(stored).hexdigest(), "size": len(stored)}
        manifest["signature"] = self.signing_key.sign(manifest)
        folder = f"{name}/{version}"
        self._write(f"{folder}/{self.model_file}", stored, "application/octet-stream")
        self._write(
            f"{folder}/{MANIFEST_FILE}",
            json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8"),
            "application/json",
        )
        return ModelRecord.from_manifest(manifest, self.where(f"{folder}/{self.model_file}"))

    def _write(self, key: str, data: bytes, content_type: str) -> None:
        """Write `key`; on a local root as a 0600 file whose folders, from the root down, are 0700."""
        if not isinstance(self.location, LocalLocation):
            self.location.write_bytes(key, data, content_type=content_type)
            return
        path = self.location.path(key)
        folder = self.location.root
        _private_folder(folder)
        for part in path.parent.relative_to(folder).parts:
            folder = folder / part
            _private_folder(folder)
        _write_private(path, data)

    def versions(self, name: str) -> list[str]:
        """The stored versions of `name`, oldest save first; [] when there are none."""
        return [record.version for record in self._records(name)]

    def record(self, name: str, version: str | None = None) -> ModelRecord:
        """The manifest of a version (the latest by default), without verifying its signature or the model file."""
        if version is None:
            records = self._records(name)
            if not records:
                raise ModelNotFoundError(f"no model {name!r} in {self.root}")
            return records[-1]
        return ModelRecord.from_manifest(self._manifest(name, version), self.where(self._model_key(name, version)))

    def load(
        self, name: str, version: str | None = None, *, expected_sha256: str | None = None
    ) -> tuple[Any, ModelRecord]:
        """The verified model object and its record: the latest version by default.

        `expected_sha256`, e.g. from the run that saved it, must also match. Raises ModelNotFoundError when
        absent, and ModelIntegrityError, before anything is unpickled, when the manifest is not signed with the
        signing key or the file or manifest was changed.
        """
        import joblib

        record, model_bytes = self._verified(name, version, expected_sha256)
        return joblib.load(io.BytesIO(model_bytes)), record

    def verify(self, name: str, version: str | None = None) -> ModelRecord:
        """The record of a stored version after every check `load` makes, without unpickling the model.

        Raises ModelNotFoundError when absent and ModelIntegrityError when the manifest is not signed with the
        signing key or the file or manifest was changed.
        """
        return self._verified(name, version, None)[0]

    def intact(self, name: str, version: str) -> ModelRecord | None:
        """The record of `version` when it is stored and passes `verify`, else None."""
        try:
            return self.verify(name, version)
        except (ModelNotFoundError, ModelIntegrityError):
            return None

    def _verified(self, name: str, version: str | None, expected_sha256: str | None) -> tuple[ModelRecord, bytes]:
        version = version if version is not None else self.record(name).version
        manifest = self._manifest(name, version)
        key = self._model_key(name, version)
        url = self.where(key)
        record = ModelRecord.from_manifest(manifest, url)
        self._authenticate(manifest, name, version)
        stored = self._read_model(key, url)
        digest = hashlib.sha256(stored).hexdigest()
        if digest != manifest["sha256"] or len(stored) != manifest["size"]:
            raise ModelIntegrityError(
                f"{url} was changed or truncated: sha256 {digest} ({len(stored)} bytes), the manifest says "
                f"{manifest['sha256']} ({manifest['size']} bytes); refusing to load"
            )
        if expected_sha256 is not None and digest != expected_sha256:
            raise ModelIntegrityError(
                f"{url} has sha256 {digest}, expected {expected_sha256}: the model and its manifest were replaced"
            )
        if self.encrypted_locally:
            try:
                payload = self._fernet().decrypt(stored)
            except InvalidToken:
                raise ModelIntegrityError(
                    f"{url} cannot be decrypted with the model key: it was altered, or written under another key "
                    f"({MODEL_KEY_VARIABLE} / $ADS_HOME/{KEY_FILE}); refusing to load"
                ) from None
        else:
            payload = stored
        return record, self._unseal(payload, manifest, url)

    def _authenticate(self, manifest: dict[str, Any], name: str, version: str) -> None:
        """Raise ModelIntegrityError unless the manifest is signed by this registry's signing key."""
        manifest_url = self.where(f"{name}/{version}/{MANIFEST_FILE}")
        what = f"model {name!r} version {version!r}"
        if "signature" not in manifest:
            raise ModelIntegrityError(
                f"{what} is not signed: {manifest_url} has no signature (format {manifest.get('format')}); it was "
                f"written before model signing, or not by ADS; refusing to load"
            )
        if self.signing_key.verifies(manifest):
            return
        signature = manifest["signature"]
        signed_by = signature.get("key_id") if isinstance(signature, dict) else None
        if signed_by is not None and signed_by != self.signing_key.key_id:
            reason = (
                f"it is signed with another key (key id {signed_by}), not the model signing key of "
                f"{self.signing_key.origin} (key id {self.signing_key.key_id})"
            )
        else:
            reason = "the manifest or its signature was changed, or it was not written by ADS"
        raise ModelIntegrityError(
            f"{what} failed signature verification ({SIGNATURE_ALGORITHM} of {manifest_url}): {reason}; "
            f"refusing to load"
        )

    def _records(self, name: str) -> list[ModelRecord]:
        _check_name(name)
        records = []
        for key in self.location.list(name):
            parts = key.split("/")
            if len(parts) == 3 and parts[2] == MANIFEST_FILE:
                manifest = self._manifest(name, parts[1])
                records.append(ModelRecord.from_manifest(manifest, self.where(self._model_key(name, parts[1]))))
        return sorted(records, key=lambda record: (record.saved_at, record.version))

    def _model_key(self, name: str, version: str) -> str:
        return f"{name}/{version}/{self.model_file}"

    def _manifest(self, name: str, version: str) -> dict[str, Any]:
        _check_name(name)
        _check_name(version)
        key = f"{name}/{version}/{MANIFEST_FILE}"
        url = self.where(key)
        try:
            text = self.location.read_bytes(key)
        except FileNotFoundError:
            raise ModelNotFoundError(f"no version {version!r} of model {name!r} in {self.root}") from None
        try:
            manifest = json.loads(text)
            ModelRecord.from_manifest(manifest, url)
        except (ValueError, KeyError, TypeError) as error:
            raise ModelIntegrityError(f"{url} is not a valid model manifest ({error}); refusing to load") from None
        known_format = manifest.get("format") in (MANIFEST_FORMAT, UNSIGNED_FORMAT)
        if not known_format or (manifest["name"], manifest["version"]) != (name, version):
            raise ModelIntegrityError(
                f"{url} describes {manifest['name']!r} version {manifest['version']!r} "
                f"({manifest.get('format')}), not {name!r} version {version!r}; refusing to load"
            )
        return manifest

    def _read_model(self, key: str, url: str) -> bytes:
        try:
            if not isinstance(self.location, S3Location):
                return self.location.read_bytes(key)
            response = self.location.get_object(key)
        except FileNotFoundError:
            raise ModelIntegrityError(f"{url} is missing although its manifest exists; refusing to load") from None
        with response["Body"] as body:
            stored = body.read()
        if response.get("ServerSideEncryption") != "aws:kms":
            raise ModelIntegrityError(
                f"{url} is stored with encryption {response.get('ServerSideEncryption')!r}, not SSE-KMS; "
                f"refusing to load"
            )
        return stored

    def _unseal(self, payload: bytes, manifest: dict[str, Any], url: str) -> bytes:
        header_end = len(SEAL_MAGIC) + 8
        if not payload.startswith(SEAL_MAGIC) or len(payload) < header_end:
            raise ModelIntegrityError(f"{url} is not an ADS model file; refusing to load")
        length = int.from_bytes(payload[len(SEAL_MAGIC) : header_end], "big")
        try:
            sealed = json.loads(payload[header_end : header_end + length])
        except ValueError:
            raise ModelIntegrityError(f"{url} has a damaged sealed manifest; refusing to load") from None
        body = {field: value for field, value in manifest.items() if field not in _UNSEALED_FIELDS}
        if canonical_json(sealed) != canonical_json(body):
            changed = sorted(
                field
                for field in set(sealed) | set(body)
                if canonical_json(sealed.get(field)) != canonical_json(body.get(field))
            )
            manifest_url = url.rsplit("/", 1)[0] + f"/{MANIFEST_FILE}"
            raise ModelIntegrityError(
                f"{manifest_url} was changed: {', '.join(changed)} differ from the copy sealed in {url}; "
                f"refusing to load"
            )
        return payload[header_end + length :]


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"model names and versions are letters, digits, '_', '.', '-': {name!r}")
    return name
