"""The Kubernetes objects of a run, as pure functions: (what the runtime decided) -> the object's
JSON form (camelCase dicts, exactly what the API server receives; the official client accepts
them as bodies).

Invariants, checked by ``tests/test_kubernetes_manifests.py`` against the official schemas:
- object names are DNS-1123 labels (at most 63 characters), label values at most 63 characters
  of ``[A-Za-z0-9._-]``; a name or value that had to be rewritten or cut keeps a hash of the
  original, so distinct pipelines, steps and runs never share one;
- resources are exact: CPUs as millicores (``"500m"``), memory as a plain byte count (``"8GB"`` is
  ``"8000000000"``, ``"8GiB"`` is ``"8589934592"``), ``gpu_count`` as ``nvidia.com/gpu``;
- no secret-looking value (:func:`orcakit.redaction.is_secret_key`, which includes
  ``ORCAKIT_SNAPSHOT_SECRETS``) is written into a pod spec: it goes into the run's Secret and the
  pod refers to it with ``secretKeyRef``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterable

from orcakit import ResourceSettings
from orcakit.redaction import is_secret_key

from .config import PodSettings

#: DNS-1123 label: what pod, job, secret and cronjob names are held to here.
MAX_NAME = 63
#: CronJob names: the controller appends an 11-character suffix to the Jobs it creates.
MAX_CRONJOB_NAME = 52
MAX_LABEL_VALUE = 63
GPU_RESOURCE = "nvidia.com/gpu"
STEP_CONTAINER = "step"
ORCHESTRATOR_CONTAINER = "orchestrator"
#: Annotations carrying what labels can only carry shortened.
ANNOTATION_PIPELINE = "orcakit.dev/pipeline"
ANNOTATION_STEP = "orcakit.dev/step"
ANNOTATION_RUN_ID = "orcakit.dev/run-id"
#: Set on a run's Job by ``stop_run`` (any client, or ``kubectl annotate``): its orchestrator pod
#: stops the run and records STOPPED. The stop request lives on the backend object itself.
ANNOTATION_STOP = "orcakit.dev/stop-requested"
MANAGED_BY = {"app.kubernetes.io/managed-by": "orcakit"}

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def digest(text: str, length: int = 12) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]


# -- names and labels ---------------------------------------------------------------------------

def sanitize_dns1123(name: str) -> str:
    """Lower-case letters, digits and '-' only (what the runtime's ``object_name`` is built from)."""
    return re.sub(r"[^a-z0-9-]", "-", name.lower())


def dns1123_name(*parts: str, max_length: int = MAX_NAME) -> str:
    """A DNS-1123 label made of ``parts``: readable where they are, with a hash of all of them
    whenever something was rewritten or cut (so that distinct parts never give one name)."""
    joined = "-".join(parts)
    clean = re.sub(r"-+", "-", sanitize_dns1123(joined)).strip("-")
    if clean == joined and len(clean) <= max_length:
        return clean
    tag = digest(joined)
    head = clean[: max_length - len(tag) - 1].strip("-")
    return f"{head}-{tag}" if head else f"x-{tag}"


def label_value(value: str) -> str:
    """``value`` as a valid label value: itself when valid, else a readable part and a hash."""
    if len(value) <= MAX_LABEL_VALUE and _LABEL_VALUE.fullmatch(value):
        return value
    tag = digest(value)
    clean = re.sub(r"[^A-Za-z0-9_.-]", "-", value)
    head = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", clean[: MAX_LABEL_VALUE - len(tag) - 1])
    return f"{head}-{tag}" if head else tag


def labels_of(labels: dict[str, str]) -> dict[str, str]:
    """The runtime's labels (full run IDs, step and pipeline names) with valid values."""
    return {**MANAGED_BY, **{key: label_value(value) for key, value in labels.items()}}


def selector(labels: dict[str, str]) -> str:
    """A label selector matching exactly these labels (values made valid the same way)."""
    return ",".join(f"{key}={label_value(value)}" for key, value in labels.items())


# -- resources ----------------------------------------------------------------------------------

def cpu_quantity(cpu_count: float) -> str:
    """Whole CPUs as ``"2"``, fractions as millicores (``0.5`` -> ``"500m"``). Kubernetes has no
    unit below a millicore: a request it cannot hold exactly raises ValueError."""
    millis = Decimal(repr(float(cpu_count))) * 1000
    if millis != millis.to_integral_value() or millis <= 0:
        raise ValueError(f"cpu_count={cpu_count} is not a whole number of millicores (Kubernetes' smallest CPU unit is 0.001)")
    millis = int(millis)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def memory_quantity(memory_bytes: int) -> str:
    """An exact byte count: no unit, so decimal and binary sizes can never be confused."""
    if memory_bytes <= 0:
        raise ValueError(f"memory of {memory_bytes} bytes")
    return str(int(memory_bytes))


def container_resources(resources: ResourceSettings) -> dict[str, dict[str, str]]:
    """``requests`` = ``limits`` for CPU and memory (the limit is what the step observes; equal
    requests keep the scheduler honest), GPUs as an extended resource limit."""
    limits: dict[str, str] = {}
    if resources.cpu_count is not None:
        limits["cpu"] = cpu_quantity(resources.cpu_count)
    if resources.memory_bytes is not None:
        limits["memory"] = memory_quantity(resources.memory_bytes)
    if resources.gpu_count:
        limits[GPU_RESOURCE] = str(int(resources.gpu_count))
    if not limits:
        return {}
    requests = {key: value for key, value in limits.items() if key != GPU_RESOURCE}
    return {"limits": limits, **({"requests": requests} if requests else {})}


# -- environment and secrets --------------------------------------------------------------------

def secret_data_key(name: str, scope: str = "") -> str:
    """The key under which variable ``name`` (of ``scope``, e.g. a step) sits in a Secret."""
    if not scope and len(name) <= 200 and _SECRET_KEY.fullmatch(name):
        return name
    return f"v-{digest(scope + chr(0) + name, 32)}"


def split_environment(environment: dict[str, str], secret_name: str, scope: str = "") -> tuple[list[dict[str, Any]], dict[str, str]]:
    """``(env list for a container, data for the Secret)``: plain values inline, secret-looking
    ones (orcakit's one definition) by ``secretKeyRef`` into Secret ``secret_name``."""
    env: list[dict[str, Any]] = []
    data: dict[str, str] = {}
    for name, value in environment.items():
        if is_secret_key(name):
            key = secret_data_key(name, scope)
            data[key] = value
            env.append({"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}})
        else:
            env.append({"name": name, "value": value})
    return env, data


def secret_manifest(name: str, namespace: str, data: dict[str, str], labels: dict[str, str],
                    owners: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    """An Opaque Secret; values base64 of their UTF-8 bytes (exact, whatever they hold)."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels_of(labels)}
    owners = list(owners)
    if owners:
        metadata["ownerReferences"] = owners
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": metadata,
        "data": {key: base64.b64encode(value.encode("utf-8", "surrogatepass")).decode() for key, value in data.items()},
    }


def owner_reference(obj: dict[str, Any], controller: bool = False) -> dict[str, Any]:
    """An ownerReference to ``obj`` (as the API returned it: it needs the uid), so that deleting
    the owner (or its TTL) deletes the dependent (garbage collection)."""
    reference = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
                 "uid": obj["metadata"]["uid"]}
    if controller:
        reference["controller"] = True
    return reference


# -- pods, jobs, cronjobs ------------------------------------------------------------------------

def pod_spec(
    *, container_name: str, image: str, command: list[str], env: list[dict[str, Any]],
    resources: dict[str, Any], settings: PodSettings, image_pull_policy: str, working_dir: str | None = None,
    restart_policy: str = "Never", service_account_token: bool = False,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": container_name, "image": image, "imagePullPolicy": image_pull_policy,
        # an argv: no shell ever sees the command or the environment
        "command": list(command), "env": env,
    }
    if resources:
        container["resources"] = resources
    if working_dir:
        container["workingDir"] = working_dir
    if settings.volume_mounts:
        container["volumeMounts"] = list(settings.volume_mounts)
    spec: dict[str, Any] = {
        "restartPolicy": restart_policy,
        "containers": [container],
        # the step's environment exactly: no service-link variables added by the kubelet
        "enableServiceLinks": False,
        "automountServiceAccountToken": service_account_token,
        # the pause container is PID 1, not the step: a process that is PID 1 of its namespace
        # ignores every signal it has no handler for, so a step's own SIGKILL (or a SIGTERM on
        # stop) would do nothing; with a shared namespace signals behave as for any process
        "shareProcessNamespace": True,
    }
    if settings.service_account_name:
        spec["serviceAccountName"] = settings.service_account_name
    if settings.node_selector:
        spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        spec["tolerations"] = list(settings.tolerations)
    if settings.affinity:
        spec["affinity"] = dict(settings.affinity)
    if settings.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": name} for name in settings.image_pull_secrets]
    if settings.volumes:
        spec["volumes"] = list(settings.volumes)
    return spec


def step_pod_manifest(
    *, name: str, namespace: str, image: str, command: list[str], environment: dict[str, str], labels: dict[str, str],
    resources: ResourceSettings, settings: PodSettings, secret_name: str, image_pull_policy: str = "IfNotPresent",
    working_dir: str | None = None, owners: Iterable[dict[str, Any]] = (), annotations: dict[str, str] | None = None,
    scope: str = "",
) -> tuple[dict[str, Any], dict[str, str]]:
    """One step attempt's pod, and the data its Secret must hold (secret-looking variables)."""
    env, secret_data = split_environment(environment, secret_name, scope)
    metadata: dict[str, Any] = {
        "name": name, "namespace": namespace,
        "labels": {**settings.labels, **labels_of(labels)},
        "annotations": {**settings.annotations, **(annotations or {})},
    }
    owners = list(owners)
    if owners:
        metadata["ownerReferences"] = owners
    spec = pod_spec(container_name=STEP_CONTAINER, image=image, command=command, env=env,
                    resources=container_resources(resources), settings=settings, image_pull_policy=image_pull_policy,
                    working_dir=working_dir)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}, secret_data


def now_rfc3339() -> str:
    """A timestamp as Kubernetes writes them (annotation values, events)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


#: Set by the downward API in orchestrator pods: their own name and namespace.
POD_ENV = "ORCAKIT_KUBERNETES_POD"
NAMESPACE_ENV = "ORCAKIT_KUBERNETES_NAMESPACE"


def downward_env() -> list[dict[str, Any]]:
    """The orchestrator pod's own name and namespace (it finds its Job, the run ID, from them)."""
    return [
        {"name": POD_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": NAMESPACE_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]


def job_template(
    *, namespace: str, image: str, command: list[str], env: list[dict[str, Any]], labels: dict[str, str],
    settings: PodSettings, backoff_limit: int, ttl_seconds: int | None, image_pull_policy: str = "IfNotPresent",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The spec of an orchestrator Job: one pod (restarted by the Job on a crash, up to
    ``backoff_limit`` times) that drives the run through the API."""
    pod_labels = {**settings.labels, **labels_of(labels)}
    spec: dict[str, Any] = {
        "backoffLimit": backoff_limit,
        "template": {
            "metadata": {"labels": pod_labels, "annotations": {**settings.annotations, **(annotations or {})}},
            "spec": pod_spec(container_name=ORCHESTRATOR_CONTAINER, image=image, command=command,
                             env=[*downward_env(), *env], resources={}, settings=settings,
                             image_pull_policy=image_pull_policy, service_account_token=True),
        },
    }
    if ttl_seconds is not None:
        spec["ttlSecondsAfterFinished"] = ttl_seconds
    return spec


def job_manifest(*, name: str, namespace: str, labels: dict[str, str], annotations: dict[str, str] | None = None,
                 **template: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels_of(labels), "annotations": dict(annotations or {})},
        "spec": job_template(namespace=namespace, labels=labels, annotations=annotations, **template),
    }


def cronjob_manifest(*, name: str, namespace: str, cron_expression: str, labels: dict[str, str],
                     annotations: dict[str, str] | None = None, **template: Any) -> dict[str, Any]:
    """A CronJob whose Jobs are orchestrator Jobs: every firing is a new Job, so a new run ID."""
    return {
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": name, "namespace": namespace, "labels": labels_of(labels), "annotations": dict(annotations or {})},
        "spec": {
            "schedule": cron_expression,
            "timeZone": "Etc/UTC",  # SCHED-3: schedules are UTC, never the cluster's local time
            "concurrencyPolicy": "Allow",
            "jobTemplate": {
                "metadata": {"labels": labels_of(labels)},
                "spec": job_template(namespace=namespace, labels=labels, annotations=annotations, **template),
            },
        },
    }
