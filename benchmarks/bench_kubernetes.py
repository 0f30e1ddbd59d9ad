"""Orchestration overhead of the kubernetes flavor, on the local Kubernetes API test environment
(tests/kubeapi: pods are Docker containers), PostgreSQL run store, moto S3 artifact store.

    ORCAKIT_TEST_POSTGRES_URL=... python benchmarks/bench_kubernetes.py [--reps 2] [--fan 10]

- **per step beyond the pod's own run time**: chains of 1 and 4 no-op steps; the least-squares
  slope of the wall time over N, minus the median time a step pod's container ran (its
  ``state.terminated`` startedAt..finishedAt, second resolution) — what the orchestrator pod,
  the API and the kubelet add per step;
- **pods per second at fan-out**: ``--fan`` independent no-op steps at max_parallelism = fan;
  step pods created / (last creationTimestamp - first), and fan / (wall(fan) - wall(chain 1)).

Run from the repository root (it starts the test API server and moto in this process).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime
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


def stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--fan", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from kubernetes import client, config

    from tests.kubeapi.server import ServerThread
    from tests.test_kubernetes_flavor import BUCKET, S3_ENV, start_moto

    os.environ.update(S3_ENV)
    server = ServerThread()
    server.start()
    kubeconfig = server.write_kubeconfig(Path("/tmp") / f"bench-kube-{os.getpid()}", "default")
    moto, endpoint = start_moto()
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))

    def stack(parallelism: int) -> StackSpec:
        return StackSpec(
            orchestrator=ComponentSpec(flavor="kubernetes", name="bench", config={
                "kubeconfig": str(kubeconfig), "max_parallelism": parallelism,
                "code_paths": [str(Path(__file__).resolve())]}),
            artifact_store=f"s3://{BUCKET}/bench", artifact_store_options={"endpoint_url": endpoint},
            run_store=os.environ["ORCAKIT_TEST_POSTGRES_URL"])

    pods: dict[str, dict] = {}

    def timed(p, *a, parallelism: int = 8) -> float:
        snapshot = p.compile(stack(parallelism), *a)
        started = time.monotonic()
        record = run_snapshot(snapshot)
        wall = time.monotonic() - started
        assert record.status.value == "completed", record
        return wall

    # record pods as the kubelet reports them (they are deleted when a run ends)
    import threading

    stop = threading.Event()

    def collect() -> None:
        while not stop.is_set():
            for pod in json.loads(core.list_namespaced_pod("default", label_selector="orcakit.role=step", _preload_content=False).data)["items"]:
                pods[pod["metadata"]["uid"]] = pod
            time.sleep(0.2)

    threading.Thread(target=collect, daemon=True).start()
    timed(chain, 1)  # builds the image once
    walls: dict[str, list[float]] = {"chain1": [], "chain4": [], "fan": []}
    fan_pods: list[list[float]] = []
    for _ in range(args.reps):
        walls["chain1"].append(timed(chain, 1))
        walls["chain4"].append(timed(chain, 4))
        before = set(pods)
        walls["fan"].append(timed(fan, args.fan, parallelism=args.fan))
        time.sleep(0.5)
        fan_pods.append(sorted(stamp(p["metadata"]["creationTimestamp"]) for uid, p in pods.items() if uid not in before))
    stop.set()
    ran = []
    for pod in pods.values():
        for status in pod.get("status", {}).get("containerStatuses") or []:
            term = (status.get("state") or {}).get("terminated")
            if term and term.get("startedAt") and term.get("finishedAt"):
                ran.append(stamp(term["finishedAt"]) - stamp(term["startedAt"]))
    c1, c4, fw = (statistics.median(walls[k]) for k in ("chain1", "chain4", "fan"))
    slope = (c4 - c1) / 3
    pod_run = statistics.median(ran) if ran else float("nan")
    spans = [s[-1] - s[0] for s in fan_pods if len(s) > 1]
    result = {
        "chain1_s": round(c1, 2), "chain4_s": round(c4, 2), "per_step_s": round(slope, 2),
        "pod_run_s_median": round(pod_run, 2), "overhead_per_step_s": round(slope - pod_run, 2),
        f"fan{args.fan}_s": round(fw, 2), "pods_per_s_creation": round(args.fan / max(statistics.median(spans), 1.0), 2) if spans else None,
        "pods_per_s_vs_chain1": round(args.fan / max(fw - c1, 1e-3), 2), "reps": args.reps,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    server.stop()
    moto.terminate()


if __name__ == "__main__":
    main()
