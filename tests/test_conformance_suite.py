"""The conformance suite as a product: the plugin, its outcomes, reports and coverage.

The plugin is exercised through pytest's own ``pytester``: each run is a pytest subprocess (the
suite starts real step processes) in the test's own folder, with the test's ``ORCAKIT_HOME`` and
``PYTHONPATH`` (set by conftest.py) in its environment.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from orcakit.catalogue import load_catalogue
from orcakit.conformance.report import verify_bundle

pytest_plugins = ["pytester"]

#: seconds one run of the suite may take
TIMEOUT = 900


def run_pytest(pytester: pytest.Pytester, *args: str, timeout: float = TIMEOUT) -> pytest.RunResult:
    """``pytest -p no:cacheprovider ARGS`` in a subprocess, in ``pytester.path``."""
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=timeout)


def tail(result: pytest.RunResult, chars: int) -> str:
    return result.stdout.str()[-chars:]


def suite_requirements() -> dict[str, set[str]]:
    """requirement ID -> check names, read from the installed suite's markers."""
    import orcakit.conformance.suite as suite

    found: dict[str, set[str]] = {}
    for module_info in pkgutil.iter_modules(suite.__path__):
        if not module_info.name.startswith("check_"):
            continue
        module = importlib.import_module(f"orcakit.conformance.suite.{module_info.name}")
        for name, value in vars(module).items():
            if name.startswith("test_"):
                for mark in getattr(value, "pytestmark", []):
                    if mark.name == "requirement":
                        for requirement in mark.args:
                            found.setdefault(requirement, set()).add(name)
    return found


def test_every_must_requirement_has_a_check():
    covered = suite_requirements()
    catalogue = load_catalogue()
    missing = sorted(set(catalogue.must_ids()) - set(covered))
    assert not missing, f"MUST requirements without a conformance check: {missing}"
    unknown = sorted(set(covered) - set(catalogue.ids()))
    assert not unknown, f"checks cite requirement IDs the catalogue does not have: {unknown}"


def test_plugin_stays_out_of_the_way_without_flavor(pytester):
    pytester.makepyfile(test_mine="def test_ok():\n    assert 1 + 1 == 2\n")
    result = run_pytest(pytester, "-q")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*1 passed*"])
    assert "check_" not in result.stdout.str()
    help_text = run_pytest(pytester, "--help")
    help_text.stdout.fnmatch_lines(["*--flavor=NAME*", "*--conformance-profile*"])


def test_unknown_flavor_is_a_usage_error_naming_the_registered_ones(pytester):
    result = run_pytest(pytester, "--flavor=nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines(["*no orchestrator flavor named 'nope'*"])
    assert "local" in result.stderr.str()


def test_certify_refuses_disabled_requirements(pytester):
    result = run_pytest(pytester, "--flavor=local", "--certify", "--disable-requirement=RES-6")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*not allowed*"])


def test_unknown_requirement_id_is_a_usage_error_and_nothing_else(pytester):
    bundle = pytester.path / "bundle"
    result = run_pytest(pytester, "--flavor=local", "--requirement=NOPE-9", f"--report-dir={bundle}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*NOPE-9*"])
    output = result.stdout.str() + result.stderr.str()
    # No verdict on a selection that does not exist: no summary, no bundle.
    assert "not certified" not in output and "orcakit conformance" not in output, output
    assert not (bundle / "report.json").exists()


#: A plugin that breaks the suite's own code (not the flavor's): the RUNID-3 check compares a
#: run ID's length with a limit that is now None, a TypeError raised in the check's frame.
INJECT_SUITE_BUG = """
import orcakit.conformance.suite.check_run_id as check

check.MAX_RUN_ID_LENGTH = None
"""


