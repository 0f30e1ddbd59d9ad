"""Issue 17's local-flavor goals, each next to its floor measured in the same run.

    python benchmarks/bench_goals_local.py [--reps 5] [--json OUT]

Every configuration runs once per round, rounds interleaved, medians reported, so that other
work on the (shared) machine hits all of them alike. CPU figures are the whole process tree's
user + system time (``RUSAGE_CHILDREN`` around the client process: the client waits for its fork
server, which waits for every step), which moves far less with the machine's load than wall time.

Goals (issue 17):

1. fork launcher, CPU per added step on a chain (slope between chains of 1 and 50 no-op steps,
   each step reading its predecessor's output): <= 10 ms. Floor: the CPU of forking one child
   that exits at once and waiting for it, from a process that imported the step entrypoint
   (what "every step in its own process" costs at the very least).
2. 50 independent steps x ``sleep 0.2`` at max_parallelism 8: < 2 s (compile -> run end, in the
   client). Floors: the work-conserving bound ceil(50/8) x 0.2 s = 1.4 s, and the wall time of
   50 bare forked children sleeping 0.2 s, 8 at a time, measured here.
3. client + fork server peak RSS, chain of 50: <= 60 MiB together. Given two ways: the sum of
   both processes' peak RSS (VmHWM; pages they share are counted twice) and the sum of their
   PSS at the end of the run (shared pages split between them: what they cost together).

Each goal is measured with the default fork server (``fork_server="fresh"``: a new interpreter)
and with ``fork_server="client"`` (forked from the client).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_local import child_env, fit, run_once, timed  # noqa: E402

GOAL_CPU_PER_STEP_S = 0.010
GOAL_SLEEP_S = 2.0
GOAL_RSS_MIB = 60.0
SERVERS = {"fresh": "", "client": "config:fork_server=client"}

FORK_FLOOR = """
import os, resource, sys
import orcakit.reference.entrypoint  # the fork server's imports: a child inherits them
n = int(sys.argv[1])
def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
before = cpu()
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
print((cpu() - before) / n)
"""

SLEEP_FLOOR = """
import os, sys, time
n, width, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
start, running, left = time.perf_counter(), 0, n
while left or running:
    while left and running < width:
        if os.fork() == 0:
            time.sleep(seconds)
            os._exit(0)
        left, running = left - 1, running + 1
    os.wait()
    running -= 1
