"""Orchestration overhead of the kubernetes flavor, on the local Kubernetes API test environment
(tests/kubeapi: pods are Docker containers), PostgreSQL run store, moto S3 artifact store.

    ORCAKIT_TEST_POSTGRES_URL=... python benchmarks/bench_kubernetes.py [--reps 2] [--fan 10]

- **per step beyond the pod's own run time**: chains of 1 and 4 no-op steps; the slope of the
  wall time over N, minus the median time a step container ran (start..die as the Docker engine
  reports it: the python interpreter and the step entrypoint) — what the orchestrator pod, the
  API and the kubelet add per step; and per run: chain 1 minus that;
- **pods per second at fan-out**: ``--fan`` independent no-op steps at max_parallelism = fan:
  step containers created per second (first to last create event of the run), and
  fan / (wall(fan) - wall(chain 1)).

Run from the repository root (it starts the test API server and moto in this process).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from orcakit import ComponentSpec, StackSpec, pipeline, step  # noqa: E402
from orcakit.reference import run_snapshot  # noqa: E402


@step
def noop(x: int = 0) -> int:
    return x + 1


@pipeline
def chain(n: int = 1):
    value = noop(0, id="s0")
    for i in range(1, n):
        value = noop(value, id=f"s{i}")


@pipeline
def fan(width: int = 10):
    for i in range(width):
        noop(i, id=f"f{i}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--fan", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from tests.kubeapi.server import ServerThread
    from tests.moto_server import S3_ENV, start_moto
    from tests.test_kubernetes_flavor import BUCKET

    os.environ.update(S3_ENV)
    server = ServerThread()
    server.start()
    kubeconfig = server.write_kubeconfig(Path("/tmp") / f"bench-kube-{os.getpid()}", "default")
    moto, endpoint = start_moto()
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)

    def stack(parallelism: int) -> StackSpec:
        return StackSpec(
            orchestrator=ComponentSpec(flavor="kubernetes", name="bench", config={
                "kubeconfig": str(kubeconfig), "max_parallelism": parallelism,
                "code_paths": [str(Path(__file__).resolve())]}),
            artifact_store=f"s3://{BUCKET}/bench", artifact_store_options={"endpoint_url": endpoint},
            run_store=os.environ["ORCAKIT_TEST_POSTGRES_URL"])

    def timed(p, *a, parallelism: int = 8) -> tuple[float, float, float]:
        """(wall seconds, start, end) of one run, on the clock of the engine's events."""
        snapshot = p.compile(stack(parallelism), *a)
        started = time.time()
        record = run_snapshot(snapshot)
        ended = time.time()
        assert record.status.value == "completed", record
        return ended - started, started, ended

    # step containers as the engine reports them (nanosecond stamps; the pods' own
    # startedAt/finishedAt have a resolution of one second)
    import threading

    import docker

    engine = docker.from_env()
    events: list[tuple[float, str, str]] = []

    def collect() -> None:
        for event in engine.events(decode=True, filters={"type": "container"}):
            name = event.get("Actor", {}).get("Attributes", {}).get("name", "")
            if name.startswith("k8s_step_") and event.get("Action") in ("create", "start", "die"):
                events.append((event["timeNano"] / 1e9, event["Action"], name))

    threading.Thread(target=collect, daemon=True).start()
    timed(chain, 1)  # builds the image once
    walls: dict[str, list[float]] = {"chain1": [], "chain4": [], "fan": []}
    fans: list[tuple[float, float]] = []
    chains: list[tuple[float, float]] = []  # one step at a time: what a step container costs alone
    for _ in range(args.reps):
        for n in (1, 4):
            wall, start, end = timed(chain, n)
            walls[f"chain{n}"].append(wall)
            chains.append((start, end))
        wall, start, end = timed(fan, args.fan, parallelism=args.fan)
        walls["fan"].append(wall)
        fans.append((start, end))
    time.sleep(1)
    starts = {name: t for t, action, name in events if action == "start"}
    ran = [t - starts[name] for t, action, name in events
           if action == "die" and name in starts and any(a <= t <= b for a, b in chains)]
    c1, c4, fw = (statistics.median(walls[k]) for k in ("chain1", "chain4", "fan"))
    slope = (c4 - c1) / 3
    pod_run = statistics.median(ran) if ran else float("nan")
    rates = []
    for start, end in fans:
        created = sorted(t for t, action, _ in events if action == "create" and start <= t <= end)
        if len(created) > 1:
            rates.append((len(created) - 1) / (created[-1] - created[0]))
    result = {
        "chain1_s": round(c1, 2), "chain4_s": round(c4, 2), "per_step_s": round(slope, 2),
        "step_container_run_s_median": round(pod_run, 2), "overhead_per_step_s": round(slope - pod_run, 2),
        "overhead_per_run_s": round(c1 - pod_run, 2),
        f"fan{args.fan}_s": round(fw, 2), "pods_per_s_created_at_fan_out": round(statistics.median(rates), 1) if rates else None,
        "pods_per_s_vs_chain1": round(args.fan / max(fw - c1, 1e-3), 2), "reps": args.reps,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    server.stop()
    moto.terminate()


if __name__ == "__main__":
    main()
