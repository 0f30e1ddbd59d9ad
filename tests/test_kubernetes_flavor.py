"""The kubernetes flavor end to end (issue 10), against the local Kubernetes API test environment
(``tests/kubeapi``: a real HTTP API server on loopback whose pods run as Docker containers),
with PostgreSQL as the run store and moto in server mode as the S3 artifact store.

Without Docker, PostgreSQL or the parent image these SKIP locally and FAIL under
``ORCAKIT_REQUIRE_DOCKER=1`` / ``ORCAKIT_REQUIRE_POSTGRES=1`` (``scripts/test`` sets both).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import hypothesis  # noqa: F401 - imported now: importing it at session end, after the server threads, trips CPython 3.11's AST check
import pytest

pytest.importorskip("kubernetes")

from orcakit import ComponentSpec, ExecutionStatus, StackSpec  # noqa: E402
from orcakit.reference import run_snapshot  # noqa: E402
from tests.limits import WHOLE_SUITE_SECONDS  # noqa: E402
from tests.moto_server import S3_ENV, start_moto  # noqa: E402

pytest_plugins = ["tests.kubeapi.fixtures"]
pytestmark = [pytest.mark.docker, pytest.mark.postgres]

PARENT_IMAGE = "orcakit/python-base:bookworm"
RUN_ID_ENV = "ORCAKIT_KUBERNETES_RUN_ID"
SECRET_VALUE = "kube-e2e-canary-7f3a91"
BUCKET = "orcakit-kube"
S = ExecutionStatus

PIPES = '''
"""Pipelines of the kubernetes flavor's end-to-end tests."""

import os
import time

from orcakit import ResourceSettings, get_step_context, pipeline, step


def _seen() -> dict:
    context = get_step_context()
    return {"env_run_id": os.environ.get("ORCAKIT_KUBERNETES_RUN_ID"), "context_run_id": context.orchestrator_run_id,
            "attempt": context.attempt, "mode": os.environ.get("MODE"), "token": os.environ.get("API_TOKEN"),
            "pod": os.environ.get("HOSTNAME")}


@step(settings={"resources": ResourceSettings(cpu_count=0.5, memory="256MiB")}, environment={"MODE": "fast"})
def first(n: int) -> dict:
    return {**_seen(), "n": n}


@step(retry={"max_retries": 2, "delay": 0.5, "backoff": 1})
def flaky(previous: dict) -> dict:
    seen = _seen()
    if seen["attempt"] < 2:
        raise RuntimeError(f"attempt {seen['attempt']} fails on purpose")
    return seen


@step
def last(a: dict, b: dict) -> dict:
    return _seen()


@pipeline(environment={"API_TOKEN": "kube-e2e-canary-7f3a91"})
def three(n: int = 3):
    a = first(n)
    last(a, flaky(a))


@step
def nap(seconds: float) -> dict:
    time.sleep(seconds)
    return _seen()


@pipeline
def sleepy(seconds: float = 8):
    a = first(1)
    b = nap(seconds, after="first")
    last(a, b)
