"""Probe steps: what the conformance pipelines are made of.

A probe runs inside the step's real execution environment (the process, container or pod the
flavor started) and records what it observes there into the run's artifact store — the one
channel every flavor must give its steps. Nothing here imports pytest or Hypothesis: this module
must import cheaply in any step image that has orcakit installed.

What a probe records (``probes/<snapshot_id>/<run>/<step>/<attempt>.start.json`` before doing
anything else, ``...end.json`` just before returning; ``<run>`` is the run-store record the step
attached to, so several runs of one snapshot never mix):
- ``run_id``: ``get_orchestrator_run_id()`` called *here*; ``env_run_id``: the flavor's run-ID
  variable as seen here;
- ``env``: the requested environment variables (``None`` when absent);
- ``cpu``/``memory``/``gpus``: the effective CPU quota (CPUs), memory limit (bytes) and visible
  GPU count, read from cgroup v1 or v2 and the GPU visibility variables;
- ``upstream_done``: for every upstream step, whether its end record existed when this step
  started (ordering without trusting clocks across machines);
- ``inputs``: the tokens received from upstream steps; ``attempt``; ``pid``; ``host``;
  ``container``; wall-clock ``time`` (for same-machine overlap and retry-delay checks).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from orcakit import get_step_context, pipeline, step


def probe_key(snapshot_id: str, run_uuid: str, step_name: str, attempt: int, phase: str) -> str:
    return f"probes/{snapshot_id}/{run_uuid}/{step_name}/{attempt}.{phase}.json"


def _cgroup_paths() -> dict[str, str]:
    """controller -> path of this process's cgroup (v2 under key '')."""
    paths: dict[str, str] = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                paths[controller] = path
    except OSError:
        pass
    return paths


def _read(candidates: list[Path]) -> str | None:
    for candidate in candidates:
        try:
            return candidate.read_text().strip()
        except OSError:
            continue
    return None


def _candidates(controller_dir: str, cgroup_path: str, filename: str) -> list[Path]:
    # Inside a container with a private cgroup namespace the group is mounted at the root;
    # on a host (or host cgroupns) it is at the path /proc/self/cgroup names.
    root = Path("/sys/fs/cgroup") / controller_dir if controller_dir else Path("/sys/fs/cgroup")
    return [root / cgroup_path.lstrip("/") / filename, root / filename]


def observe_cpu() -> float | None:
    """Effective CPU limit in CPUs (quota/period), or None when unlimited."""
    paths = _cgroup_paths()
    if "" in paths and Path("/sys/fs/cgroup/cgroup.controllers").exists():
        value = _read(_candidates("", paths[""], "cpu.max"))
        if value:
            quota, _, period = value.partition(" ")
            return None if quota == "max" else int(quota) / int(period or 100000)
        return None
    cpu_path = paths.get("cpu", paths.get("cpu,cpuacct", "/"))
    for controller_dir in ("cpu", "cpu,cpuacct"):
        quota = _read(_candidates(controller_dir, cpu_path, "cpu.cfs_quota_us"))
        period = _read(_candidates(controller_dir, cpu_path, "cpu.cfs_period_us"))
        if quota is not None and period is not None:
            return None if int(quota) < 0 else int(quota) / int(period)
    return None


_UNLIMITED = 2**62


def observe_memory() -> int | None:
    """Effective memory limit in bytes, or None when unlimited."""
    paths = _cgroup_paths()
    if "" in paths and Path("/sys/fs/cgroup/cgroup.controllers").exists():
        value = _read(_candidates("", paths[""], "memory.max"))
        return None if value in (None, "max") else int(value)
    value = _read(_candidates("memory", paths.get("memory", "/"), "memory.limit_in_bytes"))
    if value is None or int(value) >= _UNLIMITED:
        return None
    return int(value)


def observe_gpus() -> int | None:
    """Visible GPUs: from CUDA/NVIDIA visibility variables, else device nodes; None if unknown."""
    for variable in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"):
        value = os.environ.get(variable)
        if value is not None:
            if value.strip() in ("", "none", "void", "-1"):
                return 0
            if value.strip() == "all":
                break
            return len([part for part in value.split(",") if part.strip()])
    devices = [name for name in os.listdir("/dev") if re.fullmatch(r"nvidia[0-9]+", name)] if os.path.isdir("/dev") else []
    return len(devices)


def process_start_ticks(pid: int | str = "self") -> int | None:
    """When a process started (clock ticks since boot, /proc/<pid>/stat field 22): with the pid,
    it names one process for good — a later process that reuses the pid started later."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def container_identity() -> str | None:
    """A container ID from this process's cgroup or its root mount, when running in one. (Not
    any line of mountinfo: on a host, the overlay mounts of *other* running containers show up
    there too.)"""
    try:
        match = re.search(r"[0-9a-f]{64}", Path("/proc/self/cgroup").read_text())
        if match:
            return match.group(0)
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            if len(fields) > 4 and fields[4] == "/":
                match = re.search(r"[0-9a-f]{64}", line)
                return match.group(0) if match else None
    except OSError:
        pass
    return None


def pid_namespace() -> str | None:
    """This process's PID namespace (``pid:[inode]``): a pid means the same process only to
    readers in the same namespace."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


