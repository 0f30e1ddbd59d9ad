"""The local Kubernetes API environment (orcakit.kubeapi) behaves as a kube-apiserver does.

- golden request/response pairs (tests/kubeapi/golden/*.json): raw HTTP requests and the exact
  answers, volatile fields (uid, timestamps, resourceVersions, generated names) normalized, so
  that a run against a real cluster can be diffed against them;
- the official ``kubernetes`` client: CRUD, selectors, watch resume and 410 Gone;
- kubectl 1.37: get, create -f (server-side field validation), describe, logs;
- pods that really run in Docker: Jobs, secrets in env, exit codes, OOMKilled, backoffLimit;
- protobuf bodies: the k8s\\0 envelope round-trips the JSON form (Hypothesis), garbage is a 400;
- ZenML 0.98's own Kubernetes helpers (service account, RoleBinding, secrets, a Job with its
  podFailurePolicy, a CronJob), unmodified, in a subprocess.

kubectl's printed output, command by command, is tests/test_kubectl.py's.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

pytest_plugins = ["tests.kubeapi.fixtures"]

GOLDEN = Path(__file__).parent / "kubeapi" / "golden"
IMAGE = "orcakit/python-base:bookworm"
KUBECTL = str(Path(sys.executable).parent / "kubectl")
VOLATILE = {"uid", "resourceVersion", "creationTimestamp", "startTime", "firstTimestamp", "lastTimestamp", "lastTransitionTime", "time"}


def http(api, path: str, method: str = "GET", body: Any = None, content_type: str = "application/json",
         token: str | None = "admin") -> tuple[int, dict[str, str], Any]:
    """A raw request over the server's TLS, as the kubeconfig's admin (or ``token``; None: none)."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": content_type, "Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {api.server.credentials.admin_token if token == 'admin' else token}"
    request = urllib.request.Request(api.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30, context=api.server.credentials.client_context()) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


