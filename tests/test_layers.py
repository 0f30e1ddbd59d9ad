"""The layers hold: import-linter's contracts (pyproject.toml, ``[tool.importlinter]``) pass on
the code, and fail — naming the contract and the import — on a deliberate violation.

import-linter reads a package from the file system, but this repository maps import names onto
folders (``orcakit`` = spec/, ``orcakit.reference`` = reference/...), which an editable install
resolves at import time only. So the checks run on the *import layout*: the folders copied to
where their import names put them, exactly as a wheel installs them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def import_layout(into: Path) -> Path:
    """Copy the source folders to their import paths under ``into`` (see module doc)."""
    package_dir: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]
    for package, folder in sorted(package_dir.items(), key=lambda item: item[0].count(".")):
        target = into.joinpath(*package.split("."))
        shutil.copytree(ROOT / folder, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return into


def lint_imports(layout: Path, config_text: str | None = None) -> subprocess.CompletedProcess:
    """``lint-imports`` on ``layout`` with pyproject.toml's contracts (or ``config_text``)."""
    config = layout / "importlinter.toml"
    config.write_text(config_text or (ROOT / "pyproject.toml").read_text())
    env = {**os.environ, "PYTHONPATH": str(layout), "COLUMNS": "250"}  # one line per contract
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(config)],
        cwd=layout, env=env, capture_output=True, text=True, timeout=300,
    )


def test_the_import_contracts_hold(tmp_path: Path) -> None:
    result = lint_imports(import_layout(tmp_path / "layout"))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    contracts = PYPROJECT["tool"]["importlinter"]["contracts"]
    assert f"Contracts: {len(contracts)} kept, 0 broken." in result.stdout, result.stdout[-2000:]


@pytest.mark.parametrize(
    "where, code, broken",
    [
        # a flavor-like module that reaches into the runtime's private modules
        ("orcakit/reference/flavors/sneaky.py", "from orcakit.reference._runtime.run_store import RunStore\n",
         "Flavors import only the public runtime (orcakit.reference), never its private modules"),
        # the contract pointing back at the runtime (what Pipeline.__call__ used to do)
        ("orcakit/sneaky.py", "def run():\n    from orcakit.reference import run_pipeline\n",
         "The contract (orcakit) imports neither the runtime nor the conformance suite"),
        # the runtime importing the suite (what the CLI's certify used to do)
        ("orcakit/reference/sneaky.py", "from orcakit.conformance.report import verify_bundle\n",
         "The runtime (orcakit.reference) never imports the conformance suite"),
        # one reference flavor borrowing another's internals
        ("orcakit/reference/flavors/docker/sneaky.py", "from orcakit.reference.flavors.local import cgroups\n",
         "The reference flavors do not import each other"),
    ],
)
def test_a_deliberate_violation_breaks_its_contract(tmp_path: Path, where: str, code: str, broken: str) -> None:
    layout = import_layout(tmp_path / "layout")
    (layout / where).write_text(code)
    config = None
    if where == "orcakit/sneaky.py":  # the contract's module list must name it to check it
        config = (ROOT / "pyproject.toml").read_text().replace('"orcakit.status",', '"orcakit.status", "orcakit.sneaky",', 1)
    result = lint_imports(layout, config)
    assert result.returncode != 0, result.stdout[-3000:]
    assert f"{broken} BROKEN" in result.stdout, result.stdout[-3000:]
    module = where.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    assert module in result.stdout, result.stdout[-3000:]


def test_every_contract_module_is_checked() -> None:
    """A new module in spec/ must join the contract's list, or the contract would not see it."""
    (contract,) = [c for c in PYPROJECT["tool"]["importlinter"]["contracts"] if c["id"] == "contract-knows-no-runtime"]
    modules = {f"orcakit.{path.stem}" for path in (ROOT / "spec").glob("*.py") if path.stem != "__init__"}
    assert set(contract["source_modules"]) == modules
