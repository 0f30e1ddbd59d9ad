"""orcakit next to its peers on the same workloads, timed alternately in one run (issue 17).

    python benchmarks/bench_peers.py [--reps 3] [--ns 1,50] [--json OUT] [--peers-dir DIR]

Workloads, each a fresh process timed from outside (wall, and CPU of the whole process tree via
``RUSAGE_CHILDREN``), which also prints its own in-process time (pipeline built -> run end):

- ``chain``: ``n`` no-op steps, each taking the previous step's output;
- ``fanout``: ``n`` independent no-op steps.

Each at every ``n`` of ``--ns``; the cost per added step is the slope between the smallest and
the largest ``n`` (wall and CPU), the figure issue 17's table compares.

Contenders:

- orcakit, local flavor, ``launcher="fork"`` (``orcakit-fork``; ``orcakit-fork-client`` with
  ``fork_server="client"``) and ``launcher="exec"`` (every step its own process; fresh SQLite run
  store and artifact folder per run; ``benchmarks/pipelines_noop.py``);
- ZenML's ``local`` orchestrator (every step in the client process, one after another), caching
  off, on a local ZenML store initialised before timing (its first-use migrations are not timed);
- Dagster's in-process executor (``execute_in_process``: every op in the client process, one after
  another, ephemeral instance).

Each peer is installed at a pinned version in a virtual environment of its own (``uv venv`` +
``uv pip install``, created on first use under ``--peers-dir``, by default
``~/.cache/orcakit-bench-peers``; never inside the repository). Rounds are interleaved: every
(contender, workload) once per round, so load on the shared machine hits all of them alike;
figures are medians, and ``uptime`` is recorded before and after.

Issue 17's goal: orcakit's fork launcher at <= 0.5x Dagster's wall time on a chain of 50 (whole
process, and in-process), while still running every step in its own process.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = {"zenml": "zenml[local]==0.98.0", "dagster": "dagster==1.13.28"}
GOAL_FORK_OVER_DAGSTER = 0.5

ZENML_SCRIPT = r'''
import json, sys, time
t0 = time.perf_counter()
from zenml import pipeline, step
t_import = time.perf_counter()

@step(enable_cache=False)
def noop(previous: int | None = None) -> int:
    return 0 if previous is None else previous + 1

@pipeline(enable_cache=False)
def chain(n: int) -> None:
    previous = None
    for i in range(n):
        previous = noop(previous, id=f"s{i}")

@pipeline(enable_cache=False)
def fanout(n: int) -> None:
    for i in range(n):
        noop(None, id=f"s{i}")

shape, n = sys.argv[1], int(sys.argv[2])
t1 = time.perf_counter()
run = (chain if shape == "chain" else fanout).with_options(enable_cache=False)(n=n)
t2 = time.perf_counter()
status = str(run.status).split(".")[-1].lower() if run is not None else "unknown"
print(json.dumps({"status": status, "import_s": t_import - t0, "run_s": t2 - t1}))
'''

DAGSTER_SCRIPT = r'''
import json, sys, time
t0 = time.perf_counter()
from dagster import In, Nothing, Out, job, op
t_import = time.perf_counter()

@op
def noop(previous):
    return 0 if previous is None else previous + 1

@op
def start():
    return None

shape, n = sys.argv[1], int(sys.argv[2])

@job
def bench():
    if shape == "chain":
        previous = start()
        for i in range(n):
            previous = noop.alias(f"s{i}")(previous)
    else:
        for i in range(n):
            noop.alias(f"s{i}")(start.alias(f"start{i}")())

t1 = time.perf_counter()
result = bench.execute_in_process()
t2 = time.perf_counter()
print(json.dumps({"status": "completed" if result.success else "failed", "import_s": t_import - t0, "run_s": t2 - t1}))
'''


def peer_python(peers_dir: Path, name: str) -> Path:
    """The peer's venv interpreter, creating the venv (uv) on first use."""
    requirement = PEERS[name]
    venv = peers_dir / requirement.replace("[local]", "").replace("==", "-")
    python = venv / "bin" / "python"
    if not python.exists() or subprocess.run([str(python), "-c", f"import {name}"], capture_output=True).returncode != 0:
        uv = shutil.which("uv")
        if uv is None:
            raise SystemExit("bench_peers needs uv (https://docs.astral.sh/uv/) to make the peers' virtual environments")
        print(f"installing {requirement} into {venv} ...", file=sys.stderr)
        subprocess.run([uv, "venv", "-q", "--python", f"{sys.version_info.major}.{sys.version_info.minor}", str(venv)], check=True)
        subprocess.run([uv, "pip", "install", "-q", requirement], check=True, env={**os.environ, "VIRTUAL_ENV": str(venv)})
    return python


