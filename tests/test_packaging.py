"""What gets installed: every package folder is listed in pyproject.toml, and a regular wheel
holds only ``orcakit/...`` (no top-level ``spec``/``reference``/``conformance``) plus the
package data (SPEC.md, catalogue.toml, the HTML report's template, every file of the flavor
template — dotfiles and ``{{...}}`` folders included)."""

from __future__ import annotations

import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
#: the checks: a package folder without an __init__.py on purpose, so that pytest never imports
#: it as a package by path (the plugin imports each check module by name)
CHECKS = "orcakit.conformance.suite"
#: package folders without an __init__.py: the checks, and folders of package data only (the
#: flavor template's hooks are scripts cookiecutter runs, its templates/ module texts)
NAMESPACE_PACKAGES = {CHECKS, "orcakit.conformance.templates", "orcakit.template.hooks", "orcakit.template.templates",
                      "orcakit.kubeapi.proto"}
#: The flavor template: its every file must be in the wheel, for `orcakit flavor new`.
TEMPLATE = ROOT / "template"
#: files that must be in the wheel, besides every listed package's modules
PACKAGE_DATA = [
    "orcakit/py.typed",
    "orcakit/SPEC.md",
    "orcakit/catalogue.toml",
    "orcakit/conformance/templates/report.html.j2",
    "orcakit/conformance/templates/report.css",
    "orcakit/kubeapi/proto/kubernetes.desc",
]


def package_folders() -> dict[str, Path]:
    """``{import name: folder}`` of every folder under the package roots of ``package-dir``
    that holds an ``__init__.py`` or is one of the namespace packages."""
    found: dict[str, Path] = {}
    for root_name, root_dir in SETUPTOOLS["package-dir"].items():
        top = ROOT / root_dir
        for folder in [top, *sorted(p for p in top.rglob("*") if p.is_dir())]:
            if "__pycache__" in folder.parts:
                continue
            relative = folder.relative_to(top).parts
            if not all(part.isidentifier() for part in relative):
                continue  # not importable, so not a package: data (the template's {{...}} folders)
            name = ".".join((root_name, *relative))
            if (folder / "__init__.py").is_file() or name in NAMESPACE_PACKAGES:
                found[name] = folder
    return found


def test_every_package_folder_is_listed_in_pyproject_and_vice_versa():
    listed = set(SETUPTOOLS["packages"])
    folders = package_folders()
    missing = sorted(set(folders) - listed)
    assert not missing, f"folders with an __init__.py missing from [tool.setuptools] packages: {missing}"
    stale = sorted(listed - set(folders))
    assert not stale, f"[tool.setuptools] packages lists packages without a folder (or without an __init__.py): {stale}"


def test_the_checks_folder_stays_a_namespace_package():
    folder = package_folders()[CHECKS]
    assert not (folder / "__init__.py").exists(), f"{folder} must not have an __init__.py"
    assert list(folder.glob("check_*.py")), f"{folder} holds no check modules"


def test_package_data_patterns_name_files_that_exist():
    folders = package_folders()
    for package, patterns in SETUPTOOLS["package-data"].items():
        folder = folders[package]
        for pattern in patterns:
            assert list(folder.glob(pattern)), f"package data {pattern!r} of {package} matches no file in {folder}"


@pytest.fixture(scope="module")
def wheel(orcakit_wheel: Path) -> zipfile.ZipFile:
    """The session's wheel of this checkout (conftest.py builds it once)."""
    with zipfile.ZipFile(orcakit_wheel) as archive:
        yield archive


@pytest.mark.slow
def test_the_wheel_installs_only_orcakit(wheel):
    version = PYPROJECT["project"]["version"]
    top_level = {name.split("/")[0] for name in wheel.namelist()}
    assert top_level == {"orcakit", f"orcakit-{version}.dist-info"}, top_level
    assert not [name for name in wheel.namelist() if "__pycache__" in name or name.endswith(".pyc")]


@pytest.mark.slow
def test_the_wheel_holds_every_package_and_the_package_data(wheel):
    names = set(wheel.namelist())
    for package in SETUPTOOLS["packages"]:
        folder = package.replace(".", "/")
        if package in NAMESPACE_PACKAGES:
            assert any(name.startswith(f"{folder}/") for name in names), f"{package}'s files are not in the wheel"
        else:
            assert f"{folder}/__init__.py" in names, f"{package} is not in the wheel"
    missing = [name for name in PACKAGE_DATA if name not in names]
    assert not missing, f"package data missing from the wheel: {missing}"
    entry_points = wheel.read(f"orcakit-{PYPROJECT['project']['version']}.dist-info/entry_points.txt").decode()
    assert "orcakit.conformance.plugin" in entry_points and "[orcakit.flavors]" in entry_points


@pytest.mark.slow
def test_the_wheel_holds_every_file_of_the_flavor_template(wheel):
    """Globs in package-data skip dotfiles and dot-folders (.github/, .gitignore): a template
    file the patterns miss would silently be absent from `orcakit flavor new` projects."""
    in_folder = {
        f"orcakit/template/{path.relative_to(TEMPLATE).as_posix()}"
        for path in TEMPLATE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    in_wheel = {name for name in wheel.namelist() if name.startswith("orcakit/template/")}
    assert ".github/workflows/certify.yml" in " ".join(in_folder)  # the check sees dot-folders
    assert sorted(in_folder - in_wheel) == [], "template files missing from the wheel (add them to package-data)"
    assert sorted(in_wheel - in_folder) == []
