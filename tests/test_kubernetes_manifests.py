"""The kubernetes flavor's objects, without a cluster: valid against the official schemas
(kubernetes-validate, strict, one pinned Kubernetes version), names and labels within
Kubernetes' limits and never shared by distinct runs or steps, exact resource quantities, no
secret-looking value in a pod spec, and local stores refused before anything is created."""

from __future__ import annotations

import base64
import json
import re
from decimal import Decimal

import pytest

pytest.importorskip("kubernetes")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402
from kubernetes.utils.quantity import parse_quantity  # noqa: E402

from orcakit import ResourceSettings  # noqa: E402
from orcakit.redaction import is_secret_key  # noqa: E402
from orcakit.reference.flavors.kubernetes import PodSettings  # noqa: E402
from orcakit.reference.flavors.kubernetes import manifests as m  # noqa: E402

#: The schema version the manifests are held to (kubernetes-validate bundles 1.25-1.37).
K8S_VERSION = "1.37"
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def validate(obj: dict) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def names_in(obj: dict) -> list[str]:
    return [obj["metadata"]["name"]]


def assert_labels_valid(labels: dict[str, str]) -> None:
    for key, value in labels.items():
        assert len(value) <= 63 and LABEL_VALUE.fullmatch(value), (key, value)


SETTINGS = PodSettings(
    node_selector={"kubernetes.io/arch": "amd64"},
    tolerations=[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["ml"]}]}]}}},
    service_account_name="orcakit", image_pull_secrets=["regcred"], labels={"team": "ml"}, annotations={"a": "b"},
    volumes=[{"name": "scratch", "emptyDir": {}}], volume_mounts=[{"name": "scratch", "mountPath": "/scratch"}],
)

RUNTIME_LABELS = {"orcakit.managed": "true", "orcakit.role": "step", "orcakit.pipeline": "P" * 100,
                  "orcakit.snapshot": "0" * 64, "orcakit.run": "6f1c0c1e-7a62-4d2a-9d0e-0b1c2d3e4f50",
                  "orcakit.step": "a step/ü", "orcakit.attempt": "1"}


def step_pod(environment=None, resources=None, settings_=SETTINGS):
    return m.step_pod_manifest(
        name="orcakit-6f1c0c1e-7a6-train-1", namespace="ml", image="orcakit-step:abc", command=["python3", "-m", "x"],
        environment=environment or {"A": "1", "AWS_SECRET_ACCESS_KEY": "s3cr3t", "ORCAKIT_SNAPSHOT_SECRETS": "{}"},
        labels=RUNTIME_LABELS, resources=resources or ResourceSettings(cpu_count=0.5, memory="8GB", gpu_count=1),
        settings=settings_, secret_name="orcakit-run-secret", owners=[{"apiVersion": "batch/v1", "kind": "Job",
                                                                       "name": "j", "uid": "u", "controller": True}],
    )


def test_every_manifest_validates_against_the_official_schema():
    pod, data = step_pod()
    validate(pod)
    validate(m.secret_manifest("orcakit-run-secret", "ml", data, RUNTIME_LABELS))
    template = dict(image="orcakit-step:abc", command=["python3", "-m", "driver"], env=[{"name": "A", "value": "1"}],
                    settings=SETTINGS, backoff_limit=3, ttl_seconds=600)
    job = m.job_manifest(name="orcakit-p-0123456789ab", namespace="ml", labels=RUNTIME_LABELS, **template)
    validate(job)
    validate(m.cronjob_manifest(name="orcakit-p-cron", namespace="ml", cron_expression="0 2 * * *",
                                labels=RUNTIME_LABELS, **template))
    assert_labels_valid(pod["metadata"]["labels"])
    assert_labels_valid(job["spec"]["template"]["metadata"]["labels"])


