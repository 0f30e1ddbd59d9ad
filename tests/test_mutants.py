"""The suite's sensitivity: every deliberately broken flavor is caught on exactly the
requirement IDs its bug violates, under each of several seeds.

A mutant caught under one seed and missed under another would mean a bug the suite finds only
"sometimes"; the hostile cases are fixed examples so that cannot happen, and this self-test
proves it. Each (mutant, seed) pair is one suite run in its own pytest process (the suite starts
real step processes) running the checks of the mutant's IDs; the runs go two at a time (they
mostly wait on sleeping steps), in one pool shared by the parametrized tests below.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from orcakit.conformance.mutants import ALL

SEEDS = (20261121, 7, 31337)
WORKERS = 2
PAIRS = [(mutant, seed) for mutant in ALL for seed in SEEDS]


@dataclass(frozen=True)
class Verdict:
    code: int
    failed: frozenset[str]
    errors: tuple[str, ...]
    seconds: float
    output: str


def run_suite(mutant, seed: int, folder: Path) -> Verdict:
    folder.mkdir(parents=True)
    bundle = folder / "bundle"
    env = {**os.environ, "ORCAKIT_HOME": str(folder / "home")}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--flavor=orcakit.conformance.mutants:{mutant.__name__}",
         "--conformance-profile=quick", f"--conformance-seed={seed}", f"--report-dir={bundle}",
         *[f"--requirement={r}" for r in sorted(mutant.violates)]],
        cwd=folder, env=env, capture_output=True, text=True, timeout=900,
    )
    seconds = time.monotonic() - started
    try:
        report = json.loads((bundle / "report.json").read_text())
    except (OSError, ValueError):
        return Verdict(done.returncode, frozenset(), ("no report.json",), seconds, done.stdout[-4000:] + done.stderr[-2000:])
    failed = frozenset(row["id"] for row in report["requirements"] if row["outcome"] == "failed")
    errors = tuple(check["name"] for check in report["checks"] if check["outcome"] == "error")
    return Verdict(done.returncode, failed, errors, seconds, done.stdout[-4000:])


@pytest.fixture(scope="module")
def verdicts(request, tmp_path_factory) -> dict[tuple[str, int], Verdict]:
    """Runs every (mutant, seed) pair this session selected, two at a time."""
    wanted = [item.callspec.params["pair"] for item in request.session.items
              if item.module is request.module and hasattr(item, "callspec") and "pair" in item.callspec.params]
    root = tmp_path_factory.mktemp("mutants")
    started = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {(m.__name__, s): pool.submit(run_suite, m, s, root / f"{m.__name__}-{s}") for m, s in wanted}
        results = {key: future.result() for key, future in futures.items()}
    SELF_TEST["seconds"] = time.monotonic() - started
    return results


SELF_TEST: dict[str, float] = {}


@pytest.mark.parametrize("pair", PAIRS, ids=[f"{m.__name__}-seed{s}" for m, s in PAIRS])
def test_suite_catches_mutant_on_exactly_its_requirements(pair, verdicts):
    mutant, seed = pair
    verdict = verdicts[(mutant.__name__, seed)]
    assert verdict.code == pytest.ExitCode.TESTS_FAILED, (
        f"the suite did not fail against mutant {mutant.__name__} ({mutant.bug}) under seed {seed}\n{verdict.output}"
    )
    assert not verdict.errors, f"harness errors instead of verdicts: {verdict.errors}\n{verdict.output}"
    assert verdict.failed == mutant.violates, (
        f"mutant {mutant.__name__} ({mutant.bug}) under seed {seed}: the suite blamed {sorted(verdict.failed)}, "
        f"the bug violates {sorted(mutant.violates)}\n{verdict.output}"
    )


def test_mutants_are_distinct_and_cite_known_requirements():
    from orcakit.catalogue import load_catalogue

    known = set(load_catalogue().ids())
    assert len({m.name for m in ALL}) == len(ALL)
    for mutant in ALL:
        assert mutant.violates and mutant.violates <= known, (mutant.__name__, mutant.violates)
        assert mutant.bug


def test_mutation_score(request, verdicts):
    """Runs last in this module: the share of (mutant, seed) runs caught on exactly their IDs."""
    if len(verdicts) < len(PAIRS):
        pytest.skip("run together with every test_suite_catches_mutant case to get the score")
    by_name = {m.__name__: m for m in ALL}
    caught = {key: v.code == pytest.ExitCode.TESTS_FAILED and not v.errors and v.failed == by_name[key[0]].violates
              for key, v in verdicts.items()}
    line = (f"orcakit mutation score: {sum(caught.values())}/{len(caught)} runs ({len(ALL)} mutants x {len(SEEDS)} seeds) "
            f"caught on exactly their requirement IDs; self-test took {SELF_TEST.get('seconds', 0):.0f} s "
            f"with {WORKERS} workers")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("\n" + line)
    print(line)
    assert all(caught.values()), sorted(key for key, ok in caught.items() if not ok)
