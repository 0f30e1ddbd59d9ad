"""The certification bundle's ``report.html``: rendered from the Jinja2 template shipped with
``orcakit.conformance``, self-contained, complete and escaped."""

from __future__ import annotations

import html
import json
import re
from importlib.resources import files

import pytest

from orcakit.conformance.report import render_html

HOSTILE = "<script>alert('pwned')</script><img src=x onerror=alert(1)> & \"quoted\""


def a_report(**changes) -> dict:
    report = {
        "schema_version": 2,
        "suite": {"name": "orcakit-conformance", "version": "0.1.0"},
        "spec_version": "1.0",
        "flavor": {
            "name": "local",
            "reference": "local",
            "version": "0.1.0",
            "run_id_env_var": "ORCAKIT_RUN_ID",
            "capabilities": {"cpu": True, "gpu_vendors": ["nvidia"], "max_parallelism": 8},
            "config": {"namespace": "ml", "token": "***"},
        },
        "run": {"profile": "certify", "certify": True, "seed": 20261121, "command": "pytest --flavor=local --certify"},
        "environment": {"python": "3.11.7", "platform": "Linux-6.1-x86_64", "hostname": "h", "cpus": 2},
        "summary": {"passed": 1, "failed": 1, "unsupported": 1, "disabled": 0, "error": 1},
        "checks": [
            {"name": "test_run_id_is_stable", "outcome": "failed", "requirements": ["RUNID-2"], "blamed": ["RUNID-2"],
             "message": "[RUNID-2] two steps saw different run IDs", "reproducer": "pytest --flavor=local -k test_run_id_is_stable"},
            {"name": "test_store_opens", "outcome": "error", "requirements": ["RUNID-2", "RES-6"], "blamed": [], "message": None},
            {"name": "test_cpu_is_enforced", "outcome": "passed", "requirements": ["RES-6"], "blamed": []},
            {"name": "test_schedule", "outcome": "unsupported", "requirements": ["SCHED-1"], "blamed": []},
        ],
        "requirements": [
            {"id": "RUNID-2", "level": "MUST", "title": "one run ID per run", "outcome": "failed",
             "checks": ["test_run_id_is_stable", "test_store_opens"]},
            {"id": "RES-6", "level": "MUST", "title": "CPU requests are enforced", "outcome": "error",
             "checks": ["test_cpu_is_enforced", "test_store_opens"]},
            {"id": "SCHED-1", "level": "SHOULD", "title": "schedules", "outcome": "unsupported", "checks": ["test_schedule"]},
        ],
        "verdict": {"certified": False, "reasons": ["RUNID-2 failed", "RES-6 error"]},
    }
    report.update(changes)
    return report


def visible_text(page: str) -> str:
    """What a browser shows: tags and the style sheet removed, entities decoded, white space folded."""
    page = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def test_the_template_ships_as_package_data():
    templates = files("orcakit.conformance") / "templates"
    assert (templates / "report.html.j2").is_file()
    assert (templates / "report.css").is_file()


def test_report_shows_verdict_requirements_failures_capabilities_and_config():
    report = a_report()
    page = render_html(report)
    text = visible_text(page)
    assert "orcakit conformance: local 0.1.0" in text
    assert "NOT CERTIFIED RUNID-2 failed; RES-6 error" in text
    assert "0.1.0 / spec 1.0 (report schema 2)" in text
    assert "certify · 20261121 · certify" in text
    assert "1 passed · 1 failed · 1 unsupported · 0 disabled · 1 error" in text
    assert "Linux-6.1-x86_64, Python 3.11.7, 2 CPUs" in text
    assert "ORCAKIT_RUN_ID" in text and "pytest --flavor=local --certify" in text
    assert "RUNID-2 MUST one run ID per run failed test_run_id_is_stable, test_store_opens" in text
    assert "SCHED-1 SHOULD schedules unsupported test_schedule" in text
    # the verdict links to every failure
    assert "2 checks did not pass: test_run_id_is_stable — failed on RUNID-2 test_store_opens — error" in text
    for index in (1, 2):
        assert f'href="#failure-{index}"' in page and f'id="failure-{index}"' in page
    # the failures: failed and error checks, with their message and reproducer
    assert "test_run_id_is_stable — failed on RUNID-2 (verifies RUNID-2) [RUNID-2] two steps saw different run IDs" in text
    assert "Reproduce: pytest --flavor=local -k test_run_id_is_stable" in text
    assert "test_store_opens — error (verifies RUNID-2, RES-6)" in text
    assert "test_cpu_is_enforced —" not in text
    assert 'cpu true gpu_vendors ["nvidia"] max_parallelism 8' in text
    assert json.dumps(report["flavor"]["config"], indent=2, sort_keys=True) in html.unescape(page)