def test_schema_check_is_real():
    pod, _ = step_pod()
    pod["spec"]["containers"][0]["bogusField"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(pod)


def test_resources_are_exact_requests_and_limits():
    pod, _ = step_pod(resources=ResourceSettings(cpu_count=0.5, memory="8GB", gpu_count=1))
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources == {"limits": {"cpu": "500m", "memory": "8000000000", "nvidia.com/gpu": "1"},
                         "requests": {"cpu": "500m", "memory": "8000000000"}}
    assert m.container_resources(ResourceSettings(memory="8GiB"))["limits"]["memory"] == str(8 * 2**30)
    assert m.container_resources(ResourceSettings(cpu_count=2.0))["limits"]["cpu"] == "2"
    assert m.container_resources(ResourceSettings()) == {}
    with pytest.raises(ValueError, match="millicores"):
        m.cpu_quantity(0.0005)


@FAST
@given(millis=st.integers(min_value=1, max_value=256_000))
def test_cpu_quantity_parses_back_exactly(millis):
    cpu = millis / 1000
    assert parse_quantity(m.cpu_quantity(cpu)) * 1000 == Decimal(millis)


@FAST
@given(amount=st.integers(min_value=1, max_value=4096), unit=st.sampled_from(["KB", "KiB", "MB", "MiB", "GB", "GiB", "TB", "TiB"]))
def test_memory_quantity_parses_back_to_the_same_bytes(amount, unit):
    resources = ResourceSettings(memory=f"{amount}{unit}")
    quantity = m.container_resources(resources)["limits"]["memory"]
    assert parse_quantity(quantity) == resources.memory_bytes


env_keys = st.one_of(
    st.sampled_from(["ORCAKIT_SNAPSHOT_SECRETS", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "api_token", "PATH", "A"]),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,40}", fullmatch=True),
)
env_values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=8, max_size=60)


@FAST
@given(environment=st.dictionaries(env_keys, env_values, min_size=1, max_size=8), scope=st.text(max_size=20))
def test_no_secret_looking_value_in_a_pod_spec(environment, scope):
    pod, data = m.step_pod_manifest(
        name="p", namespace="ml", image="i", command=["c"], environment=environment, labels={}, resources=ResourceSettings(),
        settings=PodSettings(), secret_name="s", scope=scope,
    )
    # Every string the pod spec holds, other than the plain values and the scope the test passed:
    # a secret value must not be one of them (searching the rendered JSON for a substring would
    # "find" a short value such as "containe" in the spec's own keys).
    secrets = {key: value for key, value in environment.items() if is_secret_key(key)}
    plain = {value for key, value in environment.items() if key not in secrets} | {scope}

    def strings(node):
        if isinstance(node, dict):
            for item in node.values():
                yield from strings(item)
        elif isinstance(node, list):
            for item in node:
                yield from strings(item)
        elif isinstance(node, str):
            yield node

    held = set(strings(pod)) - plain
    for value in secrets.values():
        if value and value not in plain:
            assert not any(value == text or (len(value) >= 8 and value in text) for text in held), value
    by_name = {entry["name"]: entry for entry in pod["spec"]["containers"][0]["env"]}
    assert set(by_name) == set(environment)
    secret = m.secret_manifest("s", "ml", data, {})
    for name, value in environment.items():
        entry = by_name[name]
        if name in secrets:
            key = entry["valueFrom"]["secretKeyRef"]["key"]
            assert base64.b64decode(secret["data"][key]).decode() == value  # exact, byte for byte
        else:
            assert entry["value"] == value
    validate(secret)


step_names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300)


@FAST
@given(parts=st.lists(step_names, min_size=2, max_size=2, unique=True))
def test_names_are_dns1123_and_never_collide(parts):
    a, b = (m.dns1123_name("orcakit", part) for part in parts)
    assert DNS1123_LABEL.fullmatch(a) and len(a) <= 63
    assert DNS1123_LABEL.fullmatch(b) and len(b) <= 63
    assert a != b


@FAST
@given(values=st.lists(step_names, min_size=2, max_size=2, unique=True))
def test_label_values_are_valid_and_never_collide(values):
    a, b = (m.label_value(value) for value in values)
    assert len(a) <= 63 and LABEL_VALUE.fullmatch(a)
    assert len(b) <= 63 and LABEL_VALUE.fullmatch(b)
    assert a != b


