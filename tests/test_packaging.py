"""What gets installed: every package folder is listed in pyproject.toml, and a regular wheel
holds only ``orcakit/...`` (no top-level ``spec``/``reference``/``conformance``) plus the
package data (SPEC.md, catalogue.toml, the HTML report's template)."""

from __future__ import annotations

import shutil
import subprocess
import sys
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
#: package folders without an __init__.py: the checks, and folders of package data only
NAMESPACE_PACKAGES = {CHECKS, "orcakit.conformance.templates"}
#: files that must be in the wheel, besides every listed package's modules
PACKAGE_DATA = [
    "orcakit/py.typed",
    "orcakit/SPEC.md",
    "orcakit/catalogue.toml",
    "orcakit/conformance/templates/report.html.j2",
    "orcakit/conformance/templates/report.css",
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


def copy_source_tree(into: Path) -> Path:
    """What a build needs, without caches and build leftovers (an in-tree build would leave
    build/ and *.egg-info in the checkout)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, into / name)
    for folder in {*SETUPTOOLS["package-dir"].values()}:
        shutil.copytree(ROOT / folder, into / folder, ignore=ignore)
    return into


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    source = copy_source_tree(tmp_path_factory.mktemp("source"))
    out = tmp_path_factory.mktemp("dist")
    # no build isolation: setuptools and wheel come from the dev extra, so no network is needed
    command = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # setuptools only warns (for now) about a folder it would leave out of the wheel
    assert "is absent from the `packages` configuration" not in result.stdout + result.stderr, result.stderr[-3000:]
    (built,) = out.glob("orcakit-*.whl")
    with zipfile.ZipFile(built) as archive:
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
