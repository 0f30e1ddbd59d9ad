"""The artifact store: bytes under keys, written atomically, plus the materializers that turn step
outputs into bytes and back.

Atomic means no reader ever sees a half-written artifact (SPEC ART-1): the local store writes a
temporary file in the destination folder and renames it into place; S3 PUTs are atomic by design.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from orcakit import ArtifactNotFoundError, PipelineSnapshot, StepSpec, StoreError, seal, seal_step

from .store_urls import ArtifactStoreKind, artifact_store_kind


class ArtifactStore(ABC):
    """Bytes under ``/``-separated keys."""

    uri: str

    @abstractmethod
    def put(self, key: str, data: bytes) -> str:
        """Store ``data`` atomically under ``key``; return the artifact's URI."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The bytes under ``key``; :class:`ArtifactNotFoundError` when there are none."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` (a folder-like prefix ending in ``/``), sorted."""

    # -- conveniences shared by every store --------------------------------------------------

    def put_json(self, key: str, value: Any) -> str:
        return self.put(key, json.dumps(value, sort_keys=True).encode())

    def get_json(self, key: str) -> Any:
        return json.loads(self.get(key))


class LocalArtifactStore(ArtifactStore):
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create artifact folder {self.root}: {exc.strerror}",
                fix="choose a folder you can write to (stack register --artifact-store PATH)",
            ) from exc

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if path != self.root and self.root not in path.parents:
            raise StoreError(f"artifact key {key!r} points outside the artifact store", fix="use relative keys without '..'")
        return path

    def put(self, key: str, data: bytes) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            # Owner-only: artifacts, snapshots and logs are nobody else's business (SPEC SEC-1).
            # Where the folder's default ACL shares it with named users (the docker flavor's
            # step containers), the group bits are the ACL mask: read-only lets them read it
            # (files are replaced, never written in place), and "other" stays excluded.
            os.chmod(tmp, 0o640 if _shared_by_acl(path.parent) else 0o600)
            os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new, never a part
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return str(path)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ArtifactNotFoundError(
                f"no artifact {key!r} in {self.root}",
                fix="check that the upstream step completed and that this step sees the same artifact folder (mounts!)",
            ) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(
            str(path.relative_to(self.root))
            for path in base.rglob("*")
            if path.is_file() and not path.name.endswith(".partial")
        )


def _shared_by_acl(folder: Path) -> bool:
    """Whether ``folder`` has a default POSIX ACL (new files inherit named users' access)."""
    try:
        return bool(os.getxattr(folder, "system.posix_acl_default"))
    except OSError:  # no such attribute, or no ACLs on this file system
        return False


