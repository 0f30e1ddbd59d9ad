"""kubectl, unmodified, against the local Kubernetes API environment started by its documented
command, compared with what a cluster prints.

Each scenario is a table of kubectl commands run in order in a namespace of its own; each row
names the exit code and regular expressions its stdout (or stderr) must match: the column
headers in the order a cluster's server-side printers give them, the reasons and messages of its
events, the wording of its answers. A regression in fidelity (a lost column, an event the
kubelet no longer records, protobuf bodies refused, server-side apply unavailable) fails a row,
and the report lists every failed row of the scenario at once.

One server per module (the module fixture runs ``python -m orcakit.kubeapi``, the command the
README documents, and reads its kubeconfig); under pytest-xdist each worker starts its own, and
the scenarios share nothing but the server.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

pytestmark = pytest.mark.docker

KUBECTL = str(Path(sys.executable).parent / "kubectl")
IMAGE = "orcakit/python-base:bookworm"
# the command the README documents for starting the environment (`orcakit kubeapi` is the same)
START = [sys.executable, "-m", "orcakit.kubeapi"]
AGE = r"\d+(s|m\d*s?)"  # HumanDuration below a few minutes: 5s, 2m3s, 4m


@dataclass
class Env:
    kubeconfig: Path
    url: str


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    from orcakit.kubeapi.fixtures import _docker_or_skip

    _docker_or_skip()
    folder = tmp_path_factory.mktemp("kubectl")
    kubeconfig, log = folder / "config", (folder / "server.log").open("w")
    process = subprocess.Popen([*START, "--port", "0", "--kubeconfig", str(kubeconfig)], stdout=subprocess.PIPE,
                               stderr=log, text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        url = process.stdout.readline().strip() if process.stdout else ""
        if not url.startswith("https://"):
            process.kill()
            raise AssertionError(f"the environment did not start: {url!r} {(folder / 'server.log').read_text()[-2000:]}")
        yield Env(kubeconfig, url)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def kubectl(env: Env, *args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([KUBECTL, "--kubeconfig", str(env.kubeconfig), *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout)


@dataclass
class Row:
    """One command: its arguments (``{ns}`` is the scenario's namespace), what it must print."""

    args: str | list[str]
    out: list[str] = field(default_factory=list)  # regexes stdout must match (multiline)
    err: list[str] = field(default_factory=list)  # regexes stderr must match
    code: int = 0
    stdin: str | None = None
    absent: list[str] = field(default_factory=list)  # regexes stdout must NOT match

    def argv(self, ns: str) -> list[str]:
        args = self.args.split() if isinstance(self.args, str) else self.args
        return [a.replace("{ns}", ns) for a in args]


JOB_YAML = f"""apiVersion: batch/v1
kind: Job
metadata:
  name: applied
  labels: {{app: applied}}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: {IMAGE}
        command: ["sh", "-c", "echo applied"]
"""
CM_YAML = """apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
data:
  key: two
"""
POD_YAML = f"""apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {{app: web}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: {IMAGE}
    command: ["sleep", "300"]
"""

FAILING_JOBS_YAML = f"""apiVersion: batch/v1
kind: Job
metadata: {{name: policy}}
spec:
  backoffLimit: 6
  podFailurePolicy:
    rules:
    - action: FailJob
      onExitCodes: {{containerName: main, operator: In, values: [42]}}
    - action: Count
      onExitCodes: {{containerName: main, operator: NotIn, values: [0]}}
  template:
    spec:
      restartPolicy: Never
      containers: [{{name: main, image: "{IMAGE}", command: ["sh", "-c", "exit 42"]}}]
---
apiVersion: batch/v1
kind: Job
metadata: {{name: deadline}}
spec:
  activeDeadlineSeconds: 2
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers: [{{name: main, image: "{IMAGE}", command: ["sleep", "60"]}}]
"""

SCENARIOS: dict[str, list[Row]] = {
    # kubectl create (protobuf bodies), jobs that run, events as a cluster records them, logs, wait
    "jobs-and-events": [
        Row("create namespace {ns}", [r"^namespace/{ns} created$"]),
        Row("get namespace {ns}", [r"^NAME\s+STATUS\s+AGE$", rf"^{{ns}}\s+Active\s+{AGE}$"]),
        Row(["create", "job", "j", f"--image={IMAGE}", "-n", "{ns}", "--", "true"], [r"^job.batch/j created$"]),
        Row(["create", "job", "hello", f"--image={IMAGE}", "-n", "{ns}", "--", "sh", "-c", "echo hello from the pod"],
            [r"^job.batch/hello created$"]),
        Row("wait --for=condition=complete job/j job/hello --timeout=90s -n {ns}", [r"^job.batch/j condition met$", r"^job.batch/hello condition met$"]),
        Row("get jobs -n {ns}", [r"^NAME\s+STATUS\s+COMPLETIONS\s+DURATION\s+AGE$", rf"^j\s+Complete\s+1/1\s+{AGE}\s+{AGE}$"]),
        Row("get jobs -o wide -n {ns}", [r"^NAME\s+STATUS\s+COMPLETIONS\s+DURATION\s+AGE\s+CONTAINERS\s+IMAGES\s+SELECTOR$",
                                          rf"^hello\s+Complete\s+1/1\s+\S+\s+\S+\s+hello\s+{IMAGE}\s+batch.kubernetes.io/controller-uid="]),
        Row("get pods -l job-name=j -n {ns}", [r"^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE$", rf"^j-[a-z0-9]{{5}}\s+0/1\s+Completed\s+0\s+{AGE}$"]),
        Row("get pods -o wide -l job-name=j -n {ns}", [r"^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+IP\s+NODE\s+NOMINATED NODE\s+READINESS GATES$",
                                                         r"^j-\S+\s+0/1\s+Completed\s+0\s+\S+\s+127.0.0.1\s+orcakit-node\s+<none>\s+<none>$"]),
        Row("logs job/hello -n {ns}", [r"^hello from the pod$"]),
        Row("logs -f job/hello -n {ns}", [r"^hello from the pod$"]),
        Row("get events --sort-by=.lastTimestamp -n {ns}", [
            r"^LAST SEEN\s+TYPE\s+REASON\s+OBJECT\s+MESSAGE$",
            r"^\S+\s+Normal\s+Scheduled\s+pod/j-\S+\s+Successfully assigned {ns}/j-\S+ to orcakit-node$",
            rf'^\S+\s+Normal\s+Pulled\s+pod/j-\S+\s+Container image "{IMAGE}" already present on machine and can be accessed by the pod$',
            r"^\S+\s+Normal\s+Created\s+pod/j-\S+\s+Container created$",
            r"^\S+\s+Normal\s+Started\s+pod/j-\S+\s+Container started$",
            r"^\S+\s+Normal\s+SuccessfulCreate\s+job/j\s+Created pod: j-\S+$",
            r"^\S+\s+Normal\s+Completed\s+job/j\s+Job completed$"]),
        Row("get events -o wide --field-selector reason=Started -n {ns}", [
            r"^LAST SEEN\s+TYPE\s+REASON\s+OBJECT\s+SUBOBJECT\s+SOURCE\s+MESSAGE\s+FIRST SEEN\s+COUNT\s+NAME$",
            r"^\S+\s+Normal\s+Started\s+pod/j-\S+\s+spec.containers\{j\}\s+kubelet, orcakit-node\s+Container started\s+\S+\s+1\s+j-\S+\.[0-9a-f]+$"],
            absent=[r"Scheduled"]),
        Row("describe job j -n {ns}", [r"^Name:\s+j$", r"^Pods Statuses:\s+0 Active \(0 Ready\) / 1 Succeeded / 0 Failed$",
                                       r"^\s+Normal\s+SuccessfulCreate\s+\S+\s+job-controller\s+Created pod: j-\S+$"]),
        Row("create job dry --image=x -n {ns} --dry-run=server", [r"^job.batch/dry created \(server dry run\)$"]),
        # a pod's hostname is its name, resolving to its IP (what ZenML's orchestrator pod relies on)
        Row(["run", "hn", f"--image={IMAGE}", "--restart=Never", "-n", "{ns}", "--", "python3", "-c",
             "import socket; print(socket.gethostname(), socket.gethostbyname(socket.gethostname()))"], [r"^pod/hn created$"]),
        Row("wait --for=jsonpath={.status.phase}=Succeeded pod/hn --timeout=90s -n {ns}", [r"^pod/hn condition met$"]),
        Row("logs hn -n {ns}", [r"^hn 127.0.0.1$"]),
        Row("get job dry -n {ns}", err=[r'^Error from server \(NotFound\): jobs.batch "dry" not found$'], code=1),
        # an image no registry has: the pull fails as a kubelet's does
        Row("run nope --image=localhost:1/orcakit-absent:1 --restart=Never -n {ns}", [r"^pod/nope created$"]),
        Row("wait --for=jsonpath={.status.containerStatuses[0].state.waiting.reason}=ErrImagePull pod/nope --timeout=90s -n {ns}",
            [r"^pod/nope condition met$"]),
        Row("get events --field-selector involvedObject.name=nope -n {ns}", [
            r'^\S+\s+Normal\s+Pulling\s+pod/nope\s+Pulling image "localhost:1/orcakit-absent:1"$',
            r'^\S+\s+Warning\s+Failed\s+pod/nope\s+Failed to pull image "localhost:1/orcakit-absent:1": ',
            r"^\S+\s+Warning\s+Failed\s+pod/nope\s+Error: ErrImagePull$"]),
    ],
    # server-side apply (field managers, conflicts, force), client-side apply, the three patch kinds, selectors
    "apply-and-patch": [
        Row("create namespace {ns}", [r"^namespace/{ns} created$"]),
        Row("apply --server-side -f - -n {ns}", [r"^job.batch/applied serverside-applied$"], stdin=JOB_YAML),
        Row("wait --for=condition=complete job/applied --timeout=90s -n {ns}", [r"^job.batch/applied condition met$"]),
        Row("apply --server-side -f - -n {ns}", [r"^job.batch/applied serverside-applied$"], stdin=JOB_YAML),
        Row("get job applied -n {ns} -o jsonpath={.metadata.managedFields[*].manager}", [r"^kubectl$"]),
        Row("create configmap cfg --from-literal=key=one -n {ns}", [r"^configmap/cfg created$"]),
        Row("apply --server-side -f - -n {ns}", err=[r'^error: Apply failed with 1 conflict: conflict with "kubectl-create" using v1: \.data\.key$',
                                                     r"--force-conflicts"], code=1, stdin=CM_YAML),
        Row("apply --server-side --force-conflicts -f - -n {ns}", [r"^configmap/cfg serverside-applied$"], stdin=CM_YAML),
        Row("get configmap cfg -n {ns} -o jsonpath={.data.key}", [r"^two$"]),
        Row("get configmaps -n {ns}", [r"^NAME\s+DATA\s+AGE$", rf"^cfg\s+1\s+{AGE}$", rf"^kube-root-ca.crt\s+1\s+{AGE}$"]),
        Row("apply -f - -n {ns}", [r"^pod/web created$"], stdin=POD_YAML),
        Row("apply -f - -n {ns}", [r"^pod/web unchanged$"], stdin=POD_YAML),
        Row("wait --for=condition=Ready pod/web --timeout=60s -n {ns}", [r"^pod/web condition met$"]),
        Row("label pod web tier=front -n {ns}", [r"^pod/web labeled$"]),
        Row("get pods -l app=web,tier=front -n {ns} -o name", [r"^pod/web$"]),
        Row("get pods -l app=nothing -n {ns}", err=[r"^No resources found in {ns} namespace.$"]),
        Row("get pods --field-selector=status.phase=Running -n {ns}", [r"^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE$", rf"^web\s+1/1\s+Running\s+0\s+{AGE}$"]),
        Row(["patch", "pod", "web", "-n", "{ns}", "--type=merge", "-p", '{"metadata":{"annotations":{"a":"1"}}}'], [r"^pod/web patched$"]),
        Row(["patch", "pod", "web", "-n", "{ns}", "--type=merge", "-p", '{"metadata":{"annotations":{"a":"1"}}}'], [r"^pod/web patched \(no change\)$"]),
        Row(["patch", "pod", "web", "-n", "{ns}", "--type=json", "-p", '[{"op":"add","path":"/metadata/annotations/b","value":"2"}]'],
            [r"^pod/web patched$"]),
        Row(["patch", "pod", "web", "-n", "{ns}", "-p", '{"metadata":{"labels":{"s":"x"}}}'], [r"^pod/web patched$"]),
        Row("get pod web -n {ns} -o jsonpath={.metadata.annotations.a}{.metadata.annotations.b}{.metadata.labels.s}", [r"^12x$"]),
        Row("describe pod web -n {ns}", [r"^Name:\s+web$", r"^Status:\s+Running$", r"^Events:$", r"^\s+Type\s+Reason\s+Age\s+From\s+Message$",
                                         r"^\s+Normal\s+Scheduled\s+\S+\s+default-scheduler\s+Successfully assigned {ns}/web to orcakit-node$",
                                         r"^\s+Normal\s+Started\s+\S+\s+kubelet\s+spec.containers\{web\}: Container started$"]),
        Row("delete pod web -n {ns}", [r'^pod "web" deleted from {ns} namespace$']),
        Row("get events --field-selector reason=Killing -n {ns}", [r"^\S+\s+Normal\s+Killing\s+pod/web\s+Stopping container web$"]),
    ],
    # ServiceAccount, Role, RoleBinding and auth can-i
    "rbac-and-auth": [
        Row("create namespace {ns}", [r"^namespace/{ns} created$"]),
        Row("create serviceaccount bot -n {ns}", [r"^serviceaccount/bot created$"]),
        Row("create token bot -n {ns}", [r"^[A-Za-z0-9_-]{20,}$"]),
        Row("create token nobody -n {ns}", err=[r'^error: failed to create token: serviceaccounts "nobody" not found$'], code=1),
        Row("create role reader --verb=get,list --resource=pods -n {ns}", [r"^role.rbac.authorization.k8s.io/reader created$"]),
        Row("create rolebinding rb --role=reader --serviceaccount={ns}:bot -n {ns}", [r"^rolebinding.rbac.authorization.k8s.io/rb created$"]),
        Row("get serviceaccounts -n {ns}", [r"^NAME\s+SECRETS\s+AGE$", rf"^bot\s+0\s+{AGE}$", rf"^default\s+0\s+{AGE}$"]),
        Row("get roles -n {ns}", [r"^NAME\s+CREATED AT$", r"^reader\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"]),
        Row("get rolebindings -o wide -n {ns}", [r"^NAME\s+ROLE\s+AGE\s+USERS\s+GROUPS\s+SERVICEACCOUNTS$", rf"^rb\s+Role/reader\s+{AGE}\s+{{ns}}/bot$"]),
        Row("get role reader -n {ns} -o jsonpath={.rules[0].verbs}", [r'^\["get","list"\]$']),
        Row("auth can-i create pods -n {ns}", [r"^yes$"]),
        Row("auth can-i delete jobs.batch --all-namespaces", [r"^yes$"]),
        Row("auth whoami", [r"^ATTRIBUTE\s+VALUE$", r"^Username\s+kubernetes-admin$", r"^Groups\s+\[system:masters system:authenticated\]$"]),
        Row("api-resources", [r"^NAME\s+SHORTNAMES\s+APIVERSION\s+NAMESPACED\s+KIND$", r"^jobs\s+batch/v1\s+true\s+Job$",
                              r"^roles\s+rbac.authorization.k8s.io/v1\s+true\s+Role$", r"^serviceaccounts\s+sa\s+v1\s+true\s+ServiceAccount$"]),
        Row("explain job.spec.backoffLimit", [r"^KIND:\s+Job$", r"^FIELD: backoffLimit <integer>$"]),
        Row("create secret generic s --from-literal=a=b -n {ns}", [r"^secret/s created$"]),
        Row("get secrets -n {ns}", [r"^NAME\s+TYPE\s+DATA\s+AGE$", rf"^s\s+Opaque\s+1\s+{AGE}$"]),
        Row(["create", "cronjob", "cj", f"--image={IMAGE}", "--schedule=*/5 * * * *", "-n", "{ns}", "--", "true"], [r"^cronjob.batch/cj created$"]),
        Row("get cronjobs -n {ns}", [r"^NAME\s+SCHEDULE\s+TIMEZONE\s+SUSPEND\s+ACTIVE\s+LAST SCHEDULE\s+AGE$",
                                     rf"^cj\s+\*/5 \* \* \* \*\s+<none>\s+False\s+0\s+<none>\s+{AGE}$"]),
    ],
    # how Jobs fail: a podFailurePolicy FailJob rule, activeDeadlineSeconds (what ZenML's jobs use)
    "job-failures": [
        Row("create namespace {ns}", [r"^namespace/{ns} created$"]),
        Row("apply -f - -n {ns}", [r"^job.batch/policy created$", r"^job.batch/deadline created$"], stdin=FAILING_JOBS_YAML),
        Row("wait --for=condition=failed job/policy job/deadline --timeout=90s -n {ns}",
            [r"^job.batch/policy condition met$", r"^job.batch/deadline condition met$"]),
        Row("get jobs -n {ns}", [r"^NAME\s+STATUS\s+COMPLETIONS\s+DURATION\s+AGE$", rf"^policy\s+Failed\s+0/1\s+{AGE}\s+{AGE}$",
                                 rf"^deadline\s+Failed\s+0/1\s+{AGE}\s+{AGE}$"]),
        Row(["get", "job", "policy", "-n", "{ns}", "-o", "jsonpath={.status.failed} {.status.conditions[?(@.type=='Failed')].reason}"],
            [r"^1 PodFailurePolicy$"]),
        Row("get events --field-selector reason=PodFailurePolicy -n {ns}", [
            r"^\S+\s+Warning\s+PodFailurePolicy\s+job/policy\s+Container main for pod {ns}/policy-\S+ failed with exit code 42 "
            r"matching FailJob rule at index 0$"]),
        Row(["get", "job", "deadline", "-n", "{ns}", "-o", "jsonpath={.status.conditions[?(@.type=='Failed')].reason}"], [r"^DeadlineExceeded$"]),
        Row("get events --field-selector reason=DeadlineExceeded -n {ns}", [
            r"^\S+\s+Warning\s+DeadlineExceeded\s+job/deadline\s+Job was active longer than specified deadline$"]),
    ],
    # what a first look at a cluster shows; Services are stored with a ClusterIP (never routed)
    "cluster-basics": [
        Row("create namespace {ns}", [r"^namespace/{ns} created$"]),
        Row("cluster-info", [r"^Kubernetes control plane is running at https://127.0.0.1:\d+$"]),
        Row("get --raw /healthz", [r"^ok$"]),
        Row("version", [r"^Client Version: v1\.37\.\d+$", r"^Server Version: v1\.37\.\d+$"]),
        Row("get namespaces", [r"^NAME\s+STATUS\s+AGE$", rf"^default\s+Active\s+{AGE}$", rf"^kube-system\s+Active\s+{AGE}$"]),
        Row("get services -n default", [r"^NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE$",
                                        rf"^kubernetes\s+ClusterIP\s+10\.96\.0\.1\s+<none>\s+443/TCP\s+{AGE}$"]),
        Row("create service clusterip web --tcp=80:8080 -n {ns}", [r"^service/web created$"]),
        Row("get service web -o wide -n {ns}", [r"^NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE\s+SELECTOR$",
                                                rf"^web\s+ClusterIP\s+10\.96\.\d+\.\d+\s+<none>\s+80/TCP\s+{AGE}\s+app=web$"]),
        Row("create configmap d1 --from-literal=a=1 -n {ns}", [r"^configmap/d1 created$"]),
        Row("diff -f - -n {ns}", [r"^-  a: \"1\"$", r"^\+  a: \"2\"$"], code=1, absent=[r"annotations: \{\}"],
            stdin="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: d1\ndata:\n  a: \"2\"\n"),
        Row("label configmap d1 x=1 -n {ns}", [r"^configmap/d1 labeled$"]),
        Row("label configmap d1 x=2 -n {ns}", err=[r"^error: 'x' already has a value \(1\), and --overwrite is false$"], code=1),
        Row("label configmap d1 x- -n {ns}", [r"^configmap/d1 unlabeled$"]),
        Row("get configmap d1 -n {ns} -o jsonpath={.metadata}", [r'^\{"creationTimestamp"'], absent=[r'"labels"']),
    ],
    # cascading deletes, as kubectl asks for them
    "deletes": [
        Row("create namespace {ns}", [r"^namespace/{ns} created$"]),
        Row(["create", "job", "gone", f"--image={IMAGE}", "-n", "{ns}", "--", "true"], [r"^job.batch/gone created$"]),
        Row("wait --for=condition=complete job/gone --timeout=90s -n {ns}", [r"^job.batch/gone condition met$"]),
        Row("delete job gone --cascade=foreground -n {ns}", [r'^job.batch "gone" deleted from {ns} namespace$']),
        Row("get pods -l job-name=gone -n {ns}", err=[r"^No resources found in {ns} namespace.$"]),
        Row("delete namespace {ns}", [r'^namespace "{ns}" deleted$']),  # waits until the namespace is gone
        Row("get namespace {ns}", err=[r'^Error from server \(NotFound\): namespaces "{ns}" not found$'], code=1),
    ],
}


def _check(row: Row, ns: str, result: subprocess.CompletedProcess) -> list[str]:
    problems = []
    if result.returncode != row.code:
        problems.append(f"exit code {result.returncode}, a cluster's would be {row.code}")
    for stream, patterns, text in (("stdout", row.out, result.stdout), ("stderr", row.err, result.stderr)):
        for pattern in patterns:
            if not re.search(pattern.replace("{ns}", ns), text, re.M):
                problems.append(f"{stream} lacks /{pattern}/")
    for pattern in row.absent:
        if re.search(pattern.replace("{ns}", ns), result.stdout, re.M):
            problems.append(f"stdout has /{pattern}/")
    return problems


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_kubectl_prints_what_a_cluster_prints(env: Env, scenario: str) -> None:
    ns = f"{scenario[:20]}-{uuid.uuid4().hex[:6]}"
    failures = []
    for row in SCENARIOS[scenario]:
        argv = row.argv(ns)
        try:
            result = kubectl(env, *argv, stdin=row.stdin)
        except subprocess.TimeoutExpired as timeout:
            failures.append(f"kubectl {' '.join(argv)}\n  did not end within {timeout.timeout} s")
            continue
        problems = _check(row, ns, result)
        if problems:
            failures.append(f"kubectl {' '.join(argv)}\n  " + "\n  ".join(problems) +
                            f"\n  stdout: {result.stdout[-1500:]!r}\n  stderr: {result.stderr[-800:]!r}")
    assert not failures, f"{len(failures)} of {len(SCENARIOS[scenario])} rows differ from a cluster:\n" + "\n".join(failures)


def test_at_least_thirty_commands() -> None:
    assert sum(len(rows) for rows in SCENARIOS.values()) >= 30


def test_watch_rows_carry_every_column(env: Env) -> None:
    """``kubectl get pods -w``: every update row has READY, STATUS, RESTARTS and AGE, as on a cluster."""
    ns = f"watch-{uuid.uuid4().hex[:6]}"
    assert kubectl(env, "create", "namespace", ns).returncode == 0
    watch = subprocess.Popen([KUBECTL, "--kubeconfig", str(env.kubeconfig), "get", "pods", "-w", "-n", ns], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    printed: list[str] = []
    reader = threading.Thread(target=lambda: printed.extend(iter(watch.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        created = kubectl(env, "create", "job", "w", f"--image={IMAGE}", "-n", ns, "--", "true")
        assert created.returncode == 0, created.stderr
        assert kubectl(env, "wait", "--for=condition=complete", "job/w", "--timeout=90s", "-n", ns).returncode == 0
        deadline = time.monotonic() + 60  # the last update row on its way, however loaded the machine
        while not any("Completed" in line for line in printed) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        watch.send_signal(signal.SIGINT)
        watch.wait(30)
        reader.join(10)  # the reader owns stdout: reading it here too would race it
        err = watch.stderr.read() if watch.stderr else ""
    out = "".join(printed)
    lines = [line for line in out.splitlines() if line.strip()]
    assert re.fullmatch(r"NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE", lines[0]), out + err
    assert lines.count(lines[0]) == 1, "the header is printed once: " + out
    rows = lines[1:]
    assert len(rows) >= 3, out + err
    for row in rows:
        assert re.fullmatch(rf"w-[a-z0-9]{{5}}\s+\d/1\s+(Pending|ContainerCreating|Running|Completed)\s+0\s+{AGE}", row), row
    assert re.search(r"\s+Completed\s+", rows[-1]), out
