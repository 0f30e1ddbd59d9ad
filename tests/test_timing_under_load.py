"""The suite's timing judgements do not depend on the machine's load.

Every check that times a flavor (RETRY-2's waits, ORDER-4's overlap, ORDER-5's bound, FAIL-2's
and CLEAN-2's stops) calibrates against the backend as measured in the same run
(``orcakit.conformance.timing``). Here those checks run against the correct ``local`` flavor and
against each timing mutant while a CPU hog keeps every core busy (a busy loop per core, at normal
priority): the verdicts must be the unloaded ones — the correct flavor passes every timing check,
each mutant fails exactly its timing requirements (tests/test_mutants.py holds the same verdicts
on an idle machine, and the hog is the only difference).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

TIMING = ("RETRY-2", "ORDER-4", "ORDER-5", "FAIL-2", "CLEAN-2")
#: The timing mutants (the correct ``local`` flavor besides): each must fail what it violates
#: (conformance/mutants.py, as an unloaded run finds), and nothing else.
TIMING_MUTANTS = ("BackoffZeroIsConstant", "BackoffExponentOffByOne", "IgnoresMaxParallelism", "IgnoresFailFast",
                  "AbandonsStoppedSteps")


def expected_failures() -> dict[str, set[str]]:
    from orcakit.conformance import mutants

    return {"local": set(), **{f"orcakit.conformance.mutants:{name}": set(getattr(mutants, name).violates)
                               for name in TIMING_MUTANTS}}


CASES = expected_failures()
HOG = "while True: pass"


def timing_checks(flavor: str, folder: Path) -> tuple[set[str], list[str], str]:
    folder.mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--flavor={flavor}", "--conformance-profile=quick",
         "--conformance-seed=20261203", f"--report-dir={folder / 'bundle'}", *[f"--requirement={r}" for r in TIMING]],
        cwd=folder, env={**os.environ, "ORCAKIT_HOME": str(folder / "home")}, capture_output=True, text=True, timeout=900,
    )
    report = json.loads((folder / "bundle" / "report.json").read_text())
    failed = {row["id"] for row in report["requirements"] if row["outcome"] == "failed"}
    errors = [check["name"] for check in report["checks"] if check["outcome"] == "error"]
    return failed, errors, done.stdout[-4000:]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.timeout(1800)
def test_timing_checks_give_the_unloaded_verdicts_beside_a_cpu_hog(tmp_path: Path) -> None:
    cores = os.cpu_count() or 1
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(cores)]
    started = time.monotonic()
    try:
        time.sleep(1.0)  # the hogs are spinning before the first check starts
        with ThreadPoolExecutor(3) as pool:
            futures = {flavor: pool.submit(timing_checks, flavor, tmp_path / str(i)) for i, flavor in enumerate(CASES)}
            seen = {flavor: future.result() for flavor, future in futures.items()}
        load = os.getloadavg()[0]
        busy = sum(cpu_seconds(hog.pid) for hog in hogs)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    wall = time.monotonic() - started
    print(f"timing checks beside {cores} busy loops: {wall:.0f} s, load {load:.1f}, hogs used {busy:.0f} CPU-s")
    wrong = {flavor: (failed, errors) for flavor, (failed, errors, _) in seen.items()
             if failed != CASES[flavor] or errors}
    assert not wrong, "\n".join(f"{flavor}: failed {sorted(failed)} (expected {sorted(CASES[flavor])}), errors {errors}\n"
                                f"{seen[flavor][2]}" for flavor, (failed, errors) in wrong.items())
    # the hogs really competed all along (each spun, at normal priority, until killed); how
    # much CPU they got depends on what else runs, so only that they ran is asserted
    assert busy > 1.0 and all(hog.returncode == -9 for hog in hogs), (busy, [hog.returncode for hog in hogs])