# -- the orchestrator, still without a cluster ---------------------------------------------------

from orcakit import ComponentSpec, StackSpec, SubmissionError, load_flavor  # noqa: E402
from tests.pipelines import sample  # noqa: E402


def kube_orchestrator(**config):
    return load_flavor("kubernetes").create({"kubernetes_namespace": "ml", **config})


def test_flavor_check_passes_and_declares_what_it_implements():
    flavor = load_flavor("kubernetes").check()
    caps = flavor.capabilities
    assert caps.schedules == frozenset({"cron"}) and caps.dynamic_pipelines and caps.stop_run
    assert flavor.run_id_env_var == "ORCAKIT_KUBERNETES_RUN_ID"


@FAST
@given(run_id=st.uuids().map(str), steps=st.lists(step_names, min_size=2, max_size=2, unique=True), attempt=st.integers(1, 99))
def test_pod_names_are_dns1123_labels_unique_per_step(run_id, steps, attempt):
    orchestrator = kube_orchestrator()
    names = [orchestrator.object_name(run_id, step, attempt) for step in steps]
    for name in names:
        assert len(name) <= 63 and DNS1123_LABEL.fullmatch(name), name
    assert names[0] != names[1]
    assert orchestrator.object_name(run_id, steps[0], attempt) != orchestrator.object_name(run_id, steps[0], attempt + 1)


@pytest.mark.parametrize("stores", [
    {"artifact_store": "/tmp/orcakit-artifacts", "run_store": "postgresql+psycopg://u@db/runs"},
    {"artifact_store": "s3://bucket/prefix", "run_store": "sqlite:////tmp/runs.db"},
])
def test_local_stores_are_refused_before_anything_is_created(stores, monkeypatch):
    orchestrator = kube_orchestrator()
    calls = []
    monkeypatch.setattr(type(orchestrator), "api", lambda self: calls.append("api") or pytest.fail("the API was called"))
    monkeypatch.setattr(type(orchestrator), "build_image", lambda self, s: pytest.fail("an image was built"))
    stack = StackSpec(orchestrator=ComponentSpec(flavor="kubernetes", config={"kubernetes_namespace": "ml"}), **stores)
    snapshot = sample.pipe.compile(stack)
    with pytest.raises(SubmissionError, match="runs steps where this machine's disk is not visible") as caught:
        orchestrator.run(snapshot)
    assert "network run store" in str(caught.value.fix) and calls == []


def test_cpu_below_a_millicore_is_refused_before_anything_is_created(monkeypatch):
    orchestrator = kube_orchestrator()
    monkeypatch.setattr(type(orchestrator), "api", lambda self: pytest.fail("the API was called"))
    stack = StackSpec(orchestrator=ComponentSpec(flavor="kubernetes"), artifact_store="s3://b/p", run_store="postgresql+psycopg://u@db/r")
    snapshot = sample.pipe.compile(stack)
    steps = {name: spec.model_copy(update={"resources": ResourceSettings(cpu_count=0.0005)}) for name, spec in snapshot.steps.items()}
    with pytest.raises(SubmissionError, match="millicore"):
        orchestrator.run(snapshot.model_copy(update={"steps": steps}))


@settings(max_examples=60, deadline=None)
@given(environments=st.dictionaries(st.sampled_from("abc"), st.dictionaries(
    st.text(min_size=1, max_size=8), st.one_of(st.text(max_size=40), st.sampled_from(["x" * (32 * 1024), "é" * (33 * 1024)])),
    max_size=8), max_size=3))
def test_step_environments_travel_in_parts_each_under_the_kernels_limit(environments):
    """One environment string over 128 KiB makes exec fail (E2BIG) before the orchestrator pod
    runs: the steps' environments (32 KiB values allowed) travel in numbered parts."""
    from orcakit.reference.flavors.kubernetes.orchestrator import join_step_secrets, split_step_secrets

    sealed = json.dumps(environments)
    parts = split_step_secrets(sealed)
    assert all(len(f"{name}={value}".encode()) < 128 * 1024 for name, value in parts.items())
    assert json.loads(join_step_secrets(parts)) == environments
