"""What a local run leaves on this host, found and killed from any process that knows the run ID.

A run's step processes and cgroups belong to the client process that drives the run; when that
client dies (SIGKILL, OOM killer) they stay behind. Another process (``orcakit runs stop``, the
next client reaping the orphaned run) has only the run ID, so the run leaves a trail:

- **the run's ledger**, a file named after the run ID in a per-user folder under /tmp: every
  step forked from the fork server appends its own PID and start time as its first act (so a
  client dying right after the fork cannot lose it), and the launcher appends each step cgroup it
  creates. Forked steps need it: ``/proc/PID/environ`` shows the environment a process was
  exec-ed with, and a forked step never was;
- **the run-ID variable** in ``/proc/PID/environ``: exec-ed steps, anything a step started, a
  dynamic run's orchestration process;
- **the cgroups' own member lists** (``cgroup.procs``).

The start time makes a recorded PID safe to kill: a PID reused by another process since does
not match. The ledger is removed when the run ends normally (``finish_run``) or is killed.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

#: Where ledgers live: fixed (not $TMPDIR), so that every process of this user on this host
#: finds the same one whatever its environment.
STATE_DIR = Path("/tmp") / f"orcakit-local-{os.getuid()}"
#: How long :func:`kill` waits for killed processes to exit and their cgroups to empty.
KILL_WAIT_SECONDS = 10.0


def ledger_path(run_id: str) -> Path:
    # Hashed: a run ID may hold any character and be 250 long.
    return STATE_DIR / f"{hashlib.sha256(run_id.encode()).hexdigest()[:32]}.ledger"


def open_ledger(run_id: str) -> str | None:
    """The run's ledger, ready for appending; None when the state folder is unusable (then only
    the environment and cgroup scans find leftovers)."""
    try:
        STATE_DIR.mkdir(mode=0o700, exist_ok=True)
        if STATE_DIR.stat().st_uid != os.getuid() or STATE_DIR.is_symlink():
            return None  # someone else's folder: never write where another user points us
    except OSError:
        return None
    return str(ledger_path(run_id))


def _start_time(pid: int | str) -> str | None:
    """A process's start time (clock ticks after boot), or None if it is gone or a zombie."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        try:
            stat = os.read(fd, 4096).decode()
        finally:
            os.close(fd)
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def _append(ledger: str, line: str) -> None:
    # os-level calls only: also runs in a child between fork and exec. One short O_APPEND
    # write per line, so concurrent writers never interleave.
    fd = os.open(ledger, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def record_self(ledger: str | None) -> None:
    """In a step process, first thing: add this process to the ledger."""
    if ledger:
        try:
            _append(ledger, f"pid {os.getpid()} {_start_time('self')}\n")
        except OSError:
            pass  # an unwritable ledger must not fail the step; the other scans remain


def record_cgroup(ledger: str | None, directories: list[Path]) -> None:
    if ledger:
        try:
            _append(ledger, "".join(f"cgroup {directory}\n" for directory in directories))
        except OSError:
            pass


def _ledger(run_id: str) -> tuple[dict[int, str], list[Path]]:
    try:
        lines = ledger_path(run_id).read_text().splitlines()
    except OSError:
        return {}, []
    pids, groups = {}, []
    for line in lines:
        kind, _, rest = line.partition(" ")
        if kind == "pid" and len(rest.split()) == 2:
            pid, start = rest.split()
            pids[int(pid)] = start
        elif kind == "cgroup" and rest:
            groups.append(Path(rest))
    return pids, groups


def _processes(run_id: str, run_id_env_var: str, pids: dict[int, str], groups: list[Path]) -> set[int]:
    """Live processes of the run: recorded (start time matching), carrying the run-ID
    variable, or in one of its cgroups."""
    found = {pid for pid, start in pids.items() if _start_time(pid) == start}
    found.update(marked_processes(run_id, run_id_env_var))
    for group in groups:
        try:
            found.update(int(pid) for pid in (group / "cgroup.procs").read_text().split())
        except OSError:
            continue
    found.discard(os.getpid())
    return {pid for pid in found if _start_time(pid) is not None}


def marked_processes(run_id: str, run_id_env_var: str) -> list[int]:
    """Processes (other than this one) whose environment, as /proc shows it, names the run."""
    marker = f"{run_id_env_var}={run_id}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if marker in (proc / "environ").read_bytes().split(b"\0"):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def _kill(pid: int) -> None:
    try:
        # A step leads its own process group: kill it whole, with anything it started. Never
        # the caller's own group.
        if os.getpgid(pid) == pid and pid != os.getpgrp():
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill(run_id: str, run_id_env_var: str) -> list[str]:
    """Kill every process the run left on this host, remove its cgroups and its ledger; return
    what was killed or removed, in words."""
    pids, groups = _ledger(run_id)
    done: list[str] = []
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while True:
        alive = _processes(run_id, run_id_env_var, pids, groups)
        if not alive or time.monotonic() > deadline:
            break
        for pid in sorted(alive):
            _kill(pid)
            done.append(f"process {pid}")
        time.sleep(0.05)
    for group in dict.fromkeys(groups):
        # A cgroup can be removed once its last process exited; that may take a moment.
        while group.is_dir():
            try:
                group.rmdir()
                done.append(f"cgroup {group}")
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
    remove_ledger(run_id)
    return list(dict.fromkeys(done))


def remove_ledger(run_id: str) -> None:
    try:
        ledger_path(run_id).unlink()
    except OSError:
        pass
