"""Checks side by side (``pytest --flavor=NAME -n N``): the same report as a sequential run, and
a flavor's declared run limit (``Capabilities.max_concurrent_runs``) never exceeded.

Each end-to-end test runs the suite as subprocesses in empty folders (as a user would), the
sequential and the concurrent session side by side; their verdicts compare outcomes, never
durations, so they do not depend on the machine's load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from orcakit import Capabilities
from orcakit.conformance.concurrency import RunSlots, default_workers

pytest.importorskip("xdist", reason="checks side by side need pytest-xdist (pip install 'orcakit[conformance]')")


def suite(folder: Path, *args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    folder.mkdir(parents=True)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--report-dir={folder / 'bundle'}", *args]
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "ORCAKIT_HOME": str(folder / "home"), **(env or {})})
    path = folder / "bundle" / "report.json"
    assert path.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    return done, json.loads(path.read_text())


def comparable(report: dict) -> dict:
    """Everything a report says about the flavor, without the durations (which vary run to run)."""
    checks = [{key: value for key, value in check.items() if key != "duration"} for check in report["checks"]]
    return {"checks": checks, "requirements": report["requirements"], "verdict": report["verdict"],
            "summary": report["summary"], "seed": report["run"]["seed"]}


def test_checks_side_by_side_give_the_report_of_a_sequential_run(tmp_path: Path) -> None:
    """On a mutant, with a seed: the same verdicts, blamed requirements, messages (with
    Hypothesis' falsifying examples), reproducers and checks, in the same order."""
    # ShellQuoting's bug stays inside each run (a mutant with a constant run ID would also
    # collide with the runs of whichever checks share its worker's stores)
    args = ["--flavor=orcakit.conformance.mutants:ShellQuoting", "--conformance-profile=quick", "--conformance-seed=17",
            "--requirement=ENV-3", "--requirement=RUNID-2", "--requirement=ORDER-1"]
    with ThreadPoolExecutor(2) as pool:
        sequential = pool.submit(suite, tmp_path / "sequential", *args)
        concurrent = pool.submit(suite, tmp_path / "concurrent", *args, "-n", "3")
        (done_s, report_s), (done_c, report_c) = sequential.result(), concurrent.result()
    assert done_s.returncode == done_c.returncode == pytest.ExitCode.TESTS_FAILED, done_c.stdout[-3000:]
    assert "bringing up nodes" in done_c.stdout, done_c.stdout[-2000:]  # xdist did run the checks
    seen_s, seen_c = comparable(report_s), comparable(report_c)
    differ = [(check_s["name"], key, check_s[key], check_c.get(key)) for check_s, check_c in zip(seen_s["checks"], seen_c["checks"])
              for key in check_s if check_s[key] != check_c.get(key)]
    assert not differ, differ
    assert seen_c == seen_s
    failed = [check for check in report_s["checks"] if check["outcome"] == "failed"]
    # what was compared is a failure with its reproducer and Hypothesis' example (the hostile
    # environment values it found, in the message)
    assert failed and all(check["reproducer"] and "--conformance-seed=17" in check["reproducer"] and check["message"]
                          for check in failed), failed


#: A flavor that declares how many runs its backend takes at once, and logs when each run
#: starts and ends (in the client: from submission to the end of waiting for it).
LIMITED_FLAVOR = textwrap.dedent('''
    import fcntl
    import os
    import time

    from orcakit import Capabilities, SubmissionResult
    from orcakit.reference.flavors.local import LocalFlavor
    from orcakit.reference.flavors.local.orchestrator import LocalOrchestrator


    def log(event, run):
        with open(os.environ["RUN_LOG"], "a") as out:
            fcntl.flock(out, fcntl.LOCK_EX)
            out.write(f"{time.time()} {event} {run}\\n")


    class LoggingOrchestrator(LocalOrchestrator):
        def submit_pipeline(self, snapshot, *args, **kwargs):
            key = f"{os.getpid()}-{id(snapshot)}"
            log("start", key)
            result = super().submit_pipeline(snapshot, *args, **kwargs)
            if result is None or result.wait_for_completion is None:
                log("end", key)
                return result

            def wait():
                try:
                    return result.wait_for_completion()
                finally:
                    log("end", key)

            return SubmissionResult(wait_for_completion=wait)


    class OneAtATime(LocalFlavor):
        name = "one-at-a-time"
        implementation_source = "limited_flavor:LoggingOrchestrator"
        capabilities = LocalFlavor.capabilities.model_copy(update={"max_concurrent_runs": 1})


    class Unlimited(LocalFlavor):
        name = "unlimited"
        implementation_source = "limited_flavor:LoggingOrchestrator"
''')


def most_in_flight(log: Path) -> int:
    events = sorted((float(stamp), 1 if event == "start" else -1) for stamp, event, _ in
                    (line.split() for line in log.read_text().splitlines()))
    assert sum(delta for _, delta in events) == 0, "every run that started ended"
    level = peak = 0
    for _, delta in events:
        level += delta
        peak = max(peak, level)
    return peak


def test_a_declared_run_limit_is_never_exceeded_by_checks_side_by_side(tmp_path: Path) -> None:
    """max_concurrent_runs=1 with 2 workers and RUNID-2's runs submitted at once: one run at a
    time, and the suite still passes; the same flavor without the limit overlaps its runs (so
    the log would show an excess)."""
    package = tmp_path / "flavors"
    package.mkdir()
    (package / "limited_flavor.py").write_text(LIMITED_FLAVOR)
    pythonpath = os.pathsep.join([str(package), os.environ.get("PYTHONPATH", "")])
    args = ["--conformance-profile=quick", "--conformance-seed=3", "--requirement=RUNID-2", "--requirement=RUNID-1", "-n", "2"]
    logs = {name: tmp_path / f"{name}.log" for name in ("OneAtATime", "Unlimited")}
    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(suite, tmp_path / name, f"--flavor=limited_flavor:{name}", *args,
                                     env={"PYTHONPATH": pythonpath, "RUN_LOG": str(logs[name])})
                   for name in logs}
        results = {name: future.result() for name, future in futures.items()}
    for name, (done, report) in results.items():
        assert done.returncode == 0, f"{name}: {done.stdout[-3000:]}"
    assert results["OneAtATime"][1]["flavor"]["capabilities"]["max_concurrent_runs"] == 1
    assert most_in_flight(logs["OneAtATime"]) == 1
    assert most_in_flight(logs["Unlimited"]) >= 2


def test_run_slots_bound_threads_and_processes_together(tmp_path: Path) -> None:
    slots = RunSlots(tmp_path / "slots", 2)
    level, peak, lock = [0], [0], threading.Lock()

    def one_run() -> None:
        with slots.hold(poll=0.01):
            with lock:
                level[0] += 1
                peak[0] = max(peak[0], level[0])
            time.sleep(0.05)
            with lock:
                level[0] -= 1

    # another process holds one slot all along: the threads here share the other one
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f'''
        import sys, time
        from pathlib import Path
        from orcakit.conformance.concurrency import RunSlots
        with RunSlots(Path({str(tmp_path / "slots")!r}), 2).hold():
            print("held", flush=True)
            sys.stdin.read()
    ''')], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert slots.in_use() == 1
        threads = [threading.Thread(target=one_run) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert peak[0] == 1
    assert slots.in_use() == 0


def test_certify_runs_checks_side_by_side_within_the_flavor_limit() -> None:
    assert default_workers(None) >= 2
    assert default_workers(1) == 1
    assert default_workers(3) == min(3, default_workers(None))
    assert Capabilities().max_concurrent_runs is None
    with pytest.raises(ValueError):
        Capabilities(max_concurrent_runs=0)
