"""Refuse answers that would generate a broken flavor package, before any file is written.

cookiecutter renders this script with the answers and runs it in the (still empty) project
folder; a non-zero exit makes it remove that folder, so a refused answer leaves nothing on disk.
Every message names the answer, why it cannot work and how to fix it. Self-contained on purpose:
it runs under whatever Python runs cookiecutter, which need not have orcakit installed.
"""

from __future__ import annotations

import json
import keyword
import re
import sys

#: Flavors orcakit ships (or reserves): a package registering one of these names would shadow
#: or be shadowed by the built-in flavor in the ``orcakit.flavors`` entry-point group.
BUILT_IN_FLAVORS = ("local", "docker", "kubernetes")
KINDS = ("process", "container", "zenml")
#: What ``orcakit.Flavor.check`` accepts as a flavor name.
FLAVOR_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
CLASS_PREFIX = re.compile(r"^[A-Z][A-Za-z0-9]*$")
PYTHON_VERSION = re.compile(r"^3\.(\d+)$")


def problems(answers: dict[str, str]) -> list[tuple[str, str, str]]:
    """``(what, why, fix)`` for every answer that cannot work; empty when all can."""
    found = []
    flavor = answers["flavor_name"]
    if not FLAVOR_NAME.fullmatch(flavor):
        found.append((
            f"flavor_name={flavor!r} is not a valid flavor name",
            "users select the flavor with --flavor=NAME and orcakit registers it under that name",
            "use lower-case letters, digits, '-' or '_', starting with a letter (at most 63), e.g. flavor_name=myorch",
        ))
    elif flavor in BUILT_IN_FLAVORS:
        found.append((
            f"flavor_name={flavor!r} is the name of a built-in orcakit flavor",
            f"the built-in flavors ({', '.join(BUILT_IN_FLAVORS)}) are registered under these names already",
            f"choose another name, e.g. flavor_name=my{flavor}",
        ))
    package = answers["package_name"]
    if not package.isidentifier() or keyword.iskeyword(package) or not package.isascii():
        suggestion = re.sub(r"\W", "_", package.encode("ascii", "ignore").decode()).strip("_").lower() or "orcakit_myorch"
        if suggestion[0].isdigit() or keyword.iskeyword(suggestion):
            suggestion = f"orcakit_{suggestion}"
        found.append((
            f"package_name={package!r} is not an importable Python package name",
            "the flavor's entry point imports the package by this name",
            f"use ASCII letters, digits and '_', not starting with a digit, and not a Python keyword, e.g. package_name={suggestion}",
        ))
    elif package in BUILT_IN_FLAVORS or package in ("orcakit", "cookiecutter", "pytest", "docker"):
        found.append((
            f"package_name={package!r} clashes with a package orcakit or the flavor depends on",
            "installing it would shadow that package",
            f"choose another name, e.g. package_name=orcakit_{package}",
        ))
    prefix = answers["class_prefix"]
    if not CLASS_PREFIX.fullmatch(prefix) or not prefix.isascii():
        found.append((
            f"class_prefix={prefix!r} cannot start a Python class name",
            "the generated classes are <prefix>Flavor, <prefix>Orchestrator and <prefix>OrchestratorConfig",
            "use ASCII letters and digits starting with an upper-case letter, e.g. class_prefix=MyOrch",
        ))
    kind = answers["orchestrator_kind"]
    if kind not in KINDS:
        found.append((
            f"orchestrator_kind={kind!r} is not a kind of orchestrator this template generates",
            "the template has a working starting point for each kind it knows",
            f"use one of: {', '.join(KINDS)}",
        ))
    python = answers["min_python"]
    match = PYTHON_VERSION.fullmatch(python)
    if match is None or int(match.group(1)) < 11:
        found.append((
            f"min_python={python!r} is not a Python version orcakit runs on",
            "the generated package depends on orcakit, which needs Python 3.11 or newer",
            "answer a version like 3.11 or 3.12",
        ))
    return found


def main(answers: dict[str, str]) -> int:
    found = problems(answers)
    for what, why, fix in found:
        print(f"Error: {what}\n  why: {why}\n  fix: {fix}", file=sys.stderr)
    if found:
        print("Nothing was generated.", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    # cookiecutter renders the answers into this JSON text (tojson escapes quotes and
    # backslashes, so any answer stays one valid string).
    sys.exit(main(json.loads(r'''{{ {
        "flavor_name": cookiecutter.flavor_name,
        "package_name": cookiecutter.package_name,
        "class_prefix": cookiecutter.class_prefix,
        "orchestrator_kind": cookiecutter.orchestrator_kind,
        "min_python": cookiecutter.min_python,
    } | tojson }}''')))