def normalize(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("<" + k + ">" if k in VOLATILE and v else normalize(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, str):
        value = re.sub(r"127\.0\.0\.1:\d+", "<server>", value)
        return re.sub(r"test-[0-9a-f]{8}", "<namespace>", re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uid>", value))
    return value


# golden request/response pairs ------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(p.stem for p in GOLDEN.glob("*.json")))
def test_golden(kube_api_nopods, case: str) -> None:
    recorded = json.loads((GOLDEN / f"{case}.json").read_text())
    for step in recorded["exchanges"]:
        path = step["request"]["path"].replace("{namespace}", kube_api_nopods.namespace)
        code, _headers, body = http(kube_api_nopods, path, step["request"]["method"], step["request"].get("body"),
                                    step["request"].get("contentType", "application/json"))
        assert (code, normalize(body)) == (step["response"]["code"], step["response"]["body"]), f"{case}: {step['request']}"


# the official python client --------------------------------------------------------------
@pytest.fixture(scope="module")
def core(kube_api_nopods):
    from kubernetes import client, config

    api_client = config.new_client_from_config(str(kube_api_nopods.kubeconfig))
    yield client.CoreV1Api(api_client)
    api_client.close()


def _pod(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": IMAGE, "command": ["true"]}]}}


def test_client_crud_selectors_and_conflicts(kube_api_nopods, core) -> None:
    from kubernetes.client.exceptions import ApiException

    ns = kube_api_nopods.namespace
    created = core.create_namespaced_pod(ns, _pod("alpha", {"app": "a", "tier": "web"}))
    assert created.metadata.uid and created.metadata.resource_version and created.status.phase == "Pending"
    core.create_namespaced_pod(ns, _pod("beta", {"app": "b"}))
    generated = core.create_namespaced_pod(ns, {**_pod(""), "metadata": {"generateName": "gen-"}})
    assert re.fullmatch(r"gen-[bcdfghjklmnpqrstvwxz2456789]{5}", generated.metadata.name)
    names = lambda **kw: sorted(p.metadata.name for p in core.list_namespaced_pod(ns, **kw).items)
    assert names(label_selector="app in (a,b)") == ["alpha", "beta"]
    assert names(label_selector="app!=a,!tier") == ["beta", generated.metadata.name]
    assert names(field_selector="metadata.name=beta,status.phase=Pending") == ["beta"]
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod(ns, _pod("alpha"))
    assert exc.value.status == 409 and json.loads(exc.value.body)["reason"] == "AlreadyExists"
    stale = core.read_namespaced_pod("alpha", ns)
    core.patch_namespaced_pod("alpha", ns, {"metadata": {"labels": {"app": "z"}}})
    stale.metadata.labels = {"x": "y"}
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_pod("alpha", ns, stale)
    assert exc.value.status == 409 and json.loads(exc.value.body)["reason"] == "Conflict"
    core.delete_namespaced_pod("beta", ns)
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod("beta", ns)
    assert exc.value.status == 404 and json.loads(exc.value.body)["message"] == 'pods "beta" not found'


def test_watch_resumes_and_answers_410_beyond_the_window(kube_api_nopods, core) -> None:
    from kubernetes import watch

    ns = kube_api_nopods.namespace
    start = core.list_namespaced_config_map(ns).metadata.resource_version
    for i in range(3):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"cm{i}"}, "data": {"i": str(i)}})
    core.delete_namespaced_config_map("cm1", ns)
    seen = [(e["type"], e["object"].metadata.name) for e in
            watch.Watch().stream(core.list_namespaced_config_map, ns, resource_version=start, timeout_seconds=1)]
    assert seen == [("ADDED", "cm0"), ("ADDED", "cm1"), ("ADDED", "cm2"), ("DELETED", "cm1")]
    for i in range(60):  # the fixture's window is 50 events
        core.patch_namespaced_config_map("cm0", ns, {"data": {"i": str(i)}})
    request = urllib.request.Request(f"{kube_api_nopods.url}/api/v1/namespaces/{ns}/configmaps?watch=1&resourceVersion={start}&timeoutSeconds=1",
                                     headers={"Authorization": f"Bearer {kube_api_nopods.server.credentials.admin_token}"})
    with urllib.request.urlopen(request, timeout=10, context=kube_api_nopods.server.credentials.client_context()) as response:
        status, event = response.status, json.loads(response.readline())
    assert status == 200 and event["type"] == "ERROR"
    assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"


def test_requests_without_a_valid_token_are_unauthorized(kube_api_nopods) -> None:
    for token in (None, "not-a-token"):
        code, _h, body = http(kube_api_nopods, "/api/v1/namespaces", token=token)
        assert (code, body["kind"], body["reason"]) == (401, "Status", "Unauthorized")
    issued = kube_api_nopods.server.credentials.issue("default", "default")
    assert http(kube_api_nopods, "/api/v1/namespaces", token=issued)[0] == 200  # a service-account token works
    kube_api_nopods.server.credentials.revoke(issued)
    assert http(kube_api_nopods, "/api/v1/namespaces", token=issued)[0] == 401


def test_field_validation_and_invalid_answers(kube_api_nopods) -> None:
    api = kube_api_nopods
    url = f"/api/v1/namespaces/{kube_api_nopods.namespace}/pods"
    bogus = _pod("strict")
    bogus["spec"]["bogus"] = 1
    code, _h, body = http(api, url + "?fieldValidation=Strict", "POST", bogus)
    assert (code, body["reason"], body["message"]) == (400, "BadRequest", 'strict decoding error: unknown field "spec.bogus"')
    code, headers, body = http(api, url + "?fieldValidation=Warn", "POST", bogus)
    assert code == 201 and headers["Warning"] == '299 - "unknown field \\"spec.bogus\\""' and "bogus" not in body["spec"]
    code, _h, body = http(api, url, "POST", _pod("Bad_Name", {"v": "x" * 64}))
    assert code == 422 and body["reason"] == "Invalid"
    assert [c["field"] for c in body["details"]["causes"]] == ["metadata.name", "metadata.labels"]


# kubectl ----------------------------------------------------------------------------------
def kubectl(api, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([KUBECTL, "--kubeconfig", str(api.kubeconfig), *args], input=stdin, capture_output=True, text=True, timeout=60)


def test_kubectl_against_the_server(kube_api_nopods) -> None:
    created = kubectl(kube_api_nopods, "create", "-f", "-", stdin=json.dumps(_pod("kc")))
    assert created.returncode == 0, created.stderr
    listed = kubectl(kube_api_nopods, "get", "pods")
    assert listed.returncode == 0 and re.search(r"^kc\s+0/1\s+Pending", listed.stdout, re.M), listed.stdout + listed.stderr
    bad = _pod("kc-bad")
    bad["spec"]["bogus"] = True
    refused = kubectl(kube_api_nopods, "create", "-f", "-", stdin=json.dumps(bad))
    assert refused.returncode == 1 and 'unknown field "spec.bogus"' in refused.stderr


# pods that really run ---------------------------------------------------------------------
def _job(name: str, script: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": IMAGE, "command": ["sh", "-c", script], **spec.pop("container", {})}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}, **spec}}


def _wait_job(batch, name: str, ns: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = batch.read_namespaced_job(name, ns)
        if any(c.type in ("Complete", "Failed") and c.status == "True" for c in job.status.conditions or []):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {name} did not finish: {job.status}")


@pytest.mark.docker
def test_jobs_run_pods_in_docker(kube_api) -> None:
    from kubernetes import client, config

    api_client = config.new_client_from_config(str(kube_api.kubeconfig))
    core, batch, ns = client.CoreV1Api(api_client), client.BatchV1Api(api_client), kube_api.namespace
    core.create_namespaced_secret(ns, {"metadata": {"name": "creds"}, "stringData": {"token": "s3cr3t"}})
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}]
    batch.create_namespaced_job(ns, _job("ok", "echo token=$TOKEN", container={"env": env}))
    job = _wait_job(batch, "ok", ns)
    assert job.status.succeeded == 1 and [c.type for c in job.status.conditions] == ["SuccessCriteriaMet", "Complete"]
    pod = core.list_namespaced_pod(ns, label_selector="job-name=ok").items[0]
    assert pod.status.phase == "Succeeded" and pod.status.container_statuses[0].state.terminated.exit_code == 0
    # raw bytes: the 36.x client (what ZenML's pins resolve to) renders a preloaded log as "b'...'"
    assert core.read_namespaced_pod_log(pod.metadata.name, ns, _preload_content=False).data == b"token=s3cr3t\n"
    assert kubectl(kube_api, "logs", pod.metadata.name).stdout == "token=s3cr3t\n"
    described = kubectl(kube_api, "describe", "job", "ok")
    assert described.returncode == 0 and "Created pod: " + pod.metadata.name in described.stdout

    batch.create_namespaced_job(ns, _job("fails", "exit 3", backoffLimit=1))
    job = _wait_job(batch, "fails", ns)
    assert job.status.failed == 2 and job.status.conditions[-1].reason == "BackoffLimitExceeded"
    codes = {p.status.container_statuses[0].state.terminated.exit_code for p in core.list_namespaced_pod(ns, label_selector="job-name=fails").items}
    assert codes == {3}

    batch.create_namespaced_job(ns, _job("oom", "python3 -c 'x = bytearray(200 * 2**20); print(len(x))'", backoffLimit=0,
                                         container={"resources": {"limits": {"memory": "64Mi", "cpu": "500m"}}}))
    _wait_job(batch, "oom", ns)
    pod = core.list_namespaced_pod(ns, label_selector="job-name=oom").items[0]
    assert pod.status.container_statuses[0].state.terminated.reason == "OOMKilled"

    batch.delete_namespaced_job("ok", ns, propagation_policy="Background")
    deadline = time.monotonic() + 20
    while core.list_namespaced_pod(ns, label_selector="job-name=ok").items and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not core.list_namespaced_pod(ns, label_selector="job-name=ok").items
    api_client.close()


@pytest.mark.docker
def test_host_path_volumes_are_mounted_as_a_kubelet_mounts_them(kube_api, tmp_path) -> None:
    """hostPath volumes (ZenML's kubernetes orchestrator with ``local: true`` mounts its local
    stores so): the node is this machine, ``type`` is checked as pkg/volume/hostpath checks it,
    ``readOnly`` holds, and a failed type check is a FailedMount event with the pod not started."""
    from kubernetes import client, config

    api_client = config.new_client_from_config(str(kube_api.kubeconfig))
    core, batch, ns = client.CoreV1Api(api_client), client.BatchV1Api(api_client), kube_api.namespace
    shared, created = tmp_path / "shared", tmp_path / "made" / "here"
    shared.mkdir()
    (shared / "in.txt").write_text("from the host")
    volumes = [{"name": "shared", "hostPath": {"path": str(shared), "type": "Directory"}},
               {"name": "made", "hostPath": {"path": str(created), "type": "DirectoryOrCreate"}},
               {"name": "ro", "hostPath": {"path": str(shared)}}]
    mounts = [{"name": "shared", "mountPath": "/data"}, {"name": "made", "mountPath": "/made"},
              {"name": "ro", "mountPath": "/ro", "readOnly": True}]
    script = "cat /data/in.txt > /data/out.txt && touch /made/x && (touch /ro/y 2>/dev/null && echo writable || echo read-only)"
    job = _job("hostpath", script, container={"volumeMounts": mounts})
    job["spec"]["template"]["spec"]["volumes"] = volumes
    batch.create_namespaced_job(ns, job)
    assert _wait_job(batch, "hostpath", ns).status.succeeded == 1
    assert (shared / "out.txt").read_text() == "from the host" and (created / "x").exists() and not (shared / "y").exists()
    pod = core.list_namespaced_pod(ns, label_selector="job-name=hostpath").items[0]
    assert core.read_namespaced_pod_log(pod.metadata.name, ns, _preload_content=False).data == b"read-only\n"

    missing = _pod("nomount")
    missing["spec"]["containers"][0]["volumeMounts"] = [{"name": "gone", "mountPath": "/gone"}]
    missing["spec"]["volumes"] = [{"name": "gone", "hostPath": {"path": str(tmp_path / "absent"), "type": "Directory"}}]
    core.create_namespaced_pod(ns, missing)
    deadline, events = time.monotonic() + 30, []
    while time.monotonic() < deadline and not events:
        events = [e for e in core.list_namespaced_event(ns, field_selector="involvedObject.name=nomount").items if e.reason == "FailedMount"]
        time.sleep(0.2)
    assert events and events[0].type == "Warning", events
    assert events[0].message == (f'MountVolume.SetUp failed for volume "gone" : hostPath type check failed: '
                                 f"{tmp_path / 'absent'} is not a directory")
    assert core.read_namespaced_pod("nomount", ns).status.phase == "Pending"
    api_client.close()


@pytest.mark.docker
def test_foreground_deletion_stops_running_pods_gracefully_before_the_owner_goes(kube_api, tmp_path) -> None:
    """``propagationPolicy=Foreground`` (ZenML's stop_run deletes its step Jobs so): the Job stays,
    with ``deletionTimestamp`` and the ``foregroundDeletion`` finalizer, while the garbage
    collector deletes its pods with their own grace period — the running container gets SIGTERM
    and time to act on it (ZenML's step marks its run STOPPED there) — and goes after them
    (kubernetes.io/docs/concepts/architecture/garbage-collection/#foreground-deletion)."""
    from kubernetes import client, config

    api_client = config.new_client_from_config(str(kube_api.kubeconfig))
    core, batch, ns = client.CoreV1Api(api_client), client.BatchV1Api(api_client), kube_api.namespace
    seen = tmp_path / "seen"
    seen.mkdir()
    script = ("trap 'sleep 1; echo TERM > /seen/signal; exit 0' TERM; touch /seen/started; "
              "while true; do sleep 0.1; done")
    job = _job("stopped", script, container={"volumeMounts": [{"name": "seen", "mountPath": "/seen"}]})
    job["spec"]["template"]["spec"]["volumes"] = [{"name": "seen", "hostPath": {"path": str(seen)}}]
    batch.create_namespaced_job(ns, job)
    deadline = time.monotonic() + 60
    while not (seen / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (seen / "started").exists(), "the job's pod never started"
    batch.delete_namespaced_job("stopped", ns, propagation_policy="Foreground")
    # the owner is still there, being deleted, while its pod terminates
    marked = batch.read_namespaced_job("stopped", ns)
    assert marked.metadata.deletion_timestamp is not None and marked.metadata.finalizers == ["foregroundDeletion"]
    pod = core.list_namespaced_pod(ns, label_selector="job-name=stopped").items[0]
    assert pod.metadata.deletion_timestamp is not None and pod.metadata.deletion_grace_period_seconds == 30
    deadline = time.monotonic() + 60
    while batch.list_namespaced_job(ns, field_selector="metadata.name=stopped").items and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not batch.list_namespaced_job(ns, field_selector="metadata.name=stopped").items
    assert not core.list_namespaced_pod(ns, label_selector="job-name=stopped").items
    # the container acted on SIGTERM (a kill with no grace would have left no file)
    assert (seen / "signal").read_text() == "TERM\n"
    api_client.close()


def test_pod_failure_policy_patterns_default_to_status_true(kube_api_nopods) -> None:
    """SetDefaults_PodFailurePolicyOnPodConditionsPattern and SetDefaults_Job
    (pkg/apis/batch/v1/defaults.go): a pattern without ``status`` is stored with ``"True"`` and a
    Job with a podFailurePolicy replaces ``Failed`` pods only. ZenML 0.98's step jobs leave
    ``status`` out, and the python client it pins (<26) cannot read such a Job back otherwise."""
    policy = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                        {"action": "Count", "onExitCodes": {"containerName": "main", "operator": "NotIn", "values": [0]}}]}
    status, _, job = http(kube_api_nopods, f"/apis/batch/v1/namespaces/{kube_api_nopods.namespace}/jobs", "POST",
                          _job("pfp", "true", podFailurePolicy=policy))
    assert status == 201, job
    assert job["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]
    assert job["spec"]["podReplacementPolicy"] == "Failed"
    status, _, plain = http(kube_api_nopods, f"/apis/batch/v1/namespaces/{kube_api_nopods.namespace}/jobs", "POST", _job("plain", "true"))
    assert status == 201 and plain["spec"]["podReplacementPolicy"] == "TerminatingOrFailed"


# protobuf bodies --------------------------------------------------------------------------

_names = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)


@settings(max_examples=60, deadline=None)
@given(name=_names, labels=st.dictionaries(_names, _names, max_size=3), data=st.dictionaries(_names, _text, max_size=4),
       binary=st.dictionaries(_names, st.binary(max_size=20), max_size=2), command=st.lists(_text, min_size=1, max_size=4),
       backoff=st.integers(0, 10), cpu=st.sampled_from(["100m", "1", "2500m"]), port=st.one_of(st.integers(1, 65535), _names))
def test_protobuf_bodies_round_trip(name, labels, data, binary, command, backoff, cpu, port) -> None:
    """What the k8s\\0 envelope carries decodes to the JSON form it was made from: maps, bytes
    (base64), quantities, IntOrString, times, and a pointer field's zero (backoffLimit: 0)."""
    from orcakit.kubeapi import protobuf

    meta = {"name": name, "namespace": "ns", "creationTimestamp": "2026-01-02T03:04:05Z", **({"labels": labels} if labels else {})}
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, **({"data": data} if data else {}),
                  **({"binaryData": {k: base64.b64encode(v).decode() for k, v in binary.items()}} if binary else {})}
    container = {"name": "main", "image": IMAGE, "command": command, "resources": {"limits": {"cpu": cpu}},
                 "readinessProbe": {"httpGet": {"path": "/", "port": port}},  # inlined ProbeHandler
                 "env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": name, "key": "k"}}}]}  # inlined LocalObjectReference
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
           "spec": {"backoffLimit": backoff, "template": {"spec": {"restartPolicy": "Never", "containers": [container],
                                                          # inlined VolumeSource, an empty one included
                                                          "volumes": [{"name": "v", "emptyDir": {}}, {"name": "s", "secret": {"secretName": name}}]}}}}
    for obj in (config_map, job):
        body = protobuf.encode(obj)
        assert body is not None and body.startswith(b"k8s\x00")
        assert protobuf.decode(body) == obj


