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
    assert "2 checks did not pass: test_run_id_is_stable — failed on RUNID-2 · test_store_opens — error" in text
    for index in (1, 2):
        assert f'href="#failure-{index}"' in page and f'id="failure-{index}"' in page
    # the failures: failed and error checks, with their message and reproducer
    assert ("test_run_id_is_stable — failed on RUNID-2 (verifies RUNID-2) Reproduce: pytest --flavor=local -k "
            "test_run_id_is_stable [RUNID-2] two steps saw different run IDs") in text
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



# -- in a real browser --------------------------------------------------------------------------

#: Appended to a copy of the page (report.html itself has no script): the layout as the browser
#: computed it, written into the DOM that --dump-dom prints.
LAYOUT_PROBE = """<script>
(function () {
  function box(selector) {
    var e = document.querySelector(selector);
    if (!e) return null;
    var r = e.getBoundingClientRect();
    return {top: r.top, bottom: r.bottom, height: r.height};
  }
  var found = {screen: window.innerHeight, width: window.innerWidth, verdict: box(".badge"),
               summary: box("#failure-1 summary"), reproducer: box("#failure-1 .reproduce"),
               evidence: box("#failure-1 .evidence"), first_passed: box("span.o.passed"),
               first_passed_check: box("span.o.passed")};
  var out = document.createElement("pre");
  out.id = "orcakit-layout";
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
})();
</script>"""

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
WINDOW = "1280,800"


def chromium() -> str:
    import os
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("ORCAKIT_REQUIRE_CHROMIUM") == "1":
            pytest.fail("chromium is not installed; scripts/testenv/ensure-chromium.sh installs Debian's package")
        pytest.skip("chromium is not installed (scripts/testenv/ensure-chromium.sh installs it)")
    return found


def in_browser(page: str, folder, name: str) -> dict:
    """Render ``page`` in headless Chromium: a screenshot of the first screen (kept next to the
    page for a human to look at) and the layout of the verdict and the first failure."""
    import subprocess

    browser = chromium()
    html_file = folder / f"{name}.html"
    html_file.write_text(page)
    probe_file = folder / f"{name}-layout.html"
    probe_file.write_text(page.replace("</body>", LAYOUT_PROBE + "</body>"))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={folder / f'{name}-profile'}",
                               f"--window-size={WINDOW}", *args], capture_output=True, text=True, timeout=120)

    shot = folder / f"{name}.png"
    done = run(f"--screenshot={shot}", html_file.as_uri())
    assert shot.is_file() and shot.stat().st_size > 1000, done.stderr[-2000:]
    dumped = run("--dump-dom", probe_file.as_uri())
    match = re.search(r'<pre id="orcakit-layout">(.*?)</pre>', dumped.stdout, re.S)
    assert match, dumped.stdout[-2000:] + dumped.stderr[-2000:]
    return json.loads(html.unescape(match.group(1)))


def a_long_report(failing: bool) -> dict:
    """A report the size of a real one: every requirement of the catalogue, forty passed checks,
    and (when failing) a failure with long evidence and a suite error after them in the list."""
    from orcakit.catalogue import load_catalogue
    from orcakit.conformance.report import requirement_results, verdict

    checks = [{"name": f"test_passed_{i}", "outcome": "passed", "requirements": ["RES-6"], "blamed": []} for i in range(40)]
    if failing:
        evidence = "[RUNID-2] 3 concurrent runs did not get 3 distinct run IDs\n" + "\n".join(
            f"  run_ids[{i}]: 'run'" for i in range(40))
        checks.append({"name": "test_concurrent_runs_get_different_run_ids", "outcome": "failed", "requirements": ["RUNID-2"],
                       "blamed": ["RUNID-2"], "message": evidence,
                       "reproducer": "pytest --flavor=local --conformance-profile=quick --conformance-seed=7 -k "
                                     "test_concurrent_runs_get_different_run_ids"})
        checks.append({"name": "test_store_opens", "outcome": "error", "requirements": ["STORE-1"], "blamed": [],
                       "message": "harness error: the conformance stores are not usable", "reproducer": "pytest -k x"})
    report = a_report(checks=checks, run={"profile": "certify", "certify": True, "seed": 0, "command": "pytest --certify"})
    report["requirements"] = requirement_results(checks, load_catalogue())
    report["summary"] = {o: sum(1 for c in checks if c["outcome"] == o) for o in ("passed", "failed", "unsupported", "disabled", "error")}
    report["verdict"] = verdict(report)
    return report


@pytest.mark.parametrize("failing", [False, True], ids=["certifying", "failing"])
def test_verdict_and_first_failure_are_in_the_first_screen_of_a_real_browser(failing, tmp_path):
    """report.html in headless Chromium at 1280x800: the verdict, and for a failing bundle the
    first failure's summary, reproducer and the start of its evidence, are visible without
    scrolling, and above every passed check."""
    layout = in_browser(render_html(a_long_report(failing)), tmp_path, "failing" if failing else "certifying")
    screen = layout["screen"]
    assert screen > 300, layout
    assert layout["verdict"] and 0 <= layout["verdict"]["top"] and layout["verdict"]["bottom"] <= screen, layout
    if not failing:
        assert layout["summary"] is None
        return
    for part in ("summary", "reproducer"):
        assert layout[part]["bottom"] <= screen, (part, layout)
    evidence = layout["evidence"]
    assert evidence["top"] + 40 <= screen, ("the evidence does not start on the first screen", layout)
    assert layout["first_passed"]["top"] > layout["reproducer"]["bottom"], ("a passed check comes before the failure", layout)
