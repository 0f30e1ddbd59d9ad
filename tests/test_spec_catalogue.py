"""The specification's single source of truth: spec/catalogue.toml, SPEC.md rendered from it,
and the ``orcakit.catalogue`` API the conformance suite and its reports read the IDs through."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import orcakit
from orcakit import Capabilities, ExecutionMode, ExecutionStatus, ResourceSupport
from orcakit.catalogue import (
    ID_PATTERN,
    LEVELS,
    Catalogue,
    Requirement,
    Section,
    load_catalogue,
    main,
    parse_catalogue,
    render_markdown,
)

ROOT = Path(__file__).resolve().parents[1]
SPEC_MD = ROOT / "spec" / "SPEC.md"

#: Every requirement and its level. The conformance suite refers to these IDs: removing or
#: renaming one, or changing its level, must be a conscious change of this list too.
EXPECTED = {
    "RUNID-1": "MUST", "RUNID-2": "MUST", "RUNID-3": "MUST", "RUNID-4": "SHOULD", "RUNID-5": "MUST",
    "ENV-1": "MUST", "ENV-2": "MUST", "ENV-3": "MUST", "ENV-4": "MUST",
    "RES-1": "MUST", "RES-2": "MUST", "RES-3": "MUST", "RES-4": "MUST", "RES-5": "MUST", "RES-6": "MUST",
    "ORDER-1": "MUST", "ORDER-2": "MUST", "ORDER-3": "MUST", "ORDER-4": "MUST", "ORDER-5": "MUST",
    "FAIL-1": "MUST", "FAIL-2": "MUST", "FAIL-3": "MUST", "FAIL-4": "MUST", "FAIL-5": "MUST", "FAIL-6": "MUST",
    "RETRY-1": "MUST", "RETRY-2": "MUST", "RETRY-3": "MUST",
    "STATUS-1": "MUST", "STATUS-2": "MUST", "STATUS-3": "MUST",
    "SCHED-1": "MUST", "SCHED-2": "MUST", "SCHED-3": "MUST",
    "DYN-1": "MUST", "DYN-2": "MUST",
    "CAP-1": "MUST", "CAP-2": "MUST",
    "STORE-1": "MUST",
    "ART-1": "MUST",
    "CLEAN-1": "MUST", "CLEAN-2": "MUST",
    "SEC-1": "MUST",
}

#: The sections, in the order the spec presents them.
EXPECTED_SECTIONS = [
    "intro", "run-id", "environment", "resources", "ordering", "failure", "retries", "status", "schedules",
    "dynamic", "capabilities", "stores", "cleanup", "security", "reference-flavors", "zenml",
]

#: Conditions that must be stated, because the suite reports these checks as unsupported when
#: the capability is not declared.
EXPECTED_CONDITIONS = {
    "RUNID-5": "capabilities.dynamic_pipelines",
    "RES-2": "capabilities.cpu == enforced",
    "RES-3": "capabilities.memory == enforced",
    "RES-4": "capabilities.gpu == enforced",
    "ORDER-4": "capabilities.parallel_steps",
    "SCHED-1": "capabilities.schedules",
    "DYN-1": "capabilities.dynamic_pipelines",
    "DYN-2": "not capabilities.dynamic_pipelines",
    "CLEAN-2": "capabilities.stop_run",
}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


# -- one source of truth -------------------------------------------------------------------------


def test_spec_md_is_rendered_from_the_catalogue(catalogue):
    assert SPEC_MD.read_text(encoding="utf-8") == render_markdown(catalogue), (
        "spec/SPEC.md differs from spec/catalogue.toml; edit the catalogue, then run "
        "`python -m orcakit.catalogue --write`"
    )


def test_spec_version_is_the_package_spec_version(catalogue):
    assert catalogue.spec_version == orcakit.SPEC_VERSION


def test_catalogue_is_installed_package_data(catalogue):
    package = resources.files("orcakit")
    assert package.joinpath("catalogue.toml").is_file()
    assert package.joinpath("SPEC.md").is_file()
    assert load_catalogue() is catalogue  # read once per process
    # An editable install reads the source folder, so also check that a regular install
    # (wheel/sdist) would ship both files: pyproject's package-data must match them.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["orcakit"]
    for name in ("catalogue.toml", "SPEC.md"):
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), f"{name} is not in orcakit's package-data"


# -- the requirements ----------------------------------------------------------------------------


def test_the_catalogue_holds_exactly_the_expected_requirements(catalogue):
    actual = {requirement.id: requirement.level for requirement in catalogue.requirements}
    missing = sorted(set(EXPECTED) - set(actual))
    extra = sorted(set(actual) - set(EXPECTED))
    assert not missing, f"requirements removed from the catalogue: {missing}"
    assert not extra, f"requirements added to the catalogue but not to EXPECTED here: {extra}"
    assert actual == EXPECTED


def test_ids_are_unique_and_well_formed(catalogue):
    ids = catalogue.ids()
    assert len(ids) == len(set(ids))
    for requirement_id in ids:
        assert ID_PATTERN.fullmatch(requirement_id), requirement_id


def test_levels_are_bcp14_keywords_used_in_their_rules(catalogue):
    for requirement in catalogue.requirements:
        assert requirement.level in LEVELS
        # The rule states its obligation with its own keyword, in capitals (RFC 8174).
        assert re.search(rf"\b{requirement.level}\b", requirement.rule), (
            f"{requirement.id} is a {requirement.level} but its rule never says {requirement.level}"
        )


def test_sections_come_in_the_documented_order(catalogue):
    assert [section.id for section in catalogue.sections] == EXPECTED_SECTIONS
    non_normative = [section.id for section in catalogue.sections if not section.normative]
    assert non_normative == ["reference-flavors", "zenml"]
    for section in catalogue.sections[1:]:
        if section.normative:
            assert catalogue.in_section(section.id), f"normative section {section.id!r} has no requirement"


def test_every_requirement_is_complete(catalogue):
    for requirement in catalogue.requirements:
        for field in ("title", "rule", "rationale", "observed"):
            assert getattr(requirement, field).strip(), f"{requirement.id}: empty {field}"
        assert requirement.section in EXPECTED_SECTIONS


_CONDITION = re.compile(
    r"^(?P<not>not )?capabilities\.(?P<field>[a-z_]+)(?: (?P<op>==|!=|contains) (?P<value>[a-z_]+))?$"
)


def _condition_problems(condition: str) -> list[str]:
    problems = []
    for clause in condition.split(" or "):
        match = _CONDITION.fullmatch(clause)
        if match is None:
            problems.append(f"{clause!r} does not follow the grammar in catalogue.toml")
            continue
        field, op, value = match["field"], match["op"], match["value"]
        if field not in Capabilities.model_fields:
            problems.append(f"{clause!r}: Capabilities has no field {field!r}")
            continue
        if op in ("==", "!="):
            if field not in ("cpu", "memory", "gpu") or value not in {s.value for s in ResourceSupport}:
                problems.append(f"{clause!r}: == and != compare a resource kind with a ResourceSupport value")
        elif op == "contains":
            allowed = {"schedules": {"cron", "interval", "run_once"}, "execution_modes": {m.value for m in ExecutionMode}}
            if value not in allowed.get(field, set()):
                problems.append(f"{clause!r}: {field} cannot contain {value!r}")
        elif match["not"] is None and field in ("cpu", "memory", "gpu"):
            problems.append(f"{clause!r}: a resource kind needs == or !=")
    return problems


def test_applies_when_conditions_name_real_capabilities(catalogue):
    problems = {
        requirement.id: _condition_problems(requirement.applies_when)
        for requirement in catalogue.requirements
        if requirement.applies_when is not None
    }
    assert not {rid: p for rid, p in problems.items() if p}
    for requirement_id, condition in EXPECTED_CONDITIONS.items():
        assert catalogue.get(requirement_id).applies_when == condition


def test_condition_checker_catches_mistakes():
    # The check above must be able to fail.
    assert _condition_problems("capabilities.dynamic_pipeline")
    assert _condition_problems("capabilities.cpu == enforce")
    assert _condition_problems("capabilities.schedules contains weekly")
    assert _condition_problems("dynamic pipelines are declared")
    assert not _condition_problems("capabilities.cpu != enforced or not capabilities.stop_run")


def test_status_transitions_are_those_the_spec_describes(catalogue):
    """The Status section describes ExecutionStatus.can_become() in prose; this pins the two
    together, so that changing the transitions means changing the spec text too."""
    S = ExecutionStatus
    ends = {S.COMPLETED, S.FAILED, S.STOPPING, S.STOPPED, S.CANCELLING, S.CANCELLED}
    terminal = {S.COMPLETED, S.FAILED, S.SKIPPED, S.STOPPED, S.CACHED, S.CANCELLED}
    described = {
        S.INITIALIZING: {S.PROVISIONING, S.QUEUED, S.RUNNING, S.SKIPPED, S.CACHED} | ends,
        S.PROVISIONING: {S.QUEUED, S.RUNNING, S.SKIPPED, S.CACHED} | ends,
        S.QUEUED: {S.RUNNING, S.SKIPPED, S.CACHED} | ends,
        S.RUNNING: {S.RETRYING} | ends,
        S.RETRYING: {S.RUNNING} | ends,
        S.STOPPING: {S.STOPPED, S.FAILED, S.COMPLETED},
        S.CANCELLING: {S.CANCELLED, S.FAILED, S.COMPLETED},
        **{status: set() for status in terminal},
    }
    for before in S:
        allowed = {after for after in S if after != before and before.can_become(after)}
        assert allowed == described[before], f"transitions from {before.name} differ from the spec's Status section"
    assert {status for status in S if status.is_finished} == terminal
    intro = catalogue.section("status").intro
    for status in terminal:
        assert status.name in intro


def test_get_and_must_ids(catalogue):
    assert catalogue.get("RUNID-1").level == "MUST"
    assert catalogue.get("RUNID-1").prefix == "RUNID"
    absent = "RUNID-" + "99"  # spelled apart: the citation check below scans this file too
    with pytest.raises(KeyError, match=absent):
        catalogue.get(absent)
    must = catalogue.must_ids()
    assert "RUNID-4" not in must
    assert set(must) == {rid for rid, level in EXPECTED.items() if level == "MUST"}
    assert list(must) == [rid for rid in catalogue.ids() if rid in must]  # document order
    assert [r.id for r in catalogue.in_section("retries")] == ["RETRY-1", "RETRY-2", "RETRY-3"]


def test_requirement_ids_cited_in_the_code_exist(catalogue):
    """Comments, docstrings and conformance markers cite requirement IDs ('SPEC RUNID-3',
    'RES-*', 'RUNID-1..5'); every one of them must be in the catalogue."""
    prefixes = "|".join(sorted({r.prefix for r in catalogue.requirements}, key=len, reverse=True))
    cited = re.compile(rf"\b({prefixes})-(\*|[0-9]+)(?:\.\.([0-9]+))?")
    known = set(catalogue.ids())
    unknown = []
    for folder in ("spec", "reference", "conformance", "template", "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for match in cited.finditer(path.read_text(encoding="utf-8")):
                prefix, first, last = match.groups()
                if first == "*":
                    continue  # the prefix is known by construction of the pattern
                for number in {first, last} - {None}:
                    if f"{prefix}-{number}" not in known:
                        unknown.append(f"{path.relative_to(ROOT)}: {match.group(0)}")
    assert not unknown, f"citations of requirements that do not exist: {unknown}"


# -- validation --------------------------------------------------------------------------------

MINIMAL = '''
spec_version = "1.0"

[[sections]]
id = "alpha"
title = "Alpha"
intro = "Prose."

[[sections]]
id = "notes"
title = "Notes"
normative = false

[[requirements]]
id = "ALPHA-1"
section = "alpha"
level = "MUST"
title = "First"
rule = "A flavor MUST do it."
rationale = "Because."
observed = "A check."

[[requirements]]
id = "ALPHA-2"
section = "alpha"
level = "MAY"
title = "Second"
rule = "A flavor MAY do it."
rationale = "Because."
observed = "Not checked."
applies_when = "capabilities.stop_run"
'''


def test_minimal_catalogue_parses():
    catalogue = parse_catalogue(MINIMAL)
    assert catalogue.ids() == ("ALPHA-1", "ALPHA-2")
    assert catalogue.must_ids() == ("ALPHA-1",)
    assert catalogue.get("ALPHA-2").applies_when == "capabilities.stop_run"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('id = "ALPHA-2"', 'id = "ALPHA-1"', "defined twice"),
        ('id = "ALPHA-2"', 'id = "alpha-2"', "PREFIX-N"),
        ('id = "ALPHA-2"', 'id = "ALPHA2"', "PREFIX-N"),
        ('id = "ALPHA-2"', 'id = "ALPHA-2a"', "PREFIX-N"),
        ('level = "MAY"', 'level = "MUST NOT"', "level"),
        ('level = "MAY"', 'level = "must"', "level"),
        ('section = "alpha"\nlevel = "MAY"', 'section = "beta"\nlevel = "MAY"', "does not exist"),
        ('section = "alpha"\nlevel = "MAY"', 'section = "notes"\nlevel = "MAY"', "non-normative"),
        ('observed = "Not checked."', 'observd = "Not checked."', "observ"),
        ('rationale = "Because."\nobserved = "A check."', 'rationale = ""\nobserved = "A check."', "rationale"),
        ('id = "notes"', 'id = "alpha"', "defined twice"),
        ('spec_version = "1.0"', 'spec_version = "one"', "spec_version"),
    ],
    ids=[
        "duplicate-id", "lower-case-id", "no-dash", "suffix", "bad-level", "lower-level", "unknown-section",
        "non-normative-section", "typo-field", "empty-rationale", "duplicate-section", "bad-version",
    ],
)
def test_inconsistent_catalogues_are_refused(old, new, message):
    assert old in MINIMAL
    with pytest.raises(ValidationError, match=message):
        parse_catalogue(MINIMAL.replace(old, new, 1))


def test_one_prefix_lives_in_one_section():
    text = MINIMAL.replace('[[sections]]\nid = "notes"', '[[sections]]\nid = "beta"\ntitle = "Beta"\n\n[[sections]]\nid = "notes"')
    text = text.replace('id = "ALPHA-2"\nsection = "alpha"', 'id = "ALPHA-2"\nsection = "beta"')
    with pytest.raises(ValidationError, match="other ALPHA-\\* requirements"):
        parse_catalogue(text)


def test_requirements_are_frozen(catalogue):
    with pytest.raises(ValidationError):
        catalogue.get("RUNID-1").level = "MAY"


# -- rendering ---------------------------------------------------------------------------------


def test_rendering_shows_every_requirement_in_its_section(catalogue):
    text = render_markdown(catalogue)
    assert text.startswith("<!-- Generated from spec/catalogue.toml")
    assert f"**Version {catalogue.spec_version}**" in text
    positions = []
    for section in catalogue.sections:
        heading = re.search(rf"^## [0-9]+\. {re.escape(section.title)}", text, re.M)
        assert heading, section.title
        for requirement in catalogue.in_section(section.id):
            line = f"### {requirement.id} — {requirement.title} ({requirement.level})"
            assert text.count(line + "\n") == 1, line
            start = text.index(line)
            assert start > heading.start()
            block = text[start:].split("\n### ", 1)[0].split("\n## ", 1)[0]
            assert requirement.rule in block
            assert f"**Rationale:** {requirement.rationale}" in block
            assert f"**Observed by:** {requirement.observed}" in block
            assert (f"**Applies when:** `{requirement.applies_when}`" in block) == (requirement.applies_when is not None)
            positions.append(start)
    assert positions == sorted(positions)
    assert text.count("**Rationale:**") == len(catalogue.requirements)


_words = st.text(st.sampled_from("abcdefghij |*_`"), min_size=1, max_size=20).map(str.strip).filter(bool)


@st.composite
def catalogues(draw) -> Catalogue:
    names = draw(st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=5, unique=True))
    sections = [Section(id=f"s{name}", title=draw(_words), intro=draw(st.sampled_from(["", "Some prose."])))
                for name in names]
    requirements = []
    for index, section in enumerate(sections):
        prefix = "P" + "ABCDEFGH"[index]
        for number in range(1, draw(st.integers(0, 3)) + 1):
            requirements.append(Requirement(
                id=f"{prefix}-{number}", section=section.id, level=draw(st.sampled_from(LEVELS)),
                title=draw(_words), rule=draw(_words), rationale=draw(_words), observed=draw(_words),
                applies_when=draw(st.sampled_from([None, "capabilities.stop_run"])),
            ))
    draw(st.randoms()).shuffle(requirements)  # document order need not follow the sections
    return Catalogue(spec_version="1.0", sections=tuple(sections), requirements=tuple(requirements))


@settings(max_examples=50, deadline=None)
@given(catalogue=catalogues())
def test_rendering_groups_requirements_by_section_whatever_their_order(catalogue):
    text = render_markdown(catalogue)
    assert render_markdown(catalogue) == text  # deterministic
    expected = [r.id for s in catalogue.sections for r in catalogue.in_section(s.id)]
    assert re.findall(r"^### ([A-Z]+-[0-9]+) — ", text, re.M) == expected
    # Titles with '|' must not break the index table: every row has exactly five unescaped pipes.
    for row in re.findall(r"^\| \[.*$", text, re.M):
        assert len(re.findall(r"(?<!\\)\|", row)) == 5, row


# -- command line ------------------------------------------------------------------------------


def test_check_passes_on_the_committed_spec_and_write_regenerates(tmp_path, capsys):
    assert main(["--check"]) == 0
    target = tmp_path / "SPEC.md"
    assert main(["--check", "--output", str(target)]) == 1  # missing
    assert "is missing" in capsys.readouterr().err
    assert main(["--write", "--output", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == SPEC_MD.read_text(encoding="utf-8")
    assert main(["--check", "--output", str(target)]) == 0
    target.write_text(target.read_text(encoding="utf-8").replace("MUST", "SHOULD", 1), encoding="utf-8")
    assert main(["--check", "--output", str(target)]) == 1
    assert "--write" in capsys.readouterr().err


def test_module_entry_point_runs():
    result = subprocess.run(
        [sys.executable, "-m", "orcakit.catalogue", "--check"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    printed = subprocess.run([sys.executable, "-m", "orcakit.catalogue"], capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0
    assert printed.stdout == SPEC_MD.read_text(encoding="utf-8")
