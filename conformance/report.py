"""The certification bundle: ``report.json`` (schema-versioned), ``junit.xml`` (written by
pytest's junitxml) and a self-contained ``report.html`` (rendered from the Jinja2 template
``templates/report.html.j2``); and :func:`verify_bundle`, which checks that a bundle is
complete and consistent and recomputes whether it certifies."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import socket
import sys
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

from orcakit.redaction import REDACTED, redact  # noqa: F401 (re-exported for the checks)

#: 2: checks carry ``blamed`` (the IDs a failure proved broken); requirements can be inconclusive;
#: checks may carry ``verified`` (the IDs a failing check compared and found right first).
SCHEMA_VERSION = 2
OUTCOMES = ("passed", "failed", "unsupported", "disabled", "error")
#: Worst first: a requirement takes the worst outcome of its checks.
SEVERITY = ("failed", "error", "disabled", "inconclusive", "passed", "unsupported")


def outcome_for(check: dict, requirement: str) -> str:
    """What one check says about one requirement. A requirement the check proved broken failed
    (even when the check's outcome is *error* for another reason); one it compared and found
    right before failing on another passed; one it never got to is inconclusive."""
    if requirement in check.get("blamed", ()):
        return "failed"
    if check["outcome"] in ("failed", "error") and requirement in check.get("verified", ()):
        return "passed"
    if check["outcome"] == "failed":
        return "inconclusive"
    return check["outcome"]


def _aggregate(outcomes: list[str]) -> str:
    if not outcomes:
        return "untested"
    return min(outcomes, key=SEVERITY.index)


def requirement_results(checks: list[dict], catalogue) -> list[dict]:
    rows = []
    for requirement in catalogue.requirements:
        mine = [check for check in checks if requirement.id in check["requirements"] or requirement.id in check["blamed"]]
        rows.append(
            {
                "id": requirement.id,
                "level": requirement.level,
                "title": requirement.title,
                "outcome": _aggregate([outcome_for(check, requirement.id) for check in mine]),
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
        if row["outcome"] in ("failed", "error", "disabled", "inconclusive", "untested"):
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
            "version": fut.version,
            "run_id_env_var": fut.run_id_env_var,
            "driver": fut.kind,
            # where the driver's reading of the flavor is a judgement (empty for orcakit flavors)
            "mapping_notes": fut.mapping_notes(),
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
    # Additive (issue 16): what the framework between the author and the orchestrator did,
    # with evidence; never part of the verdict, never counted as passed.
    report["framework_findings"] = group_framework_findings(getattr(state, "framework_findings", []))
    report["verdict"] = verdict(report)
    return report


def group_framework_findings(findings: list[dict]) -> list[dict]:
    """Framework findings of a session, one entry per (framework, stage, what), with the checks
    that met it, how often, the requirements it touches and up to five distinct pieces of evidence."""
    groups: dict[tuple, dict] = {}
    for finding in findings:
        key = (finding.get("framework", ""), finding.get("stage", ""), finding.get("what", ""))
        group = groups.setdefault(key, {"framework": key[0], "stage": key[1], "what": key[2], "occurrences": 0,
                                        "requirements": [], "checks": [], "evidence": []})
        group["occurrences"] += 1
        for requirement in str(finding.get("requirements", "")).split(","):
            if requirement and requirement not in group["requirements"]:
                group["requirements"].append(requirement)
        if finding.get("check") and finding["check"] not in group["checks"]:
            group["checks"].append(finding["check"])
        evidence = redact(finding.get("evidence", {}))
        if evidence not in group["evidence"] and len(group["evidence"]) < 5:
            group["evidence"].append(evidence)
    return sorted(groups.values(), key=lambda g: (g["framework"], g["stage"], g["what"]))


def summarize(report: dict) -> list[str]:
    flavor = report["flavor"]
    counts = ", ".join(f"{n} {outcome}" for outcome, n in report["summary"].items() if n)
    lines = [f"flavor {flavor['name']} {flavor['version']} | spec {report['spec_version']} | profile {report['run']['profile']} | seed {report['run']['seed']}", f"checks: {counts or 'none'}"]
    by_outcome: dict[str, list[str]] = {}
    for row in report["requirements"]:
        by_outcome.setdefault(row["outcome"], []).append(row["id"])
    for outcome in ("failed", "error", "disabled", "inconclusive", "untested", "unsupported"):
        if by_outcome.get(outcome):
            lines.append(f"requirements {outcome}: {' '.join(by_outcome[outcome])}")
    lines.append(f"requirements passed: {len(by_outcome.get('passed', []))} of {len(report['requirements'])}")
    v = report["verdict"]
    lines.append("CERTIFIED" if v["certified"] else f"not certified: {'; '.join(v['reasons'][:8])}")
    findings = report.get("framework_findings") or []
    if findings:
        lines.append(f"framework findings ({len(findings)}; not the orchestrator's, not part of the verdict):")
        for finding in findings:
            example = finding["evidence"][0] if finding["evidence"] else {}
            lines.append(f"  {finding['framework']} [{finding['stage']}] ({', '.join(finding['requirements'])}, "
                         f"{finding['occurrences']}x): {finding['what']}; e.g. {json.dumps(example, ensure_ascii=False)}")
    return lines


def _digest(report: dict) -> str:
    return hashlib.sha256(json.dumps(report["checks"], sort_keys=True).encode()).hexdigest()


def write_bundle(report: dict, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    (directory / "report.html").write_text(render_html(report))


@functools.cache
def _templates() -> "jinja2.Environment":
    """The report templates, shipped as package data in ``orcakit/conformance/templates``
    (Jinja2 is imported here: reading and verifying a bundle does not need it)."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("orcakit.conformance", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    environment.filters["json"] = json.dumps
    return environment


#: What a requirement outcome means, for readers of report.html.
EXPLANATIONS = {
    "passed": "every check of this requirement passed",
    "failed": "a check proved this requirement broken (see the failures above)",
    "error": "a check could not reach a verdict because the harness or environment failed",
    "disabled": "turned off with --disable-requirement",
    "inconclusive": "a check of this requirement stopped at a failure of another requirement before it could verify this one",
    "unsupported": "the flavor does not declare the capability this requirement is about",
    "untested": "no check of this requirement ran (a MUST that is untested blocks certification)",
    "not-required": "not exercised in this run; a SHOULD or MAY requirement does not block certification",
}


def render_html(report: dict) -> str:
    """The self-contained ``report.html`` (its style sheet inlined) of a report; every value is
    escaped, and the page carries the digest that ties it to ``report.json``."""
    failures = [check for check in report["checks"] if check["outcome"] in ("failed", "error")]
    # The reasons next to the badge: what failed or errored first, then what was not tested.
    rank = ("failed", "error", "disabled", "inconclusive", "untested")
    reasons = sorted(report["verdict"]["reasons"],
                     key=lambda reason: next((i for i, word in enumerate(rank) if reason.endswith(" " + word)), -1))
    template = _templates().get_template("report.html.j2")
    return template.render(report=report, failures=failures, digest=_digest(report), explanations=EXPLANATIONS,
                           reasons=reasons)


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
