"""The conformance suite as a product: the plugin, its outcomes, reports and coverage."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from orcakit.catalogue import load_catalogue
from orcakit.conformance.report import verify_bundle

PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]


def run_pytest(cwd: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "ORCAKIT_HOME": str(cwd / ".home")}
    return subprocess.run([*PYTEST, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


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


def test_plugin_stays_out_of_the_way_without_flavor(tmp_path):
    (tmp_path / "test_mine.py").write_text("def test_ok():\n    assert 1 + 1 == 2\n")
    result = run_pytest(tmp_path, "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout and "check_" not in result.stdout
    help_text = run_pytest(tmp_path, "--help").stdout
    assert "--flavor=NAME" in help_text and "--conformance-profile" in help_text


def test_unknown_flavor_is_a_usage_error_naming_the_registered_ones(tmp_path):
    result = run_pytest(tmp_path, "--flavor=nope")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "no orchestrator flavor named 'nope'" in result.stderr and "local" in result.stderr


def test_certify_refuses_disabled_requirements(tmp_path):
    result = run_pytest(tmp_path, "--flavor=local", "--certify", "--disable-requirement=RES-6")
    assert result.returncode == 4 and "not allowed" in result.stderr


def test_unknown_requirement_id_is_refused(tmp_path):
    result = run_pytest(tmp_path, "--flavor=local", "--requirement=NOPE-1")
    assert result.returncode == 4 and "NOPE-1" in result.stderr


def test_outcomes_disabled_unsupported_and_passed_are_reported(tmp_path):
    report_dir = tmp_path / "bundle"
    result = run_pytest(
        tmp_path, "--flavor=local", "--requirement=RES-6", "--requirement=SCHED-1", "--requirement=SCHED-3",
        "--disable-requirement=RES-6", f"--report-dir={report_dir}",
    )
    assert result.returncode == 0, result.stdout[-3000:]
    report = json.loads((report_dir / "report.json").read_text())
    outcome = {row["id"]: row["outcome"] for row in report["requirements"]}
    assert outcome["RES-6"] == "disabled"
    assert outcome["SCHED-1"] == "unsupported"  # the local flavor declares no schedules
    assert outcome["SCHED-3"] == "passed"
    assert report["verdict"]["certified"] is False


def test_environment_faults_are_errors_not_failures(tmp_path):
    report_dir = tmp_path / "bundle"
    result = run_pytest(
        tmp_path, "--flavor=local", "--requirement=RUNID-2", "--conformance-run-store=sqlite:////proc/orcakit/none.db",
        f"--report-dir={report_dir}",
    )
    assert result.returncode != 0
    report = json.loads((report_dir / "report.json").read_text())
    outcomes = {check["outcome"] for check in report["checks"]}
    assert outcomes == {"error"}, report["checks"]


@pytest.fixture(scope="module")
def quick_bundle(tmp_path_factory):
    """One quick run of the whole suite against the reference local flavor."""
    cwd = tmp_path_factory.mktemp("empty")
    bundle = cwd / "bundle"
    result = run_pytest(cwd, "--flavor=local", "--conformance-profile=quick", f"--report-dir={bundle}")
    return result, bundle


def test_reference_local_flavor_passes_the_whole_suite(quick_bundle):
    result, bundle = quick_bundle
    assert result.returncode == 0, result.stdout[-6000:]
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


def test_failures_print_a_one_line_reproducer(tmp_path):
    result = run_pytest(tmp_path, "--flavor=orcakit.conformance.mutants:FixedRunId", "--requirement=RUNID-2",
                        "--conformance-profile=quick", "--conformance-seed=7")
    assert result.returncode == 1, result.stdout[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.strip().startswith("[RUNID-2]") and "pytest --flavor" in line]
    assert lines and "--conformance-seed=7" in lines[0] and " -k " in lines[0]
