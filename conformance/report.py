"""The certification bundle: ``report.json`` (schema-versioned), ``junit.xml`` (written by
pytest's junitxml) and a self-contained ``report.html``; and :func:`verify_bundle`, which checks
that a bundle is complete and consistent and recomputes whether it certifies."""

from __future__ import annotations

import hashlib
import html
import json
import os
import platform
import socket
import sys
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

from orcakit.redaction import REDACTED, redact  # noqa: F401 (re-exported for the checks)

SCHEMA_VERSION = 1
OUTCOMES = ("passed", "failed", "unsupported", "disabled", "error")


def _aggregate(outcomes: list[str]) -> str:
    if not outcomes:
        return "untested"
    for worst in ("failed", "error", "disabled"):
        if worst in outcomes:
            return worst
    return "passed" if "passed" in outcomes else "unsupported"


def requirement_results(checks: list[dict], catalogue) -> list[dict]:
    rows = []
    for requirement in catalogue.requirements:
        mine = [check for check in checks if requirement.id in check["requirements"]]
        rows.append(
            {
                "id": requirement.id,
                "level": requirement.level,
                "title": requirement.title,
                "outcome": _aggregate([check["outcome"] for check in mine]),
                "checks": sorted({check["name"] for check in mine}),
            }
        )
    return rows


def verdict(report: dict) -> dict:
    """Whether a report certifies, with every reason it does not."""
    reasons = []
    if not report["run"]["certify"]:
        reasons.append("not a --certify run")
    for row in report["requirements"]:
        if row["level"] != "MUST":
            continue
        if row["outcome"] in ("failed", "error", "disabled", "untested"):
            reasons.append(f"{row['id']} {row['outcome']}")
    return {"certified": not reasons, "reasons": reasons}


def build_report(state, checks: list[dict], config) -> dict:
    import orcakit
    from orcakit.catalogue import load_catalogue

    catalogue = load_catalogue()
    fut = state.fut
    counts = {outcome: sum(1 for check in checks if check["outcome"] == outcome) for outcome in OUTCOMES}
    report = {
        "schema_version": SCHEMA_VERSION,
        "suite": {"name": "orcakit-conformance", "version": orcakit.__version__},
        "spec_version": catalogue.spec_version,
        "flavor": {
            "name": fut.name,
            "reference": fut.reference,
            "version": fut.flavor.version,
            "run_id_env_var": fut.flavor.run_id_env_var,
            "capabilities": fut.capabilities.manifest(),
            "config": redact(fut.config),
        },
        "run": {
            "profile": state.profile,
            "certify": state.certify,
            "seed": state.seed,
            "derandomized": state.certify,
            "command": redact(" ".join(state.command)),
            "finished_at": datetime.now(timezone.utc).isoformat(),
            "duration": round(sum(check["duration"] for check in checks), 3),
            "disabled": sorted(state.disabled),
            "selected": sorted(state.selected),
        },
        "environment": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "hostname": socket.gethostname(),
            "cpus": os.cpu_count(),
            "run_store": redact(fut.run_store_url),
            "artifact_store": redact(fut.artifact_store_uri),
        },
        "summary": counts,
        "checks": [redact(check) for check in checks],
        "requirements": requirement_results(checks, catalogue),
    }
    report["verdict"] = verdict(report)
    return report


def summarize(report: dict) -> list[str]:
    flavor = report["flavor"]
    counts = ", ".join(f"{n} {outcome}" for outcome, n in report["summary"].items() if n)
    lines = [f"flavor {flavor['name']} {flavor['version']} | spec {report['spec_version']} | profile {report['run']['profile']} | seed {report['run']['seed']}", f"checks: {counts or 'none'}"]
    by_outcome: dict[str, list[str]] = {}
    for row in report["requirements"]:
        by_outcome.setdefault(row["outcome"], []).append(row["id"])
    for outcome in ("failed", "error", "disabled", "untested", "unsupported"):
        if by_outcome.get(outcome):
            lines.append(f"requirements {outcome}: {' '.join(by_outcome[outcome])}")
    lines.append(f"requirements passed: {len(by_outcome.get('passed', []))} of {len(report['requirements'])}")
    v = report["verdict"]
    lines.append("CERTIFIED" if v["certified"] else f"not certified: {'; '.join(v['reasons'][:8])}")
    return lines


def _digest(report: dict) -> str:
    return hashlib.sha256(json.dumps(report["checks"], sort_keys=True).encode()).hexdigest()


