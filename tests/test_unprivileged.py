"""The local flavor as a normal user (issue 20): not root, no writable cgroup.

`scripts/test` runs as root, so these tests create an unprivileged user (``orcakit-test``, or
``nobody`` where users cannot be added) and run orcakit as that user with ``setpriv``: from a
venv of Debian's own Python (the test interpreter may live in root's home, which other users
cannot enter) with this checkout's wheel installed offline from uv's cache, pinned to the
versions of the test venv. What they show:

- the README's first example (cpu_count=0.5, memory="512MiB") is refused before anything runs,
  and the refusal says why (this user cannot create cgroups) and how to fix it;
- `flavor list --verbose`, `flavor describe` and the certification report all show the manifest
  this user gets (cpu and memory rejected), not the declaration;
- the conformance suite's quick profile passes for the local flavor as that user.

cgroup v2 cannot be mounted beside this machine's v1 controllers, so the v2 delegated-subtree
layout is emulated by a directory tree (:func:`test_a_delegated_cgroup_v2_subtree_is_used`): it
checks where orcakit puts its groups, not that the kernel enforces them.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from orcakit.reference.flavors.local import cgroups

ROOT = Path(__file__).resolve().parents[1]
USER = "orcakit-test"

README_FIRST_EXAMPLE = '''
from orcakit import pipeline, step, ResourceSettings, StepRetryConfig

@step
def load(n: int) -> list:
    return list(range(n))

@step(settings={"resources": ResourceSettings(cpu_count=0.5, memory="512MiB")},
      retry=StepRetryConfig(max_retries=2, delay=1, backoff=2), environment={"MODE": "fast"})
def train(data: list) -> float:
    return sum(data) / len(data)

@pipeline(environment={"EXPERIMENT": "baseline"})
def training(n: int = 100):
    train(load(n))

@step
def train_unlimited(data: list) -> float:
    return sum(data) / len(data)

@pipeline
def training_without_limits(n: int = 100):
    train_unlimited(load(n))
'''


def _readme_has_the_example() -> None:
    readme = (ROOT / "README.md").read_text()
    assert 'ResourceSettings(cpu_count=0.5, memory="512MiB")' in readme and "orcakit run mymodule:training" in readme


@pytest.fixture(scope="module")
def unprivileged(orcakit_wheel: Path, tmp_path_factory: pytest.TempPathFactory):
    """``(run(argv, cwd) -> CompletedProcess, workdir)``: commands as an unprivileged user."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user (scripts/test runs as root)")
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is missing"
    try:
        pwd.getpwnam(USER)
        user = USER
    except KeyError:
        made = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
                              capture_output=True, text=True)
        user = USER if made.returncode == 0 else "nobody"
    entry = pwd.getpwnam(user)
    python = next((p for p in ("/usr/bin/python3.11", "/usr/bin/python3.12", "/usr/bin/python3") if os.path.exists(p)), None)
    assert python, "no system Python an unprivileged user can run"
    base = Path(tempfile.mkdtemp(prefix="orcakit-unpriv-", dir="/var/tmp"))
    base.chmod(0o755)
    venv = base / "venv"
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    pins = base / "pins.txt"
    frozen = subprocess.run([uv, "pip", "freeze", "--python", sys.executable], capture_output=True, text=True, check=True).stdout
    pins.write_text("".join(line + "\n" for line in frozen.splitlines() if not line.startswith(("-e", "orcakit"))))
    for command in ([uv, "venv", "--quiet", "--python", python, str(venv)],
                    [uv, "pip", "install", "--offline", "--quiet", "--compile-bytecode", "--python", str(venv / "bin" / "python"),
                     "-c", str(pins), f"{orcakit_wheel}[conformance]"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    work = base / "work"
    work.mkdir()
    (work / "mymodule.py").write_text(README_FIRST_EXAMPLE)
    shutil.chown(work, entry.pw_uid, entry.pw_gid)
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(work), "ORCAKIT_HOME": str(work / ".orcakit"),
           "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8", "COLUMNS": "200"}

    def run(*argv: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [setpriv, f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups", "--", *argv],
            cwd=work, env=env, capture_output=True, text=True, timeout=timeout,
        )

    assert run("id", "-u").stdout.strip() == str(entry.pw_uid)
    yield run, work
    shutil.rmtree(base, ignore_errors=True)


def test_the_readme_first_example_as_a_normal_user_is_refused_with_why_and_fix(unprivileged) -> None:
    _readme_has_the_example()
    run, work = unprivileged
    refused = run("orcakit", "run", "mymodule:training", "--param", "n=1000")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    err = " ".join(refused.stderr.split())
    assert "step 'train' requests cpu (cpu_count=0.5), which orchestrator flavor 'local' cannot enforce" in err, err
    assert "may not create groups in the cgroup" in err  # why
    assert "systemd-run --user --scope -p Delegate=yes" in err and "run as root" in err  # how to fix
    # Without the limits the same pipeline runs, as that user, with its files owned by it.
    ran = run("orcakit", "run", "mymodule:training_without_limits", "--param", "n=1000")
    assert ran.returncode == 0 and "COMPLETED" in ran.stdout, ran.stdout + ran.stderr
    assert (work / ".orcakit" / "runs.db").stat().st_uid == (work).stat().st_uid


def test_on_a_cgroup_v2_layout_the_refusal_points_at_a_delegated_scope(unprivileged) -> None:
    """The v2 layout emulated: a root-owned tree with cpu and memory controllers that the user
    may not write, and the user's process in no group of its own."""
    run, work = unprivileged
    fake = work / "cgroup2"
    fake.mkdir()
    (fake / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    assert run("orcakit", "orchestrator", "register", "v2", "--flavor=local", f"--cgroup_root={fake}").returncode == 0
    assert run("orcakit", "stack", "register", "v2", "-o", "v2").returncode == 0
    refused = run("orcakit", "run", "mymodule:training", "--stack", "v2")
    err = " ".join(refused.stderr.split())
    assert refused.returncode == 1 and "may not write the cgroup v2 hierarchy" in err, err
    assert "systemd-run --user --scope -p Delegate=yes" in err
    described = json.loads(run("orcakit", "flavor", "describe", "local", "--output", "json").stdout)
    assert described["capabilities"]["on_this_host"]["memory"] == "rejected"


def test_the_manifest_shown_is_what_this_user_gets(unprivileged) -> None:
    run, _ = unprivileged
    listed = json.loads(run("orcakit", "flavor", "list", "--output", "json").stdout)
    local = next(f for f in listed if f["name"] == "local")["capabilities"]
    assert local["declared"]["cpu"] == "enforced"
    assert local["on_this_host"]["cpu"] == local["on_this_host"]["memory"] == "rejected"
    assert "may not create groups" in local["notes"]["cpu"]
    verbose = " ".join(run("orcakit", "flavor", "list", "--verbose").stdout.split())
    assert "cpu: rejected (declared enforced; not enforced" in verbose and "memory: rejected (declared enforced" in verbose
    described = " ".join(run("orcakit", "flavor", "describe", "local").stdout.split())
    assert "cpu on this host: not enforced here" in described and "Delegate=yes" in described


@pytest.mark.slow
def test_the_local_flavor_certifies_its_quick_profile_as_a_normal_user(unprivileged) -> None:
    run, work = unprivileged
    done = run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--flavor=local", "--conformance-profile=quick",
               f"--report-dir={work / 'report'}", timeout=1200)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
    report = json.loads((work / "report" / "report.json").read_text())
    text = json.dumps(report)
    assert '"cpu": "rejected"' in text and '"memory": "rejected"' in text, "the report's manifest is not this user's"


def test_a_delegated_cgroup_v2_subtree_is_used(tmp_path: Path) -> None:
    """A v2 layout where the hierarchy's root is not writable but this process's own group
    is (emulated: a directory tree; as root every file is writable, so the root is made to
    lack the controllers' files only where the test says so)."""
    root = tmp_path / "cgroup"
    scope = root / "user.slice" / "app.slice" / "run-1.scope"
    scope.mkdir(parents=True)
    for level in (root, scope):
        (level / "cgroup.controllers").write_text("cpu memory io\n")
        (level / "cgroup.subtree_control").write_text("")
        (level / "cgroup.procs").write_text("")
    if os.access(root, os.W_OK):  # root may write anything: the "not writable" branch needs another user
        host, reason = cgroups._delegated_v2(root, "/user.slice/app.slice/run-1.scope")
    else:
        host, reason = cgroups.probe_with_reason(str(root), own="/user.slice/app.slice/run-1.scope")
    assert reason == "" and host is not None and host.version == 2 and host.root == scope
    assert (scope / "orcakit-client" / "cgroup.procs").read_text() == str(os.getpid())  # out of the way
    assert "+cpu +memory" in (scope / "cgroup.subtree_control").read_text()
    assert (scope / "orcakit").is_dir()
    group = cgroups.create(host, "step-1", 0.5, 512 * 1024**2)
    assert group.dirs() == [scope / "orcakit" / "step-1"]
    assert (scope / "orcakit" / "step-1" / "cpu.max").read_text() == "50000 100000"
    # A process alone is refused with the reason when the group is not delegated.
    missing, why = cgroups._delegated_v2(root, "/")
    assert missing is None and "in no group of its own" in why


def test_a_read_only_orcakit_home_still_lists_runs(unprivileged) -> None:
    run, work = unprivileged
    home = work / "ro-home"
    env_home = f"ORCAKIT_HOME={home}"
    ran = run("env", env_home, "orcakit", "run", "mymodule:training_without_limits")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    home.chmod(0o555)  # the user can no longer write its home (nor SQLite its -wal/-shm there)
    try:
        listed = run("env", env_home, "orcakit", "runs", "list")
        assert listed.returncode == 0 and "training_without_limits" in listed.stdout, listed.stdout + listed.stderr
        assert "is read-only" in listed.stderr and "read-only copy" in listed.stderr
        refused = run("env", env_home, "orcakit", "run", "mymodule:training_without_limits")
        assert refused.returncode != 0 and "read-only" in refused.stderr and "ORCAKIT_HOME" in refused.stderr
    finally:
        home.chmod(0o755)
