"""The conformance suite against this flavor, quick profile: what `pytest --flavor={% if cookiecutter.orchestrator_kind == "zenml" %}zenml:{{ cookiecutter.package_name }}.flavor:{{ cookiecutter.class_prefix }}OrchestratorFlavor{% else %}{{ cookiecutter.flavor_name }}{% endif %}` runs.

It runs in an empty folder of its own (the suite's plugin collects the checks there), as a
separate pytest process, so that its report is the suite's and not mixed with these tests'.
For the record kept by CI, see .github/workflows/certify.yml (`--certify`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
{%- if cookiecutter.orchestrator_kind == "container" %}

import pytest

#: The parent image of the step image (the config's default); CI may name another.
PARENT_IMAGE = os.environ.get("{{ cookiecutter.__run_id_env_var|replace('_RUN_ID', '') }}_PARENT_IMAGE", "orcakit/python-base:bookworm")


def require_engine() -> None:
    """The suite needs a Docker engine and the parent image: without them this test skips, but
    fails when ORCAKIT_REQUIRE_DOCKER=1 (CI must not pass by skipping)."""
    problem = None
    try:
        import docker

        docker.from_env(timeout=10).images.get(PARENT_IMAGE)
    except Exception as exc:  # noqa: BLE001 - no SDK, no engine, no image: all say "cannot certify here"
        problem = f"no Docker engine with the parent image {PARENT_IMAGE} here ({type(exc).__name__}: {exc})"
    if problem is None:
        return
    if os.environ.get("ORCAKIT_REQUIRE_DOCKER") == "1":
        pytest.fail(f"ORCAKIT_REQUIRE_DOCKER=1 but {problem}", pytrace=False)
    pytest.skip(problem)
{%- endif %}


def test_the_conformance_suite_passes_at_the_quick_profile(tmp_path: Path) -> None:
{%- if cookiecutter.orchestrator_kind == "container" %}
    require_engine()
{%- endif %}
{%- if cookiecutter.orchestrator_kind == "zenml" %}
    flavor = "zenml:{{ cookiecutter.package_name }}.flavor:{{ cookiecutter.class_prefix }}OrchestratorFlavor"
{%- else %}
    flavor = "{{ cookiecutter.flavor_name }}"
{%- endif %}
    command = [sys.executable, "-m", "pytest", f"--flavor={flavor}", "--conformance-profile=quick",
               "-q", "-p", "no:cacheprovider", f"--rootdir={tmp_path}"]
{%- if cookiecutter.orchestrator_kind == "container" %}
    command.append(f"--flavor-option=parent_image={PARENT_IMAGE}")
{%- endif %}
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, f"the conformance suite failed:\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
