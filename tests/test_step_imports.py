"""A step process imports only what a step needs (issue 17).

Every step pays its imports before it does anything: in a container or pod that is the step's
start-up, and with the fork launcher it is what the fork server carries into every child. So the
step's path imports neither SQLAlchemy's ORM (the run store writes with Core), nor croniter
(schedules are the client's business), nor a Docker or Kubernetes client (the step only asks its
orchestrator for the run ID), nor the suite's test tools.

The first test runs a real step (a fresh interpreter, the exec launcher) that returns the
modules loaded in its own process; the second rebuilds each reference flavor's orchestrator as
the step entrypoint does, in a fresh interpreter, and asks it for the run ID.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from orcakit import ExecutionStatus
from tests.pipelines import step_imports

#: Top-level packages no step process may load (the step entrypoint and its orchestrator only).
FORBIDDEN_PACKAGES = {
    "croniter", "docker", "kubernetes", "boto3", "botocore", "hypothesis", "pytest", "jinja2", "yaml", "requests",
}
#: Modules (with their submodules) no step process may load.
FORBIDDEN_MODULES = ("sqlalchemy.orm", "sqlalchemy.ext", "orcakit.conformance", "orcakit.reference.cli")


def forbidden(modules: list[str]) -> list[str]:
    return sorted(
        name for name in modules
        if name.split(".")[0] in FORBIDDEN_PACKAGES or any(name == m or name.startswith(m + ".") for m in FORBIDDEN_MODULES)
    )


def test_forbidden_names_what_it_should() -> None:
    """The filter itself can fail: it flags the ORM, croniter and clients, not their neighbours."""
    assert forbidden(["sqlalchemy.orm.session", "croniter", "docker.api", "kubernetes", "sqlalchemy.engine", "orcakit"]) == [
        "croniter", "docker.api", "kubernetes", "sqlalchemy.orm.session",
    ]


def test_a_step_process_loads_no_orm_no_croniter_no_backend_client(make_stack, execute) -> None:
    stack = make_stack(launcher="exec", max_parallelism=1)
    run, steps = execute(step_imports.report_modules, stack=stack)
    assert run.status is ExecutionStatus.COMPLETED, run.reason
    modules = execute.output(stack, run, "loaded_modules")
    assert "orcakit.reference._runtime.run_store" in modules  # the step process itself reported (run with -m: its entrypoint is __main__)
    assert "sqlalchemy.engine" in modules  # the run store's Core is there ...
    assert forbidden(modules) == []  # ... and nothing a step does not need


@pytest.mark.parametrize("flavor", ["local", "docker", "kubernetes"])
def test_rebuilding_each_flavors_orchestrator_in_a_step_loads_no_client(flavor: str) -> None:
    code = (
        "import json, sys\n"
        "import orcakit.reference.entrypoint as e\n"
        "from orcakit import load_flavor\n"
        f"orchestrator = load_flavor({flavor!r}).create({{}}, name='x')\n"
        "try:\n"
        "    orchestrator.get_orchestrator_run_id()\n"
        "except Exception:\n"
        "    pass  # no run-ID variable here: only the imports matter\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCAKIT_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    modules = json.loads(out.splitlines()[-1])
    assert f"orcakit.reference.flavors.{flavor}" in modules
    assert forbidden(modules) == []