def test_a_check_that_crashes_is_a_suite_error_everywhere(pytester):
    """An unexpected exception in a check is outcome *error* naming the suite — in the terminal,
    report.json, JUnit and report.html — never a failure of the (correct) flavor."""
    pytester.makepyfile(inject_suite_bug=INJECT_SUITE_BUG)
    bundle = pytester.path / "bundle"
    result = run_pytest(pytester, "-p", "inject_suite_bug", "--flavor=local", "--requirement=RUNID-3",
                        "--conformance-profile=quick", "--conformance-seed=5", f"--report-dir={bundle}")
    terminal = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, tail(result, 4000)
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors", outcomes.get("error")) == 1 and "failed" not in outcomes, outcomes
    assert "FAILED" not in terminal and "ERROR" in terminal and "suite error" in terminal, tail(result, 4000)
    assert "requirements error: RUNID-3" in terminal and "requirements failed" not in terminal
    assert "[error, not a verdict on RUNID-3] pytest --flavor=local" in terminal
    # Hypothesis' falsifying example shows the flavor under test by name, not its deleted stores
    assert "FlavorUnderTest(" not in terminal and "orcakit-conformance-" not in terminal and "reproduce_failure" not in terminal
    report = json.loads((bundle / "report.json").read_text())
    (check,) = report["checks"]
    assert check["outcome"] == "error" and check["blamed"] == [], check
    assert "suite error" in check["message"] and "TypeError" in check["message"] and "check_run_id.py" in check["message"]
    assert {row["id"]: row["outcome"] for row in report["requirements"]}["RUNID-3"] == "error"
    junit = ET.parse(bundle / "junit.xml").getroot()
    (case,) = junit.iter("testcase")
    assert case.find("failure") is None and case.find("error") is not None
    assert "outcome error" in case.find("error").get("message")
    suite = next(junit.iter("testsuite"))
    assert (suite.get("failures"), suite.get("errors")) == ("0", "1")
    html = (bundle / "report.html").read_text()
    assert "test_run_id_fits_the_limit_whatever_the_names</code> — error" in html and "suite error" in html
    certifies, problems = verify_bundle(bundle)
    assert problems == [] and not certifies


def test_a_run_id_bug_is_blamed_on_runid_2_and_nothing_else(pytester):
    """FixedRunId: concurrent submissions of one snapshot leave run records without a run ID
    (their steps attached to the one shared run); the checks handle that (no crash) and blame
    RUNID-2 only."""
    bundle = pytester.path / "bundle"
    result = run_pytest(pytester, "--flavor=orcakit.conformance.mutants:FixedRunId", "--requirement=RUNID-2",
                        "--requirement=RUNID-3", "--conformance-profile=quick", "--conformance-seed=11",
                        f"--report-dir={bundle}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, tail(result, 4000)
    report = json.loads((bundle / "report.json").read_text())
    assert not [c["name"] for c in report["checks"] if c["outcome"] == "error"], report["checks"]
    outcome = {row["id"]: row["outcome"] for row in report["requirements"]}
    assert [rid for rid, o in outcome.items() if o in ("failed", "error")] == ["RUNID-2"], outcome
    assert outcome["RUNID-3"] == "passed"
    assert "TypeError" not in result.stdout.str()


def test_outcomes_disabled_unsupported_and_passed_are_reported(pytester):
    report_dir = pytester.path / "bundle"
    result = run_pytest(
        pytester, "--flavor=local", "--requirement=RES-6", "--requirement=SCHED-1", "--requirement=SCHED-3",
        "--disable-requirement=RES-6", f"--report-dir={report_dir}",
    )
    assert result.ret == 0, tail(result, 3000)
    assert not {"failed", "errors"} & set(result.parseoutcomes())
    report = json.loads((report_dir / "report.json").read_text())
    outcome = {row["id"]: row["outcome"] for row in report["requirements"]}
    assert outcome["RES-6"] == "disabled"
    assert outcome["SCHED-1"] == "unsupported"  # the local flavor declares no schedules
    assert outcome["SCHED-3"] == "passed"
    assert report["verdict"]["certified"] is False


def test_environment_faults_are_errors_not_failures(pytester):
    report_dir = pytester.path / "bundle"
    result = run_pytest(
        pytester, "--flavor=local", "--requirement=RUNID-2", "--conformance-run-store=sqlite:////proc/orcakit/none.db",
        f"--report-dir={report_dir}",
    )
    assert result.ret != 0
    report = json.loads((report_dir / "report.json").read_text())
    outcomes = {check["outcome"] for check in report["checks"]}
    assert outcomes == {"error"}, report["checks"]


#: the one quick run of the whole suite, shared by the tests that read it (``pytester`` is
#: per test, so the first test that asks runs it)
_QUICK_RUN: list[tuple[pytest.RunResult, Path]] = []


@pytest.fixture
def quick_bundle(pytester, tmp_path_factory) -> tuple[pytest.RunResult, Path]:
    """One quick run of the whole suite against the reference local flavor."""
    if not _QUICK_RUN:
        bundle = tmp_path_factory.mktemp("quick") / "bundle"
        result = run_pytest(pytester, "--flavor=local", "--conformance-profile=quick", f"--report-dir={bundle}")
        _QUICK_RUN.append((result, bundle))
    return _QUICK_RUN[0]


def test_reference_local_flavor_passes_the_whole_suite(quick_bundle):
    result, bundle = quick_bundle
    assert result.ret == 0, tail(result, 6000)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) > 0 and not {"failed", "errors"} & set(outcomes), outcomes
    report = json.loads((bundle / "report.json").read_text())
    bad = {row["id"]: row["outcome"] for row in report["requirements"] if row["outcome"] in ("failed", "error", "untested") and row["level"] == "MUST"}
    assert not bad, bad
    assert report["flavor"]["name"] == "local" and report["run"]["profile"] == "quick"