def test_report_certified_and_without_failures():
    report = a_report(
        checks=[{"name": "test_cpu_is_enforced", "outcome": "passed", "requirements": ["RES-6"], "blamed": []}],
        verdict={"certified": True, "reasons": []},
    )
    text = visible_text(render_html(report))
    assert "CERTIFIED" in text and "NOT CERTIFIED" not in text
    assert "Failures None." in text


def test_untested_should_is_explained_not_flagged():
    report = a_report()
    report["requirements"].append({"id": "RUNID-4", "level": "SHOULD", "title": "from the backend", "outcome": "untested", "checks": []})
    report["requirements"].append({"id": "ENV-1", "level": "MUST", "title": "the variable", "outcome": "untested", "checks": []})
    page = render_html(report)
    text = visible_text(page)
    assert "RUNID-4 SHOULD from the backend not required not exercised in this run; a SHOULD or MAY requirement does not block certification" in text
    assert 'class="o not-required"' in page
    assert "ENV-1 MUST the variable untested" in text and 'class="o untested"' in page


def test_a_failure_blames_only_its_requirement():
    """A check of RUNID-1 and ENV-1 that failed on ENV-1 proves ENV-1 broken and leaves RUNID-1
    inconclusive (not failed, not passed), whatever other checks say of RUNID-1."""
    from orcakit.catalogue import load_catalogue
    from orcakit.conformance.report import requirement_results

    checks = [
        {"name": "a", "outcome": "failed", "requirements": ["RUNID-1", "ENV-1"], "blamed": ["ENV-1"]},
        {"name": "b", "outcome": "passed", "requirements": ["RUNID-1"], "blamed": []},
        {"name": "c", "outcome": "failed", "requirements": ["RUNID-2", "STORE-1"], "blamed": ["RUNID-2", "STORE-1"]},
        # a hang: any check may find CAP-2 broken, whatever its marker lists
        {"name": "d", "outcome": "failed", "requirements": ["ENV-4"], "blamed": ["CAP-2"]},
    ]
    outcome = {row["id"]: row["outcome"] for row in requirement_results(checks, load_catalogue())}
    assert (outcome["ENV-1"], outcome["RUNID-1"]) == ("failed", "inconclusive")
    assert (outcome["RUNID-2"], outcome["STORE-1"]) == ("failed", "failed")  # a multi-failure keeps every ID
    assert outcome["RES-2"] == "untested"
    assert (outcome["CAP-2"], outcome["ENV-4"]) == ("failed", "inconclusive")


def test_report_is_self_contained_and_carries_the_digest():
    page = render_html(a_report())
    assert "<style>" in page and ".badge" in page  # the style sheet is inlined
    assert "<link" not in page and "<script" not in page and "src=" not in page
    assert re.search(r'<meta name="orcakit-report-digest" content="[0-9a-f]{64}">', page)


@pytest.mark.parametrize("where", ["message", "reproducer", "check name", "title", "config", "capability", "reason", "flavor", "outcome"])
def test_hostile_values_are_escaped(where):
    report = a_report()
    failed = report["checks"][0]
    if where == "message":
        failed["message"] = HOSTILE
    elif where == "reproducer":
        failed["reproducer"] = HOSTILE
    elif where == "check name":
        failed["name"] = HOSTILE
    elif where == "title":
        report["requirements"][0]["title"] = HOSTILE
    elif where == "config":
        report["flavor"]["config"] = {"token": HOSTILE}
    elif where == "capability":
        report["flavor"]["capabilities"] = {HOSTILE: [HOSTILE]}
    elif where == "reason":
        report["verdict"]["reasons"] = [HOSTILE]
    elif where == "flavor":
        report["flavor"]["name"] = HOSTILE
    else:  # an outcome ends up in a class attribute too
        report["requirements"][0]["outcome"] = HOSTILE
    page = render_html(report)
    assert "<script" not in page and "<img" not in page and 'class="o <' not in page
    assert "&lt;script&gt;" in page  # shown, as text
    assert "alert('pwned')" in visible_text(page)
