"""The fork server of the local flavor (``launcher="fork"``).

Python start-up and imports cost hundreds of milliseconds a process; a step should cost
milliseconds. So a client process starts one server that imports orcakit once and then forks a
child per step attempt, for every run the client submits (snapshots are loaded on first use and
kept). Each child is a real OS process of its own: it sets its environment to exactly the
step's, joins its cgroups, sends its output to the step log and runs the same
:class:`~orcakit.reference.StepRunner` that ``python -m ...entrypoint step`` runs.
User modules are imported in the child, after its environment is set.

Protocol (JSON lines): the client writes ``{"id", "artifact_store", "snapshot", "step", "env",
"cwd", "log", "cgroups", "ledger"}``; the server answers ``{"ready": pid}`` once, then ``{"id", "pid"}``
per fork (or ``{"id", "error"}`` when the snapshot cannot be loaded) and ``{"id", "exit"}``
when that child ended. The server is single-threaded, so forking is safe.
"""

from __future__ import annotations

import gc
import json
import os
import selectors
import signal
import sys
import traceback
from collections import OrderedDict
from typing import NoReturn

#: Snapshots kept loaded (a client rarely has more runs under way at once).
_CACHE_SIZE = 32


def exit_flushed(code: int) -> NoReturn:
    """End a forked child: what it printed is flushed, then ``os._exit`` (never the parent's
    atexit handlers or finalizers, which belong to the process it was forked from)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _child(runner, request: dict) -> int:
    os.setsid()  # its own process group, so a stop kills the step and everything it started
    if request.get("ledger"):
        from orcakit.reference.flavors.local.leftovers import record_self

        record_self(request["ledger"])  # first: findable even if the client dies right now
    log_fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    os.close(null_fd)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if request.get("cgroups"):
        from orcakit.reference.flavors.local.cgroups import join

        join(request["cgroups"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    # sys.path was fixed when the server started; honour the step's own PYTHONPATH as a fresh
    # interpreter would.
    for entry in reversed([p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    return runner.run_step(request["step"])


class _Runners:
    """StepRunners by (artifact store, snapshot), built in the server before forking."""

    def __init__(self) -> None:
        self._runners: OrderedDict[tuple[str, str], object] = OrderedDict()

    def get(self, artifact_store: str, snapshot_id: str, env: dict[str, str]):
        key = (artifact_store, snapshot_id)
        if key not in self._runners:
            from orcakit.reference import StepRunner

            # The stored snapshot is sealed: the step's environment carries its secrets.
            runner = self._runners[key] = StepRunner(artifact_store, snapshot_id, environ=env)
            try:
                runner.store.warm_up()  # every forked step inherits the warm engine
            except Exception:  # noqa: BLE001 - only an optimisation: each step then pays for itself
                traceback.print_exc()
            # Children's garbage collections skip what the server holds now (imports, the runner,
            # the warm engine): a full collection in a child would walk, and so copy, every page
            # of it. Collected first, so that no garbage is frozen with it.
            gc.collect()
            gc.freeze()
            if len(self._runners) > _CACHE_SIZE:
                self._runners.popitem(last=False)
        self._runners.move_to_end(key)
        return self._runners[key]


def main() -> None:
    from orcakit.reference import StepRunner  # noqa: F401 - the step entrypoint: the imports every child shares

    runners = _Runners()
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
                        request = json.loads(line)
                        try:
                            runner = runners.get(request["artifact_store"], request["snapshot"], request["env"])
                        except Exception as exc:  # noqa: BLE001 - reported to the client
                            traceback.print_exc()
                            send({"id": request["id"], "error": f"{type(exc).__name__}: {exc}"})
                            continue
                        _fork(runner, request, selector, children, send)
            else:
                pidfd = key.data
                request_id, pid = children.pop(pidfd)
                selector.unregister(pidfd)
                os.close(pidfd)
                _, status = os.waitpid(pid, 0)
                send({"id": request_id, "exit": os.waitstatus_to_exitcode(status)})
    # Every child has ended and been reported. Skip interpreter teardown (~100 ms with
    # SQLAlchemy loaded): the client waits for this process when it exits.
    out.flush()
    os._exit(0)


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
            exit_flushed(code)
    pidfd = os.pidfd_open(pid)
    children[pidfd] = (request["id"], pid)
    selector.register(pidfd, selectors.EVENT_READ, pidfd)
    send({"id": request["id"], "pid": pid})


if __name__ == "__main__":
    main()