class S3ArtifactStore(ArtifactStore):
    """``s3://bucket/prefix`` through boto3. ``endpoint_url`` (or ``AWS_ENDPOINT_URL``) points it
    at S3-compatible servers, such as moto in the tests."""

    def __init__(self, uri: str, endpoint_url: str | None = None, **client_options: Any) -> None:
        try:
            import boto3
        except ImportError as exc:
            raise StoreError(
                f"artifact store {uri} needs boto3", fix="pip install 'orcakit[s3]'"
            ) from exc
        self.uri = uri.rstrip("/")
        bucket, _, prefix = self.uri[len("s3://"):].partition("/")
        self.bucket, self.prefix = bucket, prefix
        self._client = boto3.client("s3", endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL"), **client_options)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> str:
        self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        return f"s3://{self.bucket}/{self._key(key)}"

    def get(self, key: str) -> bytes:
        try:
            return self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except self._client.exceptions.NoSuchKey:
            raise ArtifactNotFoundError(f"no artifact {key!r} in {self.uri}") from None

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except Exception:
            return False

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        paginator = self._client.get_paginator("list_objects_v2")
        strip = len(self.prefix) + 1 if self.prefix else 0
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            keys.extend(item["Key"][strip:] for item in page.get("Contents", []))
        return sorted(keys)


def open_artifact_store(uri: str, options: dict[str, Any] | None = None) -> ArtifactStore:
    """The artifact store behind ``uri``: a local folder, or ``s3://bucket/prefix``."""
    if artifact_store_kind(uri) is ArtifactStoreKind.S3:
        return S3ArtifactStore(uri, **(options or {}))
    return LocalArtifactStore(uri.removeprefix("file://"))


# -- keys: one place decides where things live ------------------------------------------------


def snapshot_key(snapshot_id: str) -> str:
    return f"snapshots/{snapshot_id}.json"


def dynamic_step_key(snapshot_id: str, step_name: str) -> str:
    return f"snapshots/{snapshot_id}/steps/{step_name}.json"


def output_key(run_uuid: str, step_name: str, output: str = "output") -> str:
    return f"runs/{run_uuid}/{step_name}/{output}"


def log_key(snapshot_id: str, step_name: str) -> str:
    return f"logs/{snapshot_id}/{step_name}.log"


def save_snapshot(store: ArtifactStore, snapshot: PipelineSnapshot) -> str:
    """Store ``snapshot`` sealed: no secret in plain text (SPEC SEC-1). The orchestrator gives
    each step the secrets to unseal it (``orcakit.seal``, ``BaseOrchestrator.run``)."""
    return store.put(snapshot_key(snapshot.snapshot_id), seal(snapshot).snapshot.model_dump_json().encode())


def load_snapshot(store: ArtifactStore, snapshot_id: str) -> PipelineSnapshot:
    """The snapshot as stored: sealed (``orcakit.unseal`` puts a step's secrets back)."""
    return PipelineSnapshot.model_validate_json(store.get(snapshot_key(snapshot_id)))


def save_dynamic_step(store: ArtifactStore, snapshot_id: str, spec: StepSpec, known: list[Any] = ()) -> dict[str, Any]:
    """Store a step a dynamic pipeline added, sealed; return the secrets taken out of it (the
    step's launcher puts them into its environment). ``known``: values sealed wherever they
    occur in its parameters (the pipeline's secret-looking parameters, ``orcakit.sealing``)."""
    sealed, secrets = seal_step(spec, list(known))
    store.put(dynamic_step_key(snapshot_id, spec.name), sealed.model_dump_json().encode())
    return secrets


def load_dynamic_step(store: ArtifactStore, snapshot_id: str, step_name: str) -> StepSpec:
    """A dynamic step as stored: sealed (``orcakit.unseal_step`` puts its secrets back)."""
    return StepSpec.model_validate_json(store.get(dynamic_step_key(snapshot_id, step_name)))


# -- materializers ----------------------------------------------------------------------------
# An artifact is one blob: a JSON header line naming the materializer, then the payload. One
# blob keeps the write atomic (header and payload can never disagree).


def materialize(value: Any) -> bytes:
    """JSON when the value round-trips through JSON exactly, pickle otherwise."""
    try:
        payload = json.dumps(value, allow_nan=False).encode()
        if json.loads(payload) == value and _json_exact(value):
            return b'{"materializer": "json"}\n' + payload
    except (TypeError, ValueError):
        pass
    return b'{"materializer": "pickle"}\n' + pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def dematerialize(blob: bytes) -> Any:
    header, _, payload = blob.partition(b"\n")
    kind = json.loads(header)["materializer"]
    if kind == "json":
        return json.loads(payload)
    if kind == "pickle":
        return pickle.load(io.BytesIO(payload))
    raise StoreError(f"unknown materializer {kind!r} in artifact header", fix="upgrade orcakit")


def _json_exact(value: Any) -> bool:
    # Tuples become lists in JSON; keep them (and other non-JSON types) pickled.
    if isinstance(value, (str, int, float, bool)) or value is None:
        return True
    if isinstance(value, list):
        return all(_json_exact(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_exact(v) for k, v in value.items())
    return False