def test_protobuf_refuses_what_is_not_a_kubernetes_body(kube_api_nopods) -> None:
    url = kube_api_nopods.url + f"/api/v1/namespaces/{kube_api_nopods.namespace}/configmaps"
    request = urllib.request.Request(url, data=b"not protobuf", method="POST", headers={
        "Content-Type": "application/vnd.kubernetes.protobuf", "Authorization": f"Bearer {kube_api_nopods.server.credentials.admin_token}"})
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=30, context=kube_api_nopods.server.credentials.client_context())
    assert error.value.code == 400 and "k8s\\x00" in json.loads(error.value.read())["message"]


# ZenML's own Kubernetes helpers -----------------------------------------------------------
_ZENML_SCRIPT = r'''
import json, sys
from kubernetes import client as k8s, config
from zenml.integrations.kubernetes import kube_utils, manifest_utils as mu

api = config.new_client_from_config(sys.argv[1])
core, batch, rbac = k8s.CoreV1Api(api), k8s.BatchV1Api(api), k8s.RbacAuthorizationV1Api(api)
ns, image, seen = sys.argv[2], sys.argv[3], {}
kube_utils.create_namespace(core, ns)
for _ in range(2):  # the second time every create answers 409, which ZenML takes as "exists"
    kube_utils.create_edit_service_account(core, rbac, "zenml-service-account", ns)
kube_utils.create_or_update_secret(core, ns, "zsecret", {"KEY": "one"})
kube_utils.create_or_update_secret(core, ns, "zsecret", {"KEY": "two"})
pod = mu.build_pod_manifest(pod_name=None, image_name=image, command=["sh", "-c"], args=["echo step ran; exit 42"], privileged=False,
                            service_account_name="zenml-service-account", env={"A": "1"}, labels={"run": "r1"})
policy = {"rules": [{"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]}
job = mu.build_job_manifest(job_name="zjob", pod_template=mu.pod_template_manifest_from_pod(pod), backoff_limit=3,
                            ttl_seconds_after_finished=600, labels={"run": "r1"}, active_deadline_seconds=300, pod_failure_policy=policy)
kube_utils.create_job(batch_api=batch, namespace=ns, job_manifest=job)
try:
    kube_utils.wait_for_job_to_finish(lambda: api, ns, "zjob", backoff_interval=0.5, stream_logs=False, container_name="main")
except RuntimeError as error:
    seen["error"] = str(error)
seen["conditions"] = [[c.type, c.reason] for c in kube_utils.get_job(batch, ns, "zjob").status.conditions]
cron = mu.build_cron_job_manifest(job_template=mu.job_template_manifest_from_job(job), cron_expression="*/5 * * * *",
                                  successful_jobs_history_limit=1, failed_jobs_history_limit=1, concurrency_policy="Forbid")
cron.metadata = k8s.V1ObjectMeta(name="zcron")
batch.create_namespaced_cron_job(ns, cron)
batch.patch_namespaced_cron_job("zcron", ns, {"spec": {"suspend": True}})
seen["suspended"] = batch.read_namespaced_cron_job("zcron", ns).spec.suspend
seen["secret"] = core.read_namespaced_secret("zsecret", ns).data
seen["accounts"] = [p.spec.service_account_name for p in core.list_namespaced_pod(ns, label_selector="run=r1").items]
seen["bindings"] = [(b.role_ref.name, b.subjects[0].name) for b in rbac.list_namespaced_role_binding(ns).items]
print(json.dumps(seen))
'''


