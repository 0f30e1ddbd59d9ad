"""Step attempts as processes on this machine: the starting point's "backend".

TODO(backend): this module is what your backend replaces. A job service gives you the same four
operations on a job (start, wait, cancel, delete) and a way to list a run's jobs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

#: How long kill_processes waits for killed processes to be gone.
KILL_WAIT_SECONDS = 10.0


class StepProcess:
    """One started attempt: what the runtime's scheduler waits on (``wait``, ``kill``,
    ``describe_exit``, ``cleanup``)."""

    def __init__(self, command: list[str], environment: dict[str, str], log_path: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        # Step logs are the step's own business: readable by their owner only (SPEC SEC-1).
        with open(log_path, "ab", opener=lambda path, flags: os.open(path, flags, 0o600)) as log:
            self.process = subprocess.Popen(
                command,
                env=environment,  # exactly the step's environment: nothing added, nothing dropped
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group: a stop kills the step and everything it started, and a
                # Ctrl-C in the terminal reaches the client (which stops the run), not the step.
                start_new_session=True,
            )

    def wait(self) -> int:
        return self.process.wait()

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # it has ended already

    def describe_exit(self, code: int) -> str:
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"the step process {self.process.pid} was killed by {name}"
        return f"the step process {self.process.pid} exited with code {code}"

    def cleanup(self) -> None:
        """Nothing is left once the process has ended and been waited for."""


def run_processes(variable: str, run_id: str) -> list[int]:
    """Live processes of this machine whose environment carries ``variable=run_id``: every step
    started by exec (and whatever it started) shows the environment it was started with in
    /proc/PID/environ. The calling process is never one of them."""
    marker = f"{variable}={run_id}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                variables = handle.read().split(b"\0")
        except OSError:  # gone, or another user's process
            continue
        if marker in variables:  # a zombie's environ is empty: only live processes match
            found.append(int(entry))
    return sorted(found)


def kill_processes(variable: str, run_id: str) -> None:
    """Kill every process of the run (see :func:`run_processes`) and wait until they are gone."""
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while True:
        pids = run_processes(variable, run_id)
        if not pids or time.monotonic() > deadline:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.1)
