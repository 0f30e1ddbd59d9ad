"""How the local flavor starts one step attempt as an OS process: forked from a per-run server
(``fork``) or as a fresh interpreter (``exec``). Both return handles the scheduler waits on."""

from __future__ import annotations

import atexit
import gc
import json
import os
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path

from orcakit import SubmissionError

from . import cgroups
from .interpreter import start_failed


def _owner_only(path: str, flags: int) -> int:
    # Step logs are the steps' own business: not readable by other users (SPEC SEC-1).
    return os.open(path, flags, 0o600)


def describe_exit(code: int, group: cgroups.StepCgroup | None, memory: str | None) -> str:
    """Why a step process ended with ``code``, in words."""
    if group is not None and group.oom_killed():
        return f"OOM-killed: the step exceeded its memory limit ({memory})"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the step process was killed by {name}"
    return f"the step process exited with code {code}"


class _Handle:
    """A started step process, shared by both launchers."""

    def __init__(self, group: cgroups.StepCgroup | None, memory: str | None) -> None:
        self.group, self.memory = group, memory
        self.pid: int | None = None
        self.code: int | None = None
        self.error: str | None = None  # why the step could not even start, if it could not
        self._started = threading.Event()
        self._done = threading.Event()

    def _set_pid(self, pid: int) -> None:
        self.pid = pid
        self._started.set()

    def _set_exit(self, code: int) -> None:
        self.code = code
        self._started.set()
        self._done.set()

    def wait(self) -> int:
        self._done.wait()
        return self.code

    def kill(self) -> None:
        self._started.wait(timeout=10)
        if self.pid is not None and not self._done.is_set():
            # The step leads its own process group: kill it whole, with anything it started.
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            except PermissionError:
                os.kill(self.pid, signal.SIGKILL)

    def describe_exit(self, code: int) -> str:
        return self.error or describe_exit(code, self.group, self.memory)

    def cleanup(self) -> None:
        if self.group is not None:
            self.group.remove()


class ForkServer:
    """Client side of :mod:`.zygote`. One server per (interpreter, working folder) in a client
    process, shared by all its runs: after the first run, a run costs no interpreter start."""

    _servers: dict[tuple[str, str], "ForkServer"] = {}
    _servers_lock = threading.Lock()

    @classmethod
    def shared(cls, python: str, env: dict[str, str], cwd: str, log: Path, from_client: bool = False) -> "ForkServer":
        with cls._servers_lock:
            server = cls._servers.get((python, cwd))
            if server is None or server._dead:
                server = cls._servers[(python, cwd)] = cls(python, env, cwd, log, from_client)
            return server

    @classmethod
    def close_all(cls) -> None:
        with cls._servers_lock:
            servers, cls._servers = list(cls._servers.values()), {}
        for server in servers:
            server.close()

    def __init__(self, python: str, env: dict[str, str], cwd: str, log: Path, from_client: bool = False) -> None:
        self._log = open(log, "ab", opener=_owner_only)
        # Forking this process is only safe while it has no other thread (a lock another thread
        # holds at fork time stays held forever in the child), and only for the same interpreter.
        forked = from_client and threading.active_count() == 1 and os.path.realpath(python) == os.path.realpath(sys.executable)
        try:
            self._proc = _ForkedServer(env, cwd, self._log) if forked else self._start_fresh(python, env, cwd)
        except OSError as exc:  # the interpreter is gone or not executable
            self._log.close()
            raise start_failed(python, exc) from None
        self.forked = forked
        self._lock = threading.Lock()
        self._handles: dict[int, _Handle] = {}
        self._next_id = 0
        self._ready = threading.Event()
        self._dead = False
        threading.Thread(target=self._read, daemon=True, name="orcakit-fork-server").start()

    def _start_fresh(self, python: str, env: dict[str, str], cwd: str) -> subprocess.Popen:
        return subprocess.Popen(
            [python, "-m", "orcakit.reference.flavors.local.zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            cwd=cwd,
            text=True,
            bufsize=1,
            start_new_session=True,  # a Ctrl-C in the terminal reaches the client, which stops the run
        )

    def _read(self) -> None:
        for line in self._proc.stdout:
            message = json.loads(line)
            if "ready" in message:
                self._ready.set()
                continue
            handle = self._handles.get(message["id"])
            if handle is None:
                continue
            if "pid" in message:
                handle._set_pid(message["pid"])
            else:
                self._handles.pop(message["id"], None)
                if "error" in message:
                    handle.error = f"the fork server could not load the step: {message['error']}"
                handle._set_exit(message.get("exit", 2))
        # The server is gone: nothing outstanding will ever report; fail those attempts.
        self._dead = True
        self._ready.set()
        for handle in list(self._handles.values()):
            handle._set_exit(-signal.SIGKILL)
        self._handles.clear()

    def launch(self, request: dict, group: cgroups.StepCgroup | None, memory: str | None) -> _Handle:
        self._ready.wait()
        if self._dead:
            raise SubmissionError(
                "the local flavor's fork server exited", fix=f"see its log: {self._log.name}; or use launcher='exec'"
            )
        handle = _Handle(group, memory)
        with self._lock:
            self._next_id += 1
            self._handles[self._next_id] = handle
            self._proc.stdin.write(json.dumps({"id": self._next_id, **request}) + "\n")
            self._proc.stdin.flush()
        return handle

    def close(self) -> None:
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        self._proc.wait()
        self._log.close()


atexit.register(ForkServer.close_all)


class _ForkedServer:
    """The fork server as a fork of this client (``fork_server="client"``): the part of
    ``Popen`` that :class:`ForkServer` uses. Saves a second interpreter's start-up and imports,
    and shares the client's memory pages instead of loading its own copy of everything."""

    def __init__(self, env: dict[str, str], cwd: str, log) -> None:
        to_server_r, to_server_w = os.pipe()
        from_server_r, from_server_w = os.pipe()
        gc.collect()  # leave no garbage (say, a closed run store) for the server to collect
        self.pid = os.fork()
        if self.pid == 0:
            os.close(to_server_w)  # else the server holds its own stdin open and never sees EOF
            os.close(from_server_r)
            _serve_forked(env, cwd, log.fileno(), to_server_r, from_server_w)
        os.close(to_server_r)
        os.close(from_server_w)
        self.stdin = os.fdopen(to_server_w, "w", buffering=1)
        self.stdout = os.fdopen(from_server_r, "r")

    def wait(self) -> int:
        return os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])