@pytest.mark.docker
def test_zenml_kubernetes_helpers_against_the_environment(kube_api, tmp_path) -> None:
    """ZenML 0.98's own Kubernetes helpers (what its KubernetesOrchestrator calls), unmodified:
    service account and RoleBinding, secrets, a Job with ZenML's podFailurePolicy whose FailJob
    rule ends it, a CronJob suspended by patch. Run in a subprocess with its own ZenML config."""
    pytest.importorskip("zenml.integrations.kubernetes")
    env = {**os.environ, "ZENML_CONFIG_PATH": str(tmp_path / "zenml"), "ZENML_ANALYTICS_OPT_IN": "false",
           "ZENML_LOGGING_VERBOSITY": "WARN"}
    result = subprocess.run([sys.executable, "-c", _ZENML_SCRIPT, str(kube_api.kubeconfig), "zenml-helpers", IMAGE],
                            capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert re.search(r"Container main for pod zenml-helpers/zjob-\w+ failed with exit code 42 matching FailJob rule at index 0",
                     seen["error"]), seen
    assert seen["conditions"] == [["FailureTarget", "PodFailurePolicy"], ["Failed", "PodFailurePolicy"]]
    assert seen["suspended"] is True and base64.b64decode(seen["secret"]["KEY"]) == b"two"
    assert seen["accounts"] == ["zenml-service-account"] and seen["bindings"] == [["edit", "zenml-service-account"]]