def test_bundle_is_complete_consistent_and_tamper_evident(quick_bundle, tmp_path):
    _, bundle = quick_bundle
    certifies, problems = verify_bundle(bundle)
    assert problems == [] and certifies is False  # consistent, but a quick run never certifies
    html = (bundle / "report.html").read_text()
    assert "<script" not in html and "orcakit conformance" in html
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for name in ("junit.xml", "report.html"):
        (tampered / name).write_text((bundle / name).read_text())
    report = json.loads((bundle / "report.json").read_text())
    report["checks"][0]["outcome"] = "failed"
    (tampered / "report.json").write_text(json.dumps(report))
    certifies, problems = verify_bundle(tampered)
    assert not certifies and problems


def test_failures_print_a_one_line_reproducer(pytester):
    result = run_pytest(pytester, "--flavor=orcakit.conformance.mutants:FixedRunId", "--requirement=RUNID-2",
                        "--conformance-profile=quick", "--conformance-seed=7")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, tail(result, 3000)
    assert result.parseoutcomes().get("failed", 0) >= 1
    lines = [line for line in result.outlines if line.strip().startswith("[RUNID-2]") and "pytest --flavor" in line]
    assert lines and "--conformance-seed=7" in lines[0] and " -k " in lines[0]


def test_reproducer_carries_every_option(pytester, tmp_path):
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    artifacts = str(tmp_path / "artifacts")
    result = run_pytest(pytester, "--flavor=orcakit.conformance.mutants:FixedRunId", "--requirement=RUNID-2",
                        "--conformance-profile=quick", "--conformance-seed=7", f"--conformance-run-store={store}",
                        f"--conformance-artifact-store={artifacts}", "--conformance-timeout=120",
                        "--flavor-option=launcher=exec")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, tail(result, 3000)
    line = next(line for line in result.outlines if line.strip().startswith("[RUNID-2]") and "pytest --flavor" in line)
    for option in ("--conformance-profile=quick", "--conformance-seed=7", f"--conformance-run-store={store}",
                   f"--conformance-artifact-store={artifacts}", "--conformance-timeout=120", "--flavor-option=launcher=exec"):
        assert option in line, (option, line)


PASSWORD = "pw-d0d9b1e3c7"