def _serve_forked(env: dict[str, str], cwd: str, log_fd: int, stdin_fd: int, stdout_fd: int) -> None:
    """In the forked child: become what ``python -m ...zygote`` would be. Never returns."""
    from . import zygote  # stdlib only; imported before anything can fail, for its exit

    code = 0
    try:
        # Objects inherited from the client (its run store's SQLite connections, open files)
        # must never be finalized here: frozen objects are never collected, and the client's
        # frames that hold them are never unwound (this function ends in os._exit).
        gc.freeze()
        os.setsid()  # as start_new_session=True: a Ctrl-C reaches the client, which stops the run
        os.dup2(stdin_fd, 0)
        os.dup2(stdout_fd, 1)
        os.dup2(log_fd, 2)
        os.close(stdin_fd)
        os.close(stdout_fd)
        sys.stdin = open(0, "r", closefd=False)
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", closefd=False, buffering=1)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)
        _forget_user_modules()
        zygote.main()
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        code = 1
    finally:
        zygote.exit_flushed(code)


def _forget_user_modules() -> None:
    """Steps import user code after their environment is set: drop the client's copies of
    modules that are neither the standard library, installed packages nor orcakit, so that a
    step imports them afresh, as under a freshly started server."""
    import sysconfig

    import orcakit
    import orcakit.reference

    roots = {sysconfig.get_path(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots |= {os.path.dirname(orcakit.__file__), os.path.dirname(orcakit.reference.__file__)}
    prefixes = tuple(os.path.join(root, "") for root in roots if root)
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and name != "__main__" and not os.path.abspath(file).startswith(prefixes):
            del sys.modules[name]


def exec_step(argv: list[str], env: dict[str, str], cwd: str, log: str, group: cgroups.StepCgroup | None, memory: str | None) -> _Handle:
    """A fresh interpreter for one step, joined to its cgroups between fork and exec."""
    handle = _Handle(group, memory)
    procs = group.procs_files() if group is not None else []
    with open(log, "ab", opener=_owner_only) as out:
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: cgroups.join(procs)) if procs else None,
            start_new_session=True,
        )
    handle._set_pid(proc.pid)
    threading.Thread(target=lambda: handle._set_exit(proc.wait()), daemon=True).start()
    return handle
