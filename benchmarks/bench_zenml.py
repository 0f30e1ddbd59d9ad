"""Where a ``--flavor=zenml:...`` run's time goes, and what a long-lived ZenML worker saves
(issue 16, "Time").

``python benchmarks/bench_zenml.py [--flavor zenml:local] [--reps 5] [--json OUT]``

Interleaved rounds, in one ZenML session (the driver's own: a throwaway ZenML config and store):

- ``import``: a fresh ``python -c "import orcakit.conformance.zenml_runner; Client().active_stack_model"``
  (what every run paid before the worker: a Python start, ``import zenml``, a ZenML client and a
  read of its store);
- ``process per run``: a one-step probe pipeline through a fresh
  ``python -m orcakit.conformance.zenml_runner run`` (the old way);
- ``worker``: the same pipeline through the driver's long-lived worker (``ZenMLDriver.run``, the
  new way), observation included.

Medians and the quietest round; the load average is recorded with each figure (the machine is
shared). Writes JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid


def load() -> str:
    return open("/proc/loadavg").read().split(" ", 3)[:3].__str__()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flavor", default="zenml:local")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from orcakit.conformance.driver import driver_class
    from orcakit.conformance.harness import chain

    cls, reference = driver_class(args.flavor)
    driver = cls.open(reference)
    figures: dict[str, list[float]] = {"import": [], "process per run": [], "worker": []}
    loads = []
    for _ in range(args.reps):
        loads.append(load())
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import orcakit.conformance.zenml_runner; "
                        "from zenml.client import Client; Client().active_stack_model"], check=True, cwd=driver.workdir)
        figures["import"].append(time.perf_counter() - started)

        snapshot = driver.compile_dag(chain(1))
        request = driver._request(snapshot, f"orcakit-{snapshot.snapshot_id}-{uuid.uuid4().hex[:8]}")
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "orcakit.conformance.zenml_runner", "run"], input=json.dumps(request),
                              capture_output=True, text=True, cwd=driver.workdir)
        figures["process per run"].append(time.perf_counter() - started)
        assert done.returncode == 0, done.stderr[-2000:]

        snapshot = driver.compile_dag(chain(1))
        started = time.perf_counter()
        obs = driver.run(snapshot)
        figures["worker"].append(time.perf_counter() - started)
        assert obs.run.status.value == "completed", obs.run
    result = {
        "flavor": args.flavor, "reps": args.reps, "loadavg_per_round": loads,
        "median_s": {name: round(statistics.median(values), 3) for name, values in figures.items()},
        "quietest_s": {name: round(min(values), 3) for name, values in figures.items()},
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