print(time.perf_counter() - start)
"""


def python_floor(code: str, *args: object) -> float:
    with tempfile.TemporaryDirectory(prefix="orcakit-bench-") as home:
        proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=child_env("warm", home), cwd=home,
                              capture_output=True, text=True, check=True)
    return float(proc.stdout.strip())


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args(argv)

    for variant in SERVERS.values():  # byte code and page cache warm
        run_once("chain", 2, "fork", "warm", variant=variant)
    load_before, uptime_before = os.getloadavg(), uptime()
    started = time.perf_counter()
    samples: dict[str, list] = {}

    def add(key: str, value) -> None:
        samples.setdefault(key, []).append(value)

    for rep in range(args.reps):
        add("floor fork cpu", python_floor(FORK_FLOOR, 50))
        add("floor sleep wall", python_floor(SLEEP_FLOOR, 50, 8, 0.2))
        for server, variant in SERVERS.items():
            for n in (1, 50):
                add(f"{server} chain {n}", run_once("chain", n, "fork", "warm", variant=variant))
            add(f"{server} sleep", run_once("parallel", 50, "fork", "warm", sleep=0.2, max_parallelism=8, variant=variant))
        print(f"[{time.perf_counter() - started:6.1f}s] round {rep + 1}/{args.reps} done", file=sys.stderr)
    load_after, uptime_after = os.getloadavg(), uptime()

    med = statistics.median
    floor_fork = med(samples["floor fork cpu"])
    floor_sleep = med(samples["floor sleep wall"])
    bound_sleep = 0.2 * -(-50 // 8)
    results: dict[str, dict] = {}
    for server in SERVERS:
        c1, c50, sleep = samples[f"{server} chain 1"], samples[f"{server} chain 50"], samples[f"{server} sleep"]
        cpu_slope = fit([(1, med(s["cpu_s"] for s in c1)), (50, med(s["cpu_s"] for s in c50))])["slope_s"]
        wall_slope = fit([(1, med(s["wall_s"] for s in c1)), (50, med(s["wall_s"] for s in c50))])["slope_s"]
        hwm = med((s["client_hwm_kib"] + s["server_hwm_kib"]) / 1024 for s in c50)
        pss = med((s["client_pss_kib"] + s["server_pss_kib"]) / 1024 for s in c50)
        results[server] = {
            "forked_from_client": all(s["server_forked_from_client"] for s in c50),
            "cpu_per_step_s": cpu_slope,
            "wall_per_step_s": wall_slope,
            "chain50_wall_s": med(s["wall_s"] for s in c50),
            "chain50_cpu_s": med(s["cpu_s"] for s in c50),
            "sleep_run_s": med(s["run_s"] for s in sleep),
            "sleep_wall_s": med(s["wall_s"] for s in sleep),
            "client_hwm_mib": med(s["client_hwm_kib"] / 1024 for s in c50),
            "server_hwm_mib": med(s["server_hwm_kib"] / 1024 for s in c50),
            "hwm_sum_mib": hwm,
            "pss_sum_mib": pss,
        }

    rows = []
    for server, r in results.items():
        rows += [
            (f"fork ({server} server): CPU per added step, chain 1->50", f"{r['cpu_per_step_s'] * 1e3:.1f} ms",
             f"{floor_fork * 1e3:.2f} ms (bare fork+exit+wait)", f"{r['cpu_per_step_s'] / floor_fork:.1f}x",
             "<= 10 ms", r["cpu_per_step_s"] <= GOAL_CPU_PER_STEP_S),
            (f"fork ({server} server): 50 x sleep 0.2, max_parallelism 8 (in-process)", f"{r['sleep_run_s']:.2f} s",
             f"{floor_sleep:.2f} s (bare forks; bound {bound_sleep:.1f} s)", f"{r['sleep_run_s'] / floor_sleep:.2f}x",
             "< 2 s", r["sleep_run_s"] < GOAL_SLEEP_S),
            (f"fork ({server} server): client + server peak RSS (sum of VmHWM), chain 50",
             f"{r['client_hwm_mib']:.0f} + {r['server_hwm_mib']:.0f} = {r['hwm_sum_mib']:.0f} MiB", "", "",
             "<= 60 MiB", r["hwm_sum_mib"] <= GOAL_RSS_MIB),
            (f"fork ({server} server): client + server PSS at run end, chain 50", f"{r['pss_sum_mib']:.0f} MiB", "", "",
             "<= 60 MiB", r["pss_sum_mib"] <= GOAL_RSS_MIB),
        ]
    print(f"\nissue 17, local goals: {args.reps} rounds, {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"  before: {uptime_before}\n  after:  {uptime_after}")
    width = max(len(row[0]) for row in rows)
    for figure, measured, floor_, ratio, goal, met in rows:
        print(f"  {figure:<{width}}  {measured:>22}  floor {floor_:<38} {ratio:>7}  goal {goal:<9} {'met' if met else 'NOT MET'}")
    for server, r in results.items():
        print(f"  ({server} server: 50-step chain {r['chain50_wall_s']:.2f} s wall, {r['chain50_cpu_s']:.2f} CPU-s; "
              f"wall per added step {r['wall_per_step_s'] * 1e3:.1f} ms; forked from client: {r['forked_from_client']})")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({
            "when": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "reps": args.reps,
            "load_before": load_before, "load_after": load_after, "uptime_before": uptime_before, "uptime_after": uptime_after,
            "cpus": os.cpu_count(), "python": sys.version.split()[0],
            "floors": {"fork_cpu_s": floor_fork, "sleep_wall_s": floor_sleep, "sleep_bound_s": bound_sleep},
            "results": results, "samples": samples,
        }, indent=1, default=str))
        print(f"wrote {args.json_out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
