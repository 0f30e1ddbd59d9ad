"""A generated flavor installs as its README says (issue 20): the README's "Try it" block, run
line by line in a fresh venv with plain pip (no uv, no constraints), from the project folder.
orcakit is on no package index; the README's pip line names the orcakit the project was
generated from (here: this checkout), and its other requirements come from the index pip is
configured with."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from orcakit.reference.cli import cli
from tests.limits import WHOLE_SUITE_SECONDS

ROOT = Path(__file__).resolve().parents[1]


def try_it_block(readme: str) -> list[str]:
    block = re.search(r"## Try it\s+```bash\n(.*?)```", readme, re.S)
    assert block, "the generated README has no 'Try it' bash block"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.slow
def test_a_generated_flavor_installs_as_its_readme_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["flavor", "new", "--no-input", "flavor_name=readme-check"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    project = tmp_path / "orcakit-readme-check"
    lines = try_it_block((project / "README.md").read_text())
    install = next(line for line in lines if line.startswith("pip install"))
    # the pinned path: this checkout, as pip takes it; and `flavor new` says the same
    assert f"orcakit @ {ROOT.as_uri()}" in install, install
    assert install.split("#")[0].strip() in result.output
    # Run the block as a user would paste it: a shell in the project folder, `python` on PATH,
    # nothing of this test's environment (no PYTHONPATH, no VIRTUAL_ENV).
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV", "ORCAKIT_DEBUG")}
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python").symlink_to(sys.executable)  # the `python` the README's first line calls
    env["PATH"] = f"{bindir}:{env.get('PATH', '')}"
    env["ORCAKIT_HOME"] = str(tmp_path / "home")
    script = "set -ex\n" + "\n".join(lines) + "\n"
    done = subprocess.run(["bash", "-c", script], cwd=project, env=env, capture_output=True, text=True, timeout=WHOLE_SUITE_SECONDS)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert (project / ".venv" / "bin" / "orcakit").exists()
    assert "passed" in done.stdout and "failed" not in done.stdout.splitlines()[-1], done.stdout[-2000:]