'''


# -- fixtures -----------------------------------------------------------------------------------


def _unavailable(message: str, variable: str = "ORCAKIT_REQUIRE_DOCKER") -> None:
    if os.environ.get(variable) == "1":
        pytest.fail(f"{variable}=1 but {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def parent_image(kube_api):
    import docker
    from docker.errors import ImageNotFound

    client = docker.from_env(timeout=60)
    try:
        client.images.get(PARENT_IMAGE)
    except ImageNotFound:
        _unavailable(f"the parent image {PARENT_IMAGE} is missing; scripts/testenv/ensure-base-image.sh builds it offline")
    finally:
        client.close()
    return PARENT_IMAGE


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("project")
    (root / "kubepipes").mkdir()
    (root / "kubepipes" / "__init__.py").write_text(PIPES)
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))
    sys.modules.pop("kubepipes", None)


@pytest.fixture(scope="module")
def pg_url() -> str:
    url = os.environ.get("ORCAKIT_TEST_POSTGRES_URL")
    if not url:
        _unavailable("the kubernetes flavor needs a network run store: set ORCAKIT_TEST_POSTGRES_URL "
                     "(scripts/testenv/ensure-postgres.sh prints it)", "ORCAKIT_REQUIRE_POSTGRES")
    return url


@pytest.fixture(scope="module")
def moto_s3():
    """moto in server mode on loopback, dummy credentials in this process's environment (the
    flavor forwards AWS_* to its pods, through the run's Secret)."""
    saved = {key: os.environ.get(key) for key in [*S3_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(S3_ENV)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    proc, endpoint = start_moto()
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    yield endpoint
    proc.terminate()
    proc.wait(10)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def stack(kube_api, parent_image, pg_url, moto_s3, project, tmp_path_factory) -> StackSpec:
    return StackSpec(
        orchestrator=ComponentSpec(flavor="kubernetes", name="test-kube", config={
            "kubeconfig": str(kube_api.kubeconfig), "kubernetes_namespace": kube_api.namespace,
            "parent_image": parent_image, "code_paths": [str(project / "kubepipes")],
            "ttl_seconds_after_finished": 30}),
        artifact_store=f"s3://{BUCKET}/runs",
        artifact_store_options={"endpoint_url": moto_s3},
        run_store=pg_url,
    )


@pytest.fixture(scope="module")
def pipes(project):
    import kubepipes

    return kubepipes


def core_and_batch(kube_api):
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(kube_api.kubeconfig))
    return client.CoreV1Api(api), client.BatchV1Api(api)


def kubectl(kube_api, *args: str, check: bool = True) -> str:
    binary = shutil.which("kubectl") or str(Path(sys.executable).parent / "kubectl")
    done = subprocess.run([binary, "--kubeconfig", str(kube_api.kubeconfig), "-n", kube_api.namespace, *args],
                          capture_output=True, text=True, timeout=60)
    if check:
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def orchestrator(stack: StackSpec):
    from orcakit import load_flavor

    return load_flavor("kubernetes").create(stack.orchestrator.config, name="test-kube")


# -- tests ----------------------------------------------------------------------------------------


def test_a_static_pipeline_runs_to_completed(pipes, stack, kube_api, execute):
    """Env (with a secret-looking value), resources and a retry; one run ID = the orchestrator
    Job's UID in every step; no secret in plain text in any pod spec; nothing left over."""
    core, batch = core_and_batch(kube_api)
    specs: dict[str, dict] = {}
    stop = threading.Event()

    def collect() -> None:  # every pod spec, read back through the API while the run goes on
        while not stop.is_set():
            for pod in json.loads(core.list_namespaced_pod(kube_api.namespace, _preload_content=False).data)["items"]:
                specs[pod["metadata"]["name"]] = pod
            time.sleep(0.3)

    watcher = threading.Thread(target=collect, daemon=True)
    watcher.start()
    try:
        snapshot = pipes.three.compile(stack, 3)
        record = run_snapshot(snapshot)
    finally:
        stop.set()
        watcher.join(10)
    steps = execute.steps(stack, record.id)
    assert record.status is S.COMPLETED, (record.reason, {k: v.reason for k, v in steps.items()})
    run_id = record.orchestrator_run_id
    job_name = record.metadata["job"]
    seen = {name: execute.output(stack, record, name) for name in ("first", "flaky", "last")}
    for name, values in seen.items():
        assert values["env_run_id"] == run_id == values["context_run_id"], (name, values)
        assert values["token"] == SECRET_VALUE, name
    assert seen["first"]["mode"] == "fast" and seen["first"]["n"] == 3
    assert seen["flaky"]["attempt"] == 2 and steps["flaky"].attempts == 2
    # the run ID is the orchestrator Job's UID (the Job may already be gone: its pods said so)
    orchestrator_pods = [p for p in specs.values() if (p["metadata"].get("labels") or {}).get("orcakit.role") == "orchestrator"]
    assert orchestrator_pods, sorted(specs)
    owners = {o["uid"] for p in orchestrator_pods for o in p["metadata"].get("ownerReferences") or [] if o["kind"] == "Job"}
    assert owners == {run_id}, (owners, run_id, job_name)
    step_pods = [p for p in specs.values() if (p["metadata"].get("labels") or {}).get("orcakit.role") == "step"]
    assert len(step_pods) >= 3
    # secrets never in a pod spec; resources as exact quantities
    for pod in specs.values():
        assert SECRET_VALUE not in json.dumps(pod), pod["metadata"]["name"]
        assert "testing" not in json.dumps(pod["spec"]), pod["metadata"]["name"]  # the S3 secret key
    first_pod = next(p for p in step_pods if p["metadata"]["annotations"]["orcakit.dev/step"] == "first")
    assert first_pod["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "500m", "memory": str(256 * 2**20)}
    # cleaned up
    assert orchestrator(stack).leftover_resources(snapshot, run_id) == []


def test_kubectl_and_a_restarted_orchestrator_pod_continues_the_run(pipes, stack, kube_api, execute):
    """While a step sleeps: kubectl lists the run's pods, shows the orchestrator's log and
    describes its Job; then the orchestrator pod is deleted. The Job starts a new one, which
    continues the same run (same run ID), adopts the sleeping step's pod and re-executes nothing."""
    core, batch = core_and_batch(kube_api)
    snapshot = pipes.sleepy.compile(stack, 10)
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(record=run_snapshot(snapshot)), daemon=True)
    thread.start()

    def pods(selector: str) -> list[dict]:
        return json.loads(core.list_namespaced_pod(kube_api.namespace, label_selector=selector, _preload_content=False).data)["items"]

    deadline = time.monotonic() + 180
    nap_pod = None
    while nap_pod is None and time.monotonic() < deadline:
        running = [p for p in pods(f"orcakit.snapshot={snapshot.snapshot_id},orcakit.role=step")
                   if p["metadata"]["annotations"].get("orcakit.dev/step") == "nap" and p["status"].get("phase") == "Running"]
        nap_pod = running[0] if running else None
        time.sleep(0.3)
    assert nap_pod is not None, "the nap step never ran"
    run_id = nap_pod["metadata"]["annotations"]["orcakit.dev/run-id"]
    (job,) = json.loads(batch.list_namespaced_job(kube_api.namespace, label_selector=f"orcakit.snapshot={snapshot.snapshot_id}",
                                                   _preload_content=False).data)["items"]
    assert job["metadata"]["uid"] == run_id
    (first_orchestrator,) = pods(f"job-name={job['metadata']['name']}")

    # kubectl, a client nobody here wrote, against the environment while the run exists
    listed = kubectl(kube_api, "get", "pods", "-l", f"orcakit.snapshot={snapshot.snapshot_id}", "-o", "name")
    assert f"pod/{nap_pod['metadata']['name']}" in listed.split() and f"pod/{first_orchestrator['metadata']['name']}" in listed.split()
    table = kubectl(kube_api, "get", "pods", "-l", "orcakit.role=step")
    assert "NAME" in table and "Running" in table
    log = kubectl(kube_api, "logs", first_orchestrator["metadata"]["name"])  # exit 0: the container's output, as it is so far
    described = kubectl(kube_api, "describe", "job", job["metadata"]["name"])
    assert job["metadata"]["name"] in described and "Pods Statuses" in described, described
    assert SECRET_VALUE not in listed + table + log + described

    # the orchestrator pod goes; the Job starts another that continues the same run
    core.delete_namespaced_pod(first_orchestrator["metadata"]["name"], kube_api.namespace, _preload_content=False)
    thread.join(240)
    assert not thread.is_alive(), "the run did not end"
    record = result["record"]
    steps = execute.steps(stack, record.id)
    assert record.status is S.COMPLETED, (record.reason, {k: v.reason for k, v in steps.items()})
    assert record.orchestrator_run_id == run_id
    assert {name: s.attempts for name, s in steps.items()} == {"first": 1, "nap": 1, "last": 1}
    seen = {name: execute.output(stack, record, name) for name in ("first", "nap", "last")}
    assert {values["env_run_id"] for values in seen.values()} == {run_id}
    assert seen["nap"]["pod"] == nap_pod["metadata"]["name"]  # the adopted pod, not a new one
    assert orchestrator(stack).leftover_resources(snapshot, run_id) == []


def conformance_command(kube_api, pg_url: str, artifact_store: str, profile: str) -> list[str]:
    """The conformance suite against the test environment, as a user types it (see README)."""
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--flavor=kubernetes",
            f"--flavor-option=kubeconfig={kube_api.kubeconfig}", f"--flavor-option=kubernetes_namespace={kube_api.namespace}",
            f"--conformance-run-store={pg_url}",
            f"--conformance-artifact-store={artifact_store}", f"--conformance-profile={profile}"]


@pytest.mark.parametrize("profile", [
    "quick",
    pytest.param("standard", marks=pytest.mark.skipif(os.environ.get("ORCAKIT_KUBE_STANDARD") != "1",
                                                       reason="the standard profile is on demand: ORCAKIT_KUBE_STANDARD=1")),
])
def test_the_conformance_suite_passes_against_the_test_environment(kube_api, parent_image, pg_url, moto_s3, tmp_path, profile):
    """``pytest --flavor=kubernetes ...`` from an empty folder, PostgreSQL + moto S3."""
    env = {**os.environ, **S3_ENV, "AWS_ENDPOINT_URL": moto_s3}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(conformance_command(kube_api, pg_url, f"s3://{BUCKET}/conformance-{profile}", profile),
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=WHOLE_SUITE_SECONDS)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
