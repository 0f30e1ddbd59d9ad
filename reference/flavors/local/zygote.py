"""The per-run fork server of the local flavor (``launcher="fork"``).

Python start-up and imports cost ~250 ms a process; a step should cost milliseconds. So each run
starts one server that imports orcakit and loads the snapshot once, then forks a child per step
attempt. Each child is a real OS process of its own: it sets its environment to exactly the
step's, joins its cgroups, sends its output to the step log and runs the same
:class:`~orcakit.reference.entrypoint.StepRunner` that ``python -m ...entrypoint step`` runs.
User modules are imported in the child, after its environment is set.

Protocol (JSON lines): the client writes ``{"id", "step", "env", "cwd", "log", "cgroups"}``;
the server answers ``{"ready": pid}`` once, then ``{"id", "pid"}`` per fork and
``{"id", "exit"}`` when that child ended. The server is single-threaded, so forking is safe.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import sys
import traceback


def _child(runner, request: dict) -> int:
    os.setsid()  # its own process group, so a stop kills the step and everything it started
    log_fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    os.close(null_fd)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if request.get("cgroups"):
        from orcakit.reference.cgroups import join

        join(request["cgroups"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    return runner.run_step(request["step"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--artifact-store", required=True)
    parser.add_argument("--snapshot", required=True)
    args = parser.parse_args(argv)
    from orcakit.reference.entrypoint import StepRunner

    runner = StepRunner(args.artifact_store, args.snapshot)
    out = sys.stdout
    # The client stops a run by killing children; the server itself only ends on stdin EOF.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def send(message: dict) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    send({"ready": os.getpid()})
    selector = selectors.DefaultSelector()
    stdin_fd = sys.stdin.fileno()
    selector.register(stdin_fd, selectors.EVENT_READ, None)
    children: dict[int, tuple[int, int]] = {}  # pidfd -> (request id, pid)
    stdin_open = True
    pending = b""
    while stdin_open or children:
        for key, _ in selector.select():
            if key.data is None:
                # Raw reads, not sys.stdin.readline(): a buffered reader would swallow requests
                # that arrived together, and select() would never report them again.
                chunk = os.read(stdin_fd, 1 << 16)
                if not chunk:
                    selector.unregister(stdin_fd)
                    stdin_open = False
                    continue
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    if line.strip():
                        _fork(runner, json.loads(line), selector, children, send)
            else:
                pidfd = key.data
                request_id, pid = children.pop(pidfd)
                selector.unregister(pidfd)
                os.close(pidfd)
                _, status = os.waitpid(pid, 0)
                send({"id": request_id, "exit": os.waitstatus_to_exitcode(status)})


def _fork(runner, request: dict, selector, children: dict, send) -> None:
    """Fork one step process for ``request`` and watch it through a pidfd."""
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        code = 2
        try:
            code = _child(runner, request)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    pidfd = os.pidfd_open(pid)
    children[pidfd] = (request["id"], pid)
    selector.register(pidfd, selectors.EVENT_READ, pidfd)
    send({"id": request["id"], "pid": pid})


if __name__ == "__main__":
    main()