def timed(argv: list[str], env: dict[str, str], cwd: str) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    inner = json.loads(proc.stdout.strip().splitlines()[-1])
    if inner["status"] != "completed":
        raise SystemExit(f"{' '.join(argv[:4])}: the run ended {inner['status']}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "run_s": inner["run_s"], "import_s": inner.get("import_s")}


class Contenders:
    def __init__(self, peers_dir: Path, scratch: Path) -> None:
        self.scratch = scratch
        self.zenml = peer_python(peers_dir, "zenml")
        self.dagster = peer_python(peers_dir, "dagster")
        (scratch / "peer_zenml.py").write_text(ZENML_SCRIPT)
        (scratch / "peer_dagster.py").write_text(DAGSTER_SCRIPT)
        self.zenml_home = scratch / "zenml-config"
        self.dagster_home = scratch / "dagster-home"
        self.dagster_home.mkdir()

    def zenml_env(self) -> dict[str, str]:
        return {
            **os.environ, "ZENML_CONFIG_PATH": str(self.zenml_home), "ZENML_ANALYTICS_OPT_IN": "false",
            "ZENML_LOGGING_VERBOSITY": "ERROR", "ZENML_ENABLE_RICH_TRACEBACK": "false", "AUTO_OPEN_DASHBOARD": "false",
            "ZENML_DEBUG": "false",
        }

    def run(self, contender: str, shape: str, n: int) -> dict:
        if contender.startswith("orcakit-"):
            with tempfile.TemporaryDirectory(prefix="orcakit-peer-", dir=self.scratch) as home:
                argv = [sys.executable, str(HERE / "pipelines_noop.py"), "--shape", "chain" if shape == "chain" else "parallel",
                        "--n", str(n), "--launcher", contender.split("-")[1], "--home", home]
                if contender.endswith("-client"):
                    argv.append("--config=fork_server=client")
                return timed(argv, {**os.environ, "ORCAKIT_HOME": home}, home)
        if contender == "zenml":
            return timed([str(self.zenml), str(self.scratch / "peer_zenml.py"), shape, str(n)], self.zenml_env(), str(self.scratch))
        if contender == "dagster":
            env = {**os.environ, "DAGSTER_HOME": str(self.dagster_home)}
            return timed([str(self.dagster), str(self.scratch / "peer_dagster.py"), shape, str(n)], env, str(self.scratch))
        raise ValueError(contender)

    def warm_up(self, contenders: list[str]) -> None:
        # ZenML creates and migrates its store on first use (not timed: not what a run costs);
        # every contender's byte code and page cache are warm before the first timed run.
        for contender in contenders:
            self.run(contender, "chain", 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--ns", default="1,50", help="step counts (the largest is the goal's chain)")
    parser.add_argument("--json", dest="json_out")
    parser.add_argument("--peers-dir", default=str(Path.home() / ".cache" / "orcakit-bench-peers"))
    parser.add_argument("--contenders", default="orcakit-fork,orcakit-fork-client,orcakit-exec,zenml,dagster")
    parser.add_argument("--shapes", default="chain,fanout")
    args = parser.parse_args(argv)
    peers_dir = Path(args.peers_dir)
    peers_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="orcakit-bench-peers-"))
    try:
        contenders = Contenders(peers_dir, scratch)
        print("warming up (ZenML store, byte code, page cache) ...", file=sys.stderr)
        contenders.warm_up(args.contenders.split(","))
        uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        ns = sorted(int(x) for x in args.ns.split(","))
        configs = [(c, s, n) for n in ns for s in args.shapes.split(",") for c in args.contenders.split(",")]
        samples: dict[str, list[dict]] = {f"{c} {s} {n}": [] for c, s, n in configs}
        started = time.perf_counter()
        for rep in range(args.reps):
            # alternate: every pair once per round, in an order that turns each round
            for contender, shape, n in configs[rep % len(configs):] + configs[: rep % len(configs)]:
                sample = contenders.run(contender, shape, n)
                samples[f"{contender} {shape} {n}"].append(sample)
                print(f"[{time.perf_counter() - started:7.1f}s] round {rep + 1}: {contender:13} {shape:6} n={n:<3} "
                      f"wall {sample['wall_s']:.2f}s cpu {sample['cpu_s']:.2f}s in-process {sample['run_s']:.2f}s", file=sys.stderr)
        uptime_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    med = statistics.median
    table = {key: {m: med(s[m] for s in runs) for m in ("wall_s", "cpu_s", "run_s")} for key, runs in samples.items()}
    lo, hi = ns[0], ns[-1]
    slopes = {}
    if hi > lo:
        for contender in args.contenders.split(","):
            for shape in args.shapes.split(","):
                a, b = table[f"{contender} {shape} {lo}"], table[f"{contender} {shape} {hi}"]
                slopes[f"{contender} {shape}"] = {m: (b[m] - a[m]) / (hi - lo) for m in ("wall_s", "cpu_s", "run_s")}
    print(f"\npeers, n = {args.ns}, {args.reps} alternating rounds, {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"  before: {uptime_before}\n  after:  {uptime_after}")
    print(f"  {'contender':14} {'shape':7} {'n':>3} {'wall (process)':>15} {'CPU (tree)':>11} {'in-process':>11}")
    for key, figures in table.items():
        contender, shape, n = key.split()
        print(f"  {contender:14} {shape:7} {n:>3} {figures['wall_s']:>14.2f}s {figures['cpu_s']:>10.2f}s {figures['run_s']:>10.2f}s")
    if slopes:
        print(f"  per added step (slope {lo} -> {hi}): wall, CPU, in-process")
        for key, r in slopes.items():
            print(f"    {key:22} {r['wall_s'] * 1e3:8.1f} ms {r['cpu_s'] * 1e3:8.1f} ms {r['run_s'] * 1e3:8.1f} ms")
    ratios = {}
    for shape in args.shapes.split(","):
        for peer in ("dagster", "zenml"):
            for mine in ("orcakit-fork", "orcakit-fork-client", "orcakit-exec"):
                a, b = table.get(f"{mine} {shape} {hi}"), table.get(f"{peer} {shape} {hi}")
                if a and b:
                    ratios[f"{mine}/{peer} {shape} {hi}"] = {m: a[m] / b[m] for m in ("wall_s", "cpu_s", "run_s")}
    print(f"  ratios at n = {hi} (orcakit / peer): wall, CPU, in-process")
    for key, r in ratios.items():
        print(f"    {key:34} {r['wall_s']:.2f}x  {r['cpu_s']:.2f}x  {r['run_s']:.2f}x")
    for mine in ("orcakit-fork", "orcakit-fork-client"):
        goal = ratios.get(f"{mine}/dagster chain {hi}")
        if goal:
            met = goal["wall_s"] <= GOAL_FORK_OVER_DAGSTER
            print(f"goal: {mine} / Dagster in-process, chain of {hi}, whole-process wall: {goal['wall_s']:.2f}x "
                  f"(in-process {goal['run_s']:.2f}x; goal <= {GOAL_FORK_OVER_DAGSTER}x): {'met' if met else 'NOT MET'}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({
            "when": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "ns": ns, "reps": args.reps,
            "peers": PEERS, "uptime_before": uptime_before, "uptime_after": uptime_after,
            "medians": table, "per_added_step": slopes, "ratios": ratios, "samples": samples,
        }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