def test_no_secret_in_terminal_junit_or_report_when_the_store_is_unreachable(pytester):
    """A run-store URL with a password that cannot be reached: every check errors, and neither
    the terminal, JUnit, report.json nor report.html shows the password (tracebacks show frame
    arguments, drivers put it in their connection strings)."""
    bundle = pytester.path / "bundle"
    result = run_pytest(pytester, "--flavor=local", "--requirement=RUNID-2", "--conformance-profile=quick",
                        f"--conformance-run-store=postgresql+psycopg://orcakit:{PASSWORD}@127.0.0.1:1/none",
                        f"--report-dir={bundle}")
    assert result.ret != 0
    report = json.loads((bundle / "report.json").read_text())
    assert {check["outcome"] for check in report["checks"]} == {"error"}
    outputs = {"terminal": result.stdout.str() + result.stderr.str(),
               **{name: (bundle / name).read_text() for name in ("junit.xml", "report.json", "report.html")}}
    assert "connection" in outputs["junit.xml"].lower()  # the failure is there, explained
    leaked = [where for where, text in outputs.items() if PASSWORD in text]
    assert not leaked, leaked
    assert "orcakit:********@127.0.0.1" in outputs["terminal"]


def test_a_failure_blames_its_requirements_and_leaves_the_others_inconclusive(pytester):
    """RunIdPerStep breaks RUNID-1 and, since each step then attaches to a run of its own,
    STORE-1. The check of RUNID-1, STORE-1 and ENV-1 blames exactly those two (a multi-failure
    keeps every ID) and leaves ENV-1 inconclusive: it never got to verify it."""
    bundle = pytester.path / "bundle"
    result = run_pytest(pytester, "--flavor=orcakit.conformance.mutants:RunIdPerStep", "--conformance-profile=quick",
                        "--conformance-seed=3", "-k", "test_parallel_first_steps_converge_on_one_run", f"--report-dir={bundle}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, tail(result, 3000)
    report = json.loads((bundle / "report.json").read_text())
    (check,) = report["checks"]
    assert sorted(check["blamed"]) == ["RUNID-1", "STORE-1"] and check["requirements"] == ["RUNID-1", "STORE-1", "ENV-1"]
    outcome = {row["id"]: row["outcome"] for row in report["requirements"]}
    assert (outcome["RUNID-1"], outcome["STORE-1"], outcome["ENV-1"]) == ("failed", "failed", "inconclusive")
    html = (bundle / "report.html").read_text()
    assert 'href="#failure-1"' in html and "on STORE-1, RUNID-1" in html


def test_what_a_failing_check_verified_passes_and_its_evidence_stands_alone(pytester, tmp_path):
    """LogsStepEnvironment breaks SEC-1 only: the check compared the environment first (ENV-2,
    ENV-3 passed, not inconclusive), and its evidence names the variable, where it leaked and an
    excerpt — with no path into the session's temporary stores, no store repr and no Hypothesis
    advice to edit a test the flavor author does not own."""
    bundle = pytester.path / "bundle"
    result = run_pytest(pytester, "--flavor=orcakit.conformance.mutants:LogsStepEnvironment", "--conformance-profile=quick",
                        "-k", "test_secrets_are_not_written_in_plain_text", f"--report-dir={bundle}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, tail(result, 4000)
    report = json.loads((bundle / "report.json").read_text())
    (check,) = report["checks"]
    assert check["blamed"] == ["SEC-1"] and sorted(check["verified"]) == ["ENV-2", "ENV-3"], check
    outcome = {row["id"]: row["outcome"] for row in report["requirements"]}
    assert (outcome["SEC-1"], outcome["ENV-2"], outcome["ENV-3"]) == ("failed", "passed", "passed")
    message = check["message"]
    assert "CK_API_TOKEN" in message and "step log" in message and "excerpt" in message, message
    for text in (message, result.stdout.str(), (bundle / "junit.xml").read_text()):
        assert "orcakit-conformance-" not in text and "reproduce_failure" not in text and "FlavorUnderTest(" not in text
