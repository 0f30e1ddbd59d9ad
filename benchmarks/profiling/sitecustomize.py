"""Tracing hooks for benchmarks/profile_local.py, loaded into *every* process of a run (client,
fork server, step children, exec'd steps) through ``PYTHONPATH=benchmarks/profiling``.

Active only when ``ORCAKIT_BENCH_TRACE`` names a folder. It wraps the runtime's functions (no
runtime file is edited) and appends one JSON line per call to ``<folder>/<pid>.jsonl``:
``{"pid", "ev", "t0", "t1"}`` with ``time.monotonic()`` (CLOCK_MONOTONIC is one clock for every
process on the machine, so timelines line up across processes). With ``ORCAKIT_BENCH_CPROFILE=1``
each step's ``StepRunner.run_step`` also runs under cProfile (``<folder>/step-<pid>.prof``).

The experiments this file once emulated (a warm run-store engine, ``gc.freeze()`` in the fork
server, its fast exit, a fork server forked from the client) are in the runtime now (issue 17:
``RunStore.warm_up``, ``zygote``, ``fork_server="client"``), and were dropped from here.
"""

from __future__ import annotations

import os
import sys
import time

_DIR = os.environ.get("ORCAKIT_BENCH_TRACE")


def _install() -> None:
    import functools
    import importlib.abc
    import json
    import threading

    state = {"pid": None, "fd": None}
    lock = threading.Lock()

    def emit(ev: str, t0: float, t1: float, **extra) -> None:
        pid = os.getpid()
        with lock:
            if state["pid"] != pid:  # first event in this process (or a forked child)
                state["pid"] = pid
                state["fd"] = os.open(os.path.join(_DIR, f"{pid}.jsonl"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            # cpu: this process's CPU seconds so far (a forked child starts again from 0)
            record = {"pid": pid, "ev": ev, "t0": t0, "t1": t1, "cpu": time.process_time(), **extra}
            os.write(state["fd"], (json.dumps(record) + "\n").encode())

    def wrap(owner, attr: str, label: str, detail=None) -> None:
        original = getattr(owner, attr, None)
        if original is None or getattr(original, "_bench_wrapped", False):
            return  # the runtime changed under us, or already wrapped: trace what exists

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            t0, cpu0 = time.monotonic(), time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                extra = detail(args, kwargs) if detail else {}
                emit(label, t0, time.monotonic(), cpu0=cpu0, **extra)

        wrapper._bench_wrapped = True
        setattr(owner, attr, wrapper)

    step_arg = lambda args, kwargs: {"step": args[2] if len(args) > 2 else kwargs.get("step_name")}  # noqa: E731

    def patch_run_store(module) -> None:
        cls = module.RunStore
        for name in ("__init__", "get_or_create_run", "start_attempt", "finish_attempt", "finalize_run", "step",
                     "set_run_status", "create_placeholder_run", "get_run", "mark_steps", "steps",
                     "attach_step", "warm_up"):
            if hasattr(cls, name):
                wrap(cls, name, f"store.{name}", step_arg if name in ("start_attempt", "finish_attempt", "step") else None)

    def patch_entrypoint(module) -> None:
        cls = module.StepRunner
        wrap(cls, "__init__", "runner.__init__")
        wrap(cls, "attach", "runner.attach")
        wrap(cls, "load_output", "runner.load_output")
        wrap(module, "import_source", "import_source")
        wrap(module, "materialize", "materialize")
        original = cls.run_step
        if os.environ.get("ORCAKIT_BENCH_CPROFILE") == "1":
            import cProfile

            def profiled(self, step_name):
                profile = cProfile.Profile()
                try:
                    return profile.runcall(original, self, step_name)
                finally:
                    profile.dump_stats(os.path.join(_DIR, f"step-{os.getpid()}.prof"))

            cls.run_step = profiled
        wrap(cls, "run_step", "runner.run_step", lambda args, kwargs: {"step": args[1]})

    def patch_artifacts(module) -> None:
        wrap(module.LocalArtifactStore, "put", "artifacts.put")
        wrap(module.LocalArtifactStore, "get", "artifacts.get")

    def patch_scheduler(module) -> None:
        cls = module.DagScheduler
        wrap(cls, "settle", "scheduler._settle", lambda args, kwargs: {"step": args[1]})
        wrap(cls, "run", "scheduler.run")
        original_put = None

    def patch_launchers(module) -> None:
        wrap(module.ForkServer, "launch", "forkserver.launch", lambda args, kwargs: {"step": args[1]["step"]})
        wrap(module.ForkServer, "__init__", "forkserver.__init__")
        wrap(module.ForkServer, "close", "forkserver.close")
        wrap(module, "exec_step", "exec_step", lambda args, kwargs: {"step": args[0][-1]})
        if not hasattr(module, "_Handle"):
            return
        original_set_exit = module._Handle._set_exit

        def set_exit(self, code):
            emit("handle.exit_seen", time.monotonic(), time.monotonic(), pid_child=self.pid)
            return original_set_exit(self, code)

        module._Handle._set_exit = set_exit

    def patch_orchestrator(module) -> None:
        wrap(module.LocalOrchestrator, "submit_pipeline", "orchestrator.submit_pipeline")
        wrap(module.LocalOrchestrator, "_cgroup", "orchestrator._cgroup")

    def patch_client(module) -> None:
        wrap(module, "run_snapshot", "client.run_snapshot")

    patches = {
        "orcakit.reference._runtime.run_store": patch_run_store,
        "orcakit.reference.entrypoint": patch_entrypoint,
        "orcakit.reference._runtime.artifact_store": patch_artifacts,
        "orcakit.reference._runtime.scheduler": patch_scheduler,
        "orcakit.reference.flavors.local.launchers": patch_launchers,
        "orcakit.reference.flavors.local.orchestrator": patch_orchestrator,
        "orcakit.reference._runtime.client": patch_client,
    }

    for name, patch in patches.items():
        _PATCHES.setdefault(name, []).append(patch)

    # Fork and exit of step children (the fork server forks; children end with os._exit).
    real_fork, real_exit = os.fork, os._exit

    def fork():
        t0 = time.monotonic()
        pid = real_fork()
        t1 = time.monotonic()
        emit("os.fork.child" if pid == 0 else "os.fork.parent", t0, t1, child=pid)
        return pid

    def _exit(code):
        emit("os._exit", time.monotonic(), time.monotonic(), code=code)
        real_exit(code)

    os.fork, os._exit = fork, _exit
    emit("process.start", time.monotonic(), time.monotonic(), argv=sys.argv[:4], exe=sys.orig_argv[:4])


#: module name -> functions that patch it right after it was imported
_PATCHES: dict[str, list] = {}


def _finder():
    import importlib.abc

    class _Finder(importlib.abc.MetaPathFinder):
        """Patches a module right after it is imported (before anyone uses it)."""

        def find_spec(self, fullname, path, target=None):
            if fullname not in _PATCHES:
                return None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    exec_module = spec.loader.exec_module

                    def exec_and_patch(module, _exec=exec_module, _name=fullname):
                        _exec(module)
                        for patch in _PATCHES[_name]:
                            patch(module)

                    spec.loader.exec_module = exec_and_patch
                    return spec
            return None

    return _Finder()


if _DIR:
    _install()
if _PATCHES:
    sys.meta_path.insert(0, _finder())
