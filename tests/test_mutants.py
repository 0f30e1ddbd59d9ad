"""The suite's sensitivity: every deliberately broken flavor is caught on the requirement IDs
its bug violates. Prints the mutation score."""

from __future__ import annotations

import json

import pytest

from orcakit.conformance.mutants import ALL

# each suite run is a pytest subprocess (the suite starts real step processes) in the test's own
# folder, with the test's ORCAKIT_HOME and PYTHONPATH (set by conftest.py)
pytest_plugins = ["pytester"]

CAUGHT: dict[str, bool] = {}


@pytest.mark.parametrize("mutant", ALL, ids=[m.__name__ for m in ALL])
def test_suite_catches_mutant(mutant, pytester: pytest.Pytester):
    expected = sorted(mutant.violates)
    bundle = pytester.path / "bundle"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider",
        f"--flavor=orcakit.conformance.mutants:{mutant.__name__}", "--conformance-profile=quick",
        "--conformance-seed=20261121", f"--report-dir={bundle}", *[f"--requirement={r}" for r in expected],
        timeout=600,
    )
    report = json.loads((bundle / "report.json").read_text())
    outcome = {row["id"]: row["outcome"] for row in report["requirements"]}
    missed = [r for r in expected if outcome[r] != "failed"]
    CAUGHT[mutant.__name__] = not missed and result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.ret == pytest.ExitCode.TESTS_FAILED, (
        f"the suite passed against mutant {mutant.__name__} ({mutant.bug})\n{result.stdout.str()[-3000:]}"
    )
    assert not missed, f"mutant {mutant.__name__} ({mutant.bug}) was not caught on {missed}: {outcome}"
    errors = [c["name"] for c in report["checks"] if c["outcome"] == "error"]
    assert not errors, f"harness errors instead of verdicts: {errors}"


def test_mutation_score(request):
    """Runs last in this module: the share of mutants caught on their IDs (all must be)."""
    if len(CAUGHT) < len(ALL):
        pytest.skip("run together with test_suite_catches_mutant to get the score")
    score = sum(CAUGHT.values()) / len(ALL)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    line = f"orcakit mutation score: {sum(CAUGHT.values())}/{len(ALL)} mutants caught on their requirement IDs ({score:.0%})"
    if reporter is not None:
        reporter.write_line("\n" + line)
    print(line)
    assert score == 1.0, {name: caught for name, caught in CAUGHT.items() if not caught}
