"""The requirement catalogue: SPEC.md as data.

``catalogue.toml`` (installed next to this module) is the single source of truth of orcakit's
normative specification: its sections and its requirements, each with a stable ID (``RUNID-1``),
a level (MUST/SHOULD/MAY), the rule, a rationale and how the conformance suite observes it.
``SPEC.md`` is rendered from it by :func:`render_markdown`; the conformance suite and its reports
read the IDs through :func:`load_catalogue`.

    python -m orcakit.catalogue --write    # regenerate spec/SPEC.md from spec/catalogue.toml
    python -m orcakit.catalogue --check    # exit 1 if spec/SPEC.md is out of date
    python -m orcakit.catalogue            # print the rendered Markdown

Only ``tomllib`` and pydantic are imported, so reading the catalogue stays cheap.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: The levels of BCP 14 (RFC 2119/8174) a requirement can have.
Level = Literal["MUST", "SHOULD", "MAY"]
LEVELS: tuple[str, ...] = ("MUST", "SHOULD", "MAY")
#: Requirement IDs: an upper-case prefix naming the area, a dash, a number (``RUNID-1``).
ID_PATTERN = re.compile(r"^[A-Z]+-[0-9]+$")
CATALOGUE_FILE = "catalogue.toml"
SPEC_FILE = "SPEC.md"

_frozen = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Section(BaseModel):
    """A section of the specification; non-normative sections hold prose only."""

    model_config = _frozen

    id: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    title: str = Field(min_length=1)
    intro: str = ""
    normative: bool = True


class Requirement(BaseModel):
    """One requirement of the specification."""

    model_config = _frozen

    id: str
    section: str
    level: Level
    title: str = Field(min_length=1, description="short, one line")
    rule: str = Field(min_length=1, description="normative text, for a flavor author")
    rationale: str = Field(min_length=1)
    observed: str = Field(min_length=1, description="how the conformance suite observes it")
    applies_when: str | None = Field(
        default=None, description="a capability condition, e.g. 'capabilities.dynamic_pipelines'"
    )

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not ID_PATTERN.fullmatch(value):
            raise ValueError(f"requirement ID {value!r} is not of the form PREFIX-N (e.g. 'RUNID-1')")
        return value

    @field_validator("title")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value:
            raise ValueError(f"title {value!r} must fit on one line")
        return value

    @property
    def prefix(self) -> str:
        """The area of the requirement: ``"RUNID"`` for ``RUNID-1``."""
        return self.id.split("-", 1)[0]

    @property
    def number(self) -> int:
        return int(self.id.split("-", 1)[1])


class Catalogue(BaseModel):
    """The whole specification: version, ordered sections and requirements."""

    model_config = _frozen

    spec_version: str = Field(pattern=r"^[0-9]+\.[0-9]+$")
    sections: tuple[Section, ...]
    requirements: tuple[Requirement, ...]

    @model_validator(mode="after")
    def _check_consistency(self) -> "Catalogue":
        problems: list[str] = []
        section_ids = [section.id for section in self.sections]
        problems += [f"section {sid!r} is defined twice" for sid in _duplicates(section_ids)]
        problems += [f"requirement {rid!r} is defined twice" for rid in _duplicates(r.id for r in self.requirements)]
        normative = {section.id: section.normative for section in self.sections}
        home: dict[str, str] = {}
        for requirement in self.requirements:
            if requirement.section not in normative:
                problems.append(
                    f"requirement {requirement.id} names section {requirement.section!r}, which does not exist "
                    f"(sections: {', '.join(section_ids)})"
                )
            elif not normative[requirement.section]:
                problems.append(f"requirement {requirement.id} is in non-normative section {requirement.section!r}")
            # One area, one section: a reader finds every RUNID-* rule in one place.
            first = home.setdefault(requirement.prefix, requirement.section)
            if first != requirement.section:
                problems.append(
                    f"requirement {requirement.id} is in section {requirement.section!r}, but other "
                    f"{requirement.prefix}-* requirements are in {first!r}"
                )
        if problems:
            raise ValueError("inconsistent catalogue: " + "; ".join(problems))
        return self

    # -- queries -----------------------------------------------------------------------------

    def get(self, requirement_id: str) -> Requirement:
        """The requirement with this ID; ``KeyError`` naming the known prefixes if none."""
        for requirement in self.requirements:
            if requirement.id == requirement_id:
                return requirement
        prefixes = sorted({r.prefix for r in self.requirements})
        raise KeyError(f"no requirement {requirement_id!r} in spec {self.spec_version} (areas: {', '.join(prefixes)})")

    def ids(self) -> tuple[str, ...]:
        """Every requirement ID, in document order."""
        return tuple(requirement.id for requirement in self.requirements)

    def must_ids(self) -> tuple[str, ...]:
        """The IDs of the MUST requirements, in document order."""
        return tuple(requirement.id for requirement in self.requirements if requirement.level == "MUST")

    def section(self, section_id: str) -> Section:
        for section in self.sections:
            if section.id == section_id:
                return section
        raise KeyError(f"no section {section_id!r}")

    def in_section(self, section_id: str) -> tuple[Requirement, ...]:
        """The requirements of one section, in document order."""
        return tuple(requirement for requirement in self.requirements if requirement.section == section_id)


def _duplicates(values) -> list[str]:
    seen: set[str] = set()
    repeated: list[str] = []
    for value in values:
        if value in seen and value not in repeated:
            repeated.append(value)
        seen.add(value)
    return repeated


def parse_catalogue(text: str) -> Catalogue:
    """A validated catalogue from TOML text (``tomllib.TOMLDecodeError`` or pydantic
    ``ValidationError`` when it is not one)."""
    return Catalogue.model_validate(tomllib.loads(text))


@cache
def load_catalogue() -> Catalogue:
    """The catalogue installed with orcakit (read once per process)."""
    text = resources.files("orcakit").joinpath(CATALOGUE_FILE).read_text(encoding="utf-8")
    return parse_catalogue(text)


# -- rendering ---------------------------------------------------------------------------------

GENERATED_NOTICE = (
    "<!-- Generated from spec/catalogue.toml by `python -m orcakit.catalogue --write`. Do not edit by hand:\n"
    "     edit the catalogue and regenerate (tests/test_spec_catalogue.py fails when the two differ). -->"
)


def section_anchor(section: Section) -> str:
    return f"sec-{section.id}"


def render_markdown(catalogue: Catalogue) -> str:
    """SPEC.md: title and version, contents, an index of requirements, then every section with
    its prose and its requirements (``### RUNID-1 — <title> (MUST)``, the rule, rationale and how
    it is observed)."""
    levels = {level: sum(1 for r in catalogue.requirements if r.level == level) for level in LEVELS}
    counts = ", ".join(f"{n} {level}" for level, n in levels.items() if n)
    out: list[str] = [
        GENERATED_NOTICE,
        "",
        "# orcakit orchestrator specification",
        "",
        f"**Version {catalogue.spec_version}** · {len(catalogue.requirements)} requirements ({counts})",
        "",
        "## Contents",
        "",
    ]
    numbered = list(enumerate(catalogue.sections, start=1))
    for number, section in numbered:
        suffix = " (non-normative)" if not section.normative else ""
        out.append(f"{number}. [{section.title}](#{section_anchor(section)}){suffix}")
    out += [
        "",
        "## Requirements at a glance",
        "",
        "| ID | level | requirement | applies when |",
        "|---|---|---|---|",
    ]
    for section in catalogue.sections:
        for requirement in catalogue.in_section(section.id):
            condition = f"`{requirement.applies_when}`" if requirement.applies_when else "always"
            out.append(
                f"| [{requirement.id}](#{requirement.id}) | {requirement.level} | {_cell(requirement.title)} | {_cell(condition)} |"
            )
    for number, section in numbered:
        suffix = " (non-normative)" if not section.normative else ""
        out += ["", f'<a id="{section_anchor(section)}"></a>', "", f"## {number}. {section.title}{suffix}"]
        if section.intro:
            out += ["", section.intro]
        for requirement in catalogue.in_section(section.id):
            out += [
                "",
                f'<a id="{requirement.id}"></a>',
                "",
                f"### {requirement.id} — {requirement.title} ({requirement.level})",
                "",
                requirement.rule,
            ]
            if requirement.applies_when:
                out += ["", f"**Applies when:** `{requirement.applies_when}`"]
            out += ["", f"**Rationale:** {requirement.rationale}", "", f"**Observed by:** {requirement.observed}"]
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|")


# -- command line ------------------------------------------------------------------------------


def default_spec_path() -> Path:
    """``SPEC.md`` next to this module: ``spec/SPEC.md`` in a source checkout or editable install."""
    return Path(__file__).with_name(SPEC_FILE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orcakit.catalogue",
        description="Render SPEC.md from catalogue.toml (the single source of the specification).",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write the rendered Markdown to the output file")
    mode.add_argument("--check", action="store_true", help="exit 1 if the output file differs from the rendering")
    parser.add_argument("--output", type=Path, default=None, help=f"the Markdown file (default: {default_spec_path()})")
    args = parser.parse_args(argv)
    rendered = render_markdown(load_catalogue())
    path = args.output or default_spec_path()
    if args.write:
        path.write_text(rendered, encoding="utf-8")
        print(f"wrote {path}")
        return 0
    if args.check:
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != rendered:
            state = "is missing" if current is None else "is out of date"
            print(f"{path} {state}; regenerate it with: python -m orcakit.catalogue --write", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    sys.stdout.write(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
