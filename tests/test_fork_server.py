"""The local flavor's fork server forked from the client (``fork_server="client"``).

The client runs in a subprocess of its own: the server is shared per client process, so in the
test process another test's fresh server could already be there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CLIENT = """
import json, os, sys
from orcakit import ComponentSpec, StackSpec
from orcakit.reference import RunStore, run_snapshot
from orcakit.reference._runtime.artifact_store import dematerialize, open_artifact_store, output_key
from orcakit.reference.flavors.local.launchers import ForkServer
from tests.pipelines import step_imports

home = sys.argv[1]
step_imports.MARK = "changed by the client"
os.environ["STEP_IMPORTS_PROBE"] = "x\\ny $HOME"
stack = StackSpec(
    orchestrator=ComponentSpec(flavor="local", name="t", config={"launcher": "fork", "fork_server": sys.argv[2]}),
    artifact_store=os.path.join(home, "artifacts"), run_store=f"sqlite:///{home}/runs.db",
)
run = run_snapshot(step_imports.two_steps.compile(stack))
artifacts = open_artifact_store(stack.artifact_store)
(server,) = ForkServer._servers.values()
print(json.dumps({
    "status": run.status.value, "client": os.getpid(), "server": server._proc.pid, "forked": server.forked,
    "steps": {name: dematerialize(artifacts.get(output_key(run.id, name))) for name in ("a", "b")},
}))
"""


@pytest.mark.parametrize("fork_server", ["client", "fresh"])
def test_steps_are_children_of_the_server_and_import_user_code_afresh(tmp_path: Path, fork_server: str) -> None:
    env = {**os.environ, "ORCAKIT_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", CLIENT, str(tmp_path), fork_server], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == "completed"
    assert out["forked"] is (fork_server == "client")
    assert out["server"] != out["client"]
    pids = {step["pid"] for step in out["steps"].values()}
    assert len(pids) == 2 and not pids & {out["client"], out["server"]}  # each step its own process
    for step in out["steps"].values():
        assert step["ppid"] == out["server"]
        assert step["mark"] == "as imported"  # the step's module, not the client's copy of it
        assert step["env"] == "x\ny $HOME"  # the step's environment, byte for byte
