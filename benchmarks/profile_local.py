"""Where the local flavor's per-step time goes: a cross-process timeline of one run.

    python benchmarks/profile_local.py [--shape chain] [--n 50] [--launcher fork] [--cprofile] [--keep DIR]

Runs ``pipelines_noop.py`` once with ``benchmarks/profiling/sitecustomize.py`` loaded into every
process (it wraps runtime functions; no runtime file is changed), then prints, per step, how long
each segment of the hand-off took, as medians over the steps:

client launch -> child forked -> run_step begins -> (attach, start_attempt, import, load inputs,
function, materialize, artifact put, finish_attempt, finalize_run) -> os._exit -> the client sees
the exit -> the scheduler settles it -> the next launch.

With ``--cprofile`` each step child's ``run_step`` also runs under cProfile; the merged top
functions (cumulative) are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYCACHE = Path(tempfile.gettempdir()) / "orcakit-bench-pycache"


def load(trace: Path) -> list[dict]:
    events = []
    for path in trace.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            events.append(json.loads(line))
    return sorted(events, key=lambda e: e["t0"])


def med(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:8.2f} ms" if values else "       -   "


def analyse(events: list[dict], launcher: str) -> None:
    by_pid: dict[int, list[dict]] = defaultdict(list)
    for e in events:
        by_pid[e["pid"]].append(e)
    client_pid = next(e["pid"] for e in events if e["ev"] == "client.run_snapshot")
    client = by_pid[client_pid]
    first = min(e["t0"] for e in events)

    def one(evs, name, step=None):
        for e in evs:
            if e["ev"] == name and (step is None or e.get("step") == step):
                return e
        return None

    # step name -> child pid (the process whose run_step ran it)
    children = {}
    for pid, evs in by_pid.items():
        run = one(evs, "runner.run_step")
        if run is not None:
            children[run["step"]] = pid
    launch_ev = "forkserver.launch" if launcher == "fork" else "exec_step"
    launches = {e["step"]: e for e in client if e["ev"] == launch_ev}
    exits_seen = {e["pid_child"]: e for e in client if e["ev"] == "handle.exit_seen"}
    settles = {e["step"]: e for e in client if e["ev"] == "scheduler._settle"}
    order = sorted(launches, key=lambda s: launches[s]["t0"])

    segments: dict[str, list[float]] = defaultdict(list)
    inner_names = ["runner.__init__", "runner.attach", "store.__init__", "store.attach_step", "store.get_or_create_run", "store.start_attempt",
                   "import_source", "runner.load_output", "materialize", "artifacts.put", "store.finish_attempt",
                   "store.finalize_run"]
    for i, step in enumerate(order):
        pid = children.get(step)
        if pid is None:
            continue
        evs = by_pid[pid]
        launch = launches[step]
        run = one(evs, "runner.run_step")
        start = one(evs, "os.fork.child") or one(evs, "process.start")
        exit_ = one(evs, "os._exit")
        seen = exits_seen.get(pid)
        settle = settles.get(step)
        segments["client launch call"].append(launch["t1"] - launch["t0"])
        if start is not None:
            segments["launch -> child process running"].append(start["t1"] - launch["t0"])
            segments["child running -> run_step"].append(run["t0"] - start["t1"])
        segments["run_step (total)"].append(run["t1"] - run["t0"])
        for name in inner_names:
            total = sum(e["t1"] - e["t0"] for e in evs if e["ev"] == name)
            if any(e["ev"] == name for e in evs):
                segments[f"  {name}"].append(total)
        if exit_ is not None:
            segments["run_step end -> os._exit"].append(exit_["t0"] - run["t1"])
            if seen is not None:
                segments["os._exit -> client sees exit"].append(seen["t0"] - exit_["t0"])
        if seen is not None and settle is not None:
            segments["exit seen -> _settle begins (thread+queue)"].append(settle["t0"] - seen["t0"])
        if settle is not None:
            segments["_settle (store read)"].append(settle["t1"] - settle["t0"])
            if i + 1 < len(order):
                segments["_settle end -> next launch"].append(launches[order[i + 1]]["t0"] - settle["t1"])
        if i + 1 < len(order):
            segments["launch -> next launch"].append(launches[order[i + 1]]["t0"] - launch["t0"])

    print(f"per-step segments (median over {len(order)} steps, {launcher}):")
    for name, values in segments.items():
        print(f"  {name:48} {med(values)}   (sum {sum(values) * 1000:8.1f} ms)")

    # CPU: each event carries its process's CPU seconds so far ("cpu", at its end; "cpu0", at
    # its start). A forked child's CPU count starts from 0 at the fork.
    cpu: dict[str, list[float]] = defaultdict(list)
    for step in order:
        evs = by_pid.get(children.get(step), [])
        run = one(evs, "runner.run_step")
        exit_ = one(evs, "os._exit")
        if run is None or exit_ is None or "cpu0" not in run:
            continue
        cpu["step child: before run_step (fork faults, set-up)"].append(run["cpu0"])
        cpu["step child: run_step"].append(run["cpu"] - run["cpu0"])
        cpu["step child: total before os._exit"].append(exit_["cpu"])
    # Client and server: CPU between their first and last per-step events, per step (their
    # start-up and imports are left out).
    per_step_events = {"forkserver.launch", "exec_step", "scheduler._settle", "handle.exit_seen", "os.fork.parent"}
    servers = [pid for pid, evs in by_pid.items() if one(evs, "os.fork.parent") and pid != client_pid]
    for label, pid in [("client", client_pid)] + [("fork server", pid) for pid in servers]:
        evs = [e for e in by_pid[pid] if e["ev"] in per_step_events and "cpu" in e]
        if len(evs) >= 2 and len(order) > 1:
            cpu[f"{label}: CPU between its first and last step event / steps"].append(
                (evs[-1]["cpu"] - evs[0]["cpu"]) / (len(order) - 1)
            )
    if cpu:
        print("\nCPU per step (median; process CPU seconds, user+system, as seen by the process):")
        for name, values in cpu.items():
            print(f"  {name:60} {med(values)}")

    print("\nclient process (ms since its start):")
    for e in client:
        if e["ev"] in ("process.start", "client.run_snapshot", "store.__init__", "store.create_placeholder_run",
                       "orchestrator.submit_pipeline", "forkserver.__init__", "scheduler.run", "store.finalize_run",
                       "forkserver.close", "store.set_run_status", "store.get_run"):
            print(f"  {e['ev']:36} {1000 * (e['t0'] - first):9.1f} -> {1000 * (e['t1'] - first):9.1f}  ({1000 * (e['t1'] - e['t0']):8.1f})")
    if launcher == "fork":
        server = [pid for pid, evs in by_pid.items() if one(evs, "os.fork.parent") is not None]
        for pid in server:
            evs = by_pid[pid]
            start = one(evs, "process.start") or one(evs, "os.fork.child")
            init = one(evs, "runner.__init__")
            if init is None:
                continue  # the client itself (client_fork experiment)
            print(f"\nfork server {pid}: started {1000 * (start['t1'] - first):.1f} ms, runner ready {1000 * (init['t1'] - first):.1f} ms "
                  f"(init {1000 * (init['t1'] - init['t0']):.1f} ms)")
            forks = [e["t1"] - e["t0"] for e in evs if e["ev"] == "os.fork.parent"]
            print(f"  os.fork() in the server: median {med(forks)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="chain")
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--launcher", default="fork")
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--keep", help="keep the trace and run folder here")
    parser.add_argument("--bytecode", choices=["warm", "cold"], default="warm")
    parser.add_argument("--python", default=sys.executable, help="interpreter (e.g. of a venv with a patched runtime)")
    parser.add_argument("--config", action="append", default=[], help="KEY=VALUE local-flavor config")
    parser.add_argument("--experiment", default="", help="see profiling/sitecustomize.py, e.g. warm_sql,gc_freeze,fast_exit")
    args = parser.parse_args(argv)

    home = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="orcakit-prof-"))
    trace = home / "trace"
    shutil.rmtree(home, ignore_errors=True)
    trace.mkdir(parents=True)
    env = dict(os.environ)
    if args.bytecode == "warm":
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE / "profiling"), *filter(None, [env.get("PYTHONPATH")])])
    env["ORCAKIT_BENCH_TRACE"] = str(trace)
    env["ORCAKIT_HOME"] = str(home / "run")
    if args.cprofile:
        env["ORCAKIT_BENCH_CPROFILE"] = "1"
    if args.experiment:
        env["ORCAKIT_BENCH_EXPERIMENT"] = args.experiment
    argv_ = [args.python, str(HERE / "pipelines_noop.py"), "--shape", args.shape, "--n", str(args.n),
             "--launcher", args.launcher, "--home", str(home / "run"), "--sleep", str(args.sleep),
             *(f"--config={item}" for item in args.config)]
    proc = subprocess.run(argv_, env=env, cwd=str(home), capture_output=True, text=True)
    print(proc.stdout.strip())
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        return 1
    analyse(load(trace), args.launcher)
    if args.cprofile:
        files = [str(p) for p in trace.glob("step-*.prof")]
        if files:
            stats = pstats.Stats(*files)
            print(f"\ncProfile of run_step, merged over {len(files)} step processes (cumulative):")
            stats.sort_stats("cumulative").print_stats(35)
            stats.sort_stats("tottime").print_stats(20)
    if not args.keep:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