def write_bundle(report: dict, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    (directory / "report.html").write_text(render_html(report))


_COLORS = {"passed": "#1a7f37", "failed": "#cf222e", "error": "#9a6700", "unsupported": "#57606a", "disabled": "#8250df", "untested": "#cf222e"}


def render_html(report: dict) -> str:
    e = html.escape
    flavor, run = report["flavor"], report["run"]
    v = report["verdict"]
    badge = ("CERTIFIED", "#1a7f37") if v["certified"] else ("NOT CERTIFIED", "#cf222e")

    def outcome_cell(outcome: str) -> str:
        return f'<td><span class="o" style="background:{_COLORS.get(outcome, "#57606a")}">{e(outcome)}</span></td>'

    rows = "".join(
        f"<tr><td><code>{e(r['id'])}</code></td><td>{e(r['level'])}</td><td>{e(r['title'])}</td>{outcome_cell(r['outcome'])}<td>{e(', '.join(r['checks']))}</td></tr>"
        for r in report["requirements"]
    )
    failures = "".join(
        f"<details open><summary><code>{e(c['name'])}</code> — {e(c['outcome'])} [{e(', '.join(c['requirements']))}]</summary>"
        f"<pre>{e(c.get('message') or '')}</pre><p>Reproduce: <code>{e(c.get('reproducer') or '')}</code></p></details>"
        for c in report["checks"]
        if c["outcome"] in ("failed", "error")
    )
    caps = "".join(f"<tr><td>{e(k)}</td><td><code>{e(json.dumps(val))}</code></td></tr>" for k, val in flavor["capabilities"].items())
    config = e(json.dumps(flavor["config"], indent=2, sort_keys=True))
    counts = " · ".join(f"{n} {e(o)}" for o, n in report["summary"].items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>orcakit conformance — {e(flavor['name'])}</title>
<meta name="orcakit-report-digest" content="{_digest(report)}">
<style>
body{{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1f2328}}
h1{{margin:0 0 .3rem}} .badge{{display:inline-block;padding:.3rem .8rem;border-radius:6px;color:#fff;font-weight:700}}
table{{border-collapse:collapse;width:100%;margin:1rem 0}} td,th{{border-bottom:1px solid #d0d7de;padding:.35rem .5rem;text-align:left;vertical-align:top}}
.o{{color:#fff;border-radius:4px;padding:.1rem .45rem;font-size:12px}} pre{{background:#f6f8fa;padding:.7rem;overflow:auto;white-space:pre-wrap}}
.meta td:first-child{{color:#57606a;width:14rem}}
</style></head><body>
<h1>orcakit conformance: <code>{e(flavor['name'])}</code> {e(flavor['version'])}</h1>
<p><span class="badge" style="background:{badge[1]}">{badge[0]}</span> {e('; '.join(v['reasons'][:10]))}</p>
<table class="meta">
<tr><td>suite / spec</td><td>{e(report['suite']['version'])} / spec {e(report['spec_version'])} (report schema {report['schema_version']})</td></tr>
<tr><td>profile · seed</td><td>{e(run['profile'])} · {e(str(run['seed']))}{' · certify' if run['certify'] else ''}</td></tr>
<tr><td>checks</td><td>{counts}</td></tr>
<tr><td>command</td><td><code>{e(run['command'])}</code></td></tr>
<tr><td>environment</td><td>{e(report['environment']['platform'])}, Python {e(report['environment']['python'])}, {report['environment']['cpus']} CPUs</td></tr>
<tr><td>run-ID variable</td><td><code>{e(flavor['run_id_env_var'])}</code></td></tr>
</table>
<h2>Requirements</h2><table><tr><th>ID</th><th>level</th><th>requirement</th><th>outcome</th><th>checks</th></tr>{rows}</table>
<h2>Failures</h2>{failures or '<p>None.</p>'}
<h2>Capabilities</h2><table>{caps}</table>
<h2>Configuration (redacted)</h2><pre>{config}</pre>
</body></html>
"""


def verify_bundle(directory: Path) -> tuple[bool, list[str]]:
    """``(certifies, problems)``. A bundle certifies only if it is complete, consistent and its
    recomputed verdict says so."""
    from orcakit.catalogue import load_catalogue

    problems: list[str] = []
    paths = {name: directory / name for name in ("report.json", "junit.xml", "report.html")}
    for name, path in paths.items():
        if not path.is_file():
            problems.append(f"{name} is missing")
    if problems:
        return False, problems
    try:
        report = json.loads(paths["report.json"].read_text())
    except ValueError as exc:
        return False, [f"report.json is not JSON: {exc}"]
    if report.get("schema_version") != SCHEMA_VERSION:
        return False, [f"report.json schema_version {report.get('schema_version')!r} is not {SCHEMA_VERSION}"]
    for key in ("suite", "spec_version", "flavor", "run", "environment", "summary", "checks", "requirements", "verdict"):
        if key not in report:
            problems.append(f"report.json has no {key!r}")
    if problems:
        return False, problems
    catalogue = load_catalogue()
    if report["spec_version"] != catalogue.spec_version:
        problems.append(f"report is for spec {report['spec_version']}, this orcakit knows spec {catalogue.spec_version}")
    reported = {row["id"] for row in report["requirements"]}
    missing = [r.id for r in catalogue.requirements if r.level == "MUST" and r.id not in reported]
    if missing:
        problems.append(f"report lacks MUST requirements {missing}")
    recomputed = requirement_results(report["checks"], catalogue)
    if [(r["id"], r["outcome"]) for r in recomputed] != [(r["id"], r["outcome"]) for r in report["requirements"]]:
        problems.append("per-requirement outcomes do not follow from the checks")
    counts = {o: sum(1 for c in report["checks"] if c["outcome"] == o) for o in OUTCOMES}
    if counts != report["summary"]:
        problems.append(f"summary {report['summary']} does not match the checks {counts}")
    try:
        root = ET.parse(paths["junit.xml"]).getroot()
    except ET.ParseError as exc:
        problems.append(f"junit.xml does not parse: {exc}")
    else:
        cases = root.iter("testcase")
        junit_names = {case.get("name") for case in cases}
        report_names = {c["name"] for c in report["checks"]}
        if junit_names != report_names:
            problems.append(f"junit.xml and report.json list different checks ({len(junit_names)} vs {len(report_names)})")
        bad_junit = {case.get("name") for case in root.iter("testcase") if case.find("failure") is not None or case.find("error") is not None}
        bad_report = {c["name"] for c in report["checks"] if c["outcome"] in ("failed", "error")}
        if bad_junit != bad_report:
            problems.append("junit.xml and report.json disagree on which checks failed")
    if f'content="{_digest(report)}"' not in paths["report.html"].read_text():
        problems.append("report.html was not rendered from this report.json")
    recomputed_verdict = verdict({**report, "requirements": recomputed})
    if recomputed_verdict != report["verdict"]:
        problems.append("the stated verdict does not follow from the results")
    certifies = not problems and recomputed_verdict["certified"]
    return certifies, problems