@step
def probe(spec: dict, **inputs: Any) -> dict:
    """One node of a conformance DAG.

    ``spec`` keys: ``env_keys`` (names to record), ``fail_attempts`` (attempt numbers that raise;
    ``[-1]`` means every attempt), ``sleep`` (seconds), ``kill`` (SIGKILL itself after
    recording), ``allocate_mb`` (allocate and touch that much memory), ``upstream`` (names),
    ``log_env`` (print the recorded variables' names to the step log).
    """
    context = get_step_context()
    store = context.artifact_store
    snapshot_id = context.snapshot.snapshot_id
    run_uuid = context.run_uuid

    def ended(up: str) -> bool:
        return any(key.endswith(".end.json") for key in store.list(f"probes/{snapshot_id}/{run_uuid}/{up}/"))

    return run_probe(
        spec, step=context.step_name, attempt=context.attempt, run_uuid=run_uuid,
        run_id=context.orchestrator.get_orchestrator_run_id(), context_run_id=context.orchestrator_run_id,
        run_id_env_var=context.orchestrator.run_id_env_var,
        inputs={name: value.get("token") if isinstance(value, dict) else value for name, value in inputs.items()},
        ended=ended, put=lambda phase, data: store.put(probe_key(snapshot_id, run_uuid, context.step_name, context.attempt, phase), data),
    )


def run_probe(spec: dict, *, step: str, attempt: int, run_uuid: str, run_id: Any, context_run_id: Any,
              run_id_env_var: str | None, inputs: dict, ended, put) -> dict:
    """What a probe does wherever it runs (an orcakit step, a ZenML step): record what it sees
    (``put("start", ...)``), do what ``spec`` asks, record its end (``put("end", ...)``).
    ``ended(up)`` says whether upstream step ``up`` had recorded its end."""
    record: dict[str, Any] = {
        "step": step,
        "attempt": attempt,
        "run_uuid": run_uuid,
        "run_id": run_id,
        "context_run_id": context_run_id,
        "env_run_id": os.environ.get(run_id_env_var) if run_id_env_var else None,
        "env": {key: os.environ.get(key) for key in spec.get("env_keys", [])},
        "cpu": observe_cpu(),
        "memory": observe_memory(),
        "gpus": observe_gpus(),
        "upstream_done": {up: ended(up) for up in spec.get("upstream", [])},
        "inputs": inputs,
        "pid": os.getpid(),
        "pid_started": process_start_ticks(),
        "pid_namespace": pid_namespace(),
        "host": socket.gethostname(),
        "container": container_identity(),
        "time": time.time(),
    }
    put("start", json.dumps(record).encode())
    if spec.get("log_env"):
        # What a careless step does: print its configuration. The names go to the step log,
        # the values do not (a flavor may not be blamed for what the step itself prints).
        print(f"probe {step}: environment has {sorted(record['env'])}", flush=True)
    if spec.get("kill"):
        os.kill(os.getpid(), signal.SIGKILL)
        # Still here: this process is its PID namespace's init (a container started without an
        # init process), which the kernel shields from its own signals. End as abruptly as a kill
        # would (no cleanup, no report), with the status a SIGKILL gives.
        os._exit(128 + signal.SIGKILL)
    if spec.get("allocate_mb"):
        block = bytearray(int(spec["allocate_mb"]) * 1024 * 1024)
        for offset in range(0, len(block), 4096):
            block[offset] = 1
    fail = spec.get("fail_attempts", [])
    if -1 in fail or attempt in fail:
        raise RuntimeError(f"probe {step} fails on purpose (attempt {attempt})")
    if spec.get("sleep"):
        time.sleep(float(spec["sleep"]))
    token = uuid.uuid4().hex
    put("end", json.dumps({"step": step, "attempt": attempt, "time": time.time(), "token": token}).encode())
    return {"step": step, "token": token}


@pipeline
def probe_dag(dag: dict) -> None:
    """Build a DAG of probes from its JSON description (as made by ``strategies.dags`` and
    ``harness.chain``, compiled by ``harness.FlavorUnderTest.compile_dag``):
    ``{"nodes": [{"name", "upstream": [...], "spec": {...}, "resources": {...}, "retry": {...},
    "environment": {...}}]}`` in topological order. Data edges: upstream outputs are passed as
    inputs named ``in_<upstream>``, so ordering and data flow are both exercised."""
    outputs: dict[str, Any] = {}
    for node in dag["nodes"]:
        options: dict[str, Any] = {}
        if node.get("resources"):
            options["settings"] = {"resources": node["resources"]}
        if node.get("retry"):
            options["retry"] = node["retry"]
        if node.get("environment"):
            options["environment"] = node["environment"]
        task = probe.with_options(**options) if options else probe
        spec = {**node.get("spec", {}), "upstream": list(node.get("upstream", []))}
        inputs = {f"in_{up}": outputs[up] for up in node.get("upstream", [])}
        outputs[node["name"]] = task(spec, id=node["name"], **inputs)


@pipeline(dynamic=True)
def dynamic_probe_dag(width: int, env_keys: list, child_environment: dict | None = None) -> None:
    """A dynamic pipeline: the root decides at run time how many children run (its output).
    The children, added at run time, carry ``child_environment`` as step-level environment."""
    root = probe({"env_keys": env_keys}, id="root")
    child = probe.with_options(environment=child_environment) if child_environment else probe
    children = [child({"env_keys": env_keys, "upstream": ["root"]}, id=f"child_{i}", in_root=root) for i in range(width)]
    probe({"env_keys": env_keys, "upstream": [c["step"] for c in children]}, id="join", **{f"in_{c['step']}": c for c in children})
