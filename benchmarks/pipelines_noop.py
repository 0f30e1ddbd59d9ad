"""Benchmark pipelines for the local flavor, and the one-run script the benchmark times.

Run as a script, this module is the *whole process* being measured: a fresh interpreter that
imports orcakit, compiles one pipeline and runs it to the end on a fresh ``ORCAKIT_HOME`` with a
SQLite run store, then prints one JSON line with the in-process timings::

    python benchmarks/pipelines_noop.py --shape chain --n 50 --launcher fork --home /tmp/x

Step processes re-import this module by its file stem (``pipelines_noop``) from this folder
(PipelineSnapshot.source_roots), so the steps and the pipeline are module-level.

Shapes:

- ``chain``: ``s0 -> s1 -> ... -> s{n-1}``; each step takes the previous step's output as its
  input, so every edge is a real artifact write + read.
- ``fanout``: one root ``s0`` and ``n-1`` children ``s1..s{n-1}`` that each read the root's
  output (a star; the children are independent and run up to ``max_parallelism`` at once).
- ``parallel``: ``n`` independent steps ``s0..s{n-1}`` without inputs (no root to wait for).
"""

from __future__ import annotations

import time

_T_START = time.perf_counter()  # before orcakit is imported: "import" is part of the run

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import orcakit  # noqa: E402
from orcakit import pipeline, step  # noqa: E402

_T_IMPORTED = time.perf_counter()


@step
def noop(previous: int | None = None) -> int:
    """Does nothing: what is left is the orchestration overhead."""
    return 0 if previous is None else previous + 1


@step
def nap(previous: int | None = None, seconds: float = 0.2) -> int:
    """Sleeps: a stand-in for a step that does (non-CPU) work."""
    time.sleep(seconds)
    return 0


@pipeline
def bench(n: int, shape: str = "chain", sleep: float = 0.0) -> None:
    """``n`` steps named ``s0..s{n-1}``, shaped ``chain``, ``fanout`` or ``parallel`` (module doc)."""
    body = noop if sleep <= 0 else nap
    extra = {} if sleep <= 0 else {"seconds": sleep}
    if shape == "chain":
        previous = None
        for i in range(n):
            previous = body(previous, id=f"s{i}", **extra)
    elif shape == "fanout":
        root = body(None, id="s0", **extra)
        for i in range(1, n):
            body(root, id=f"s{i}", **extra)
    elif shape == "parallel":
        for i in range(n):
            body(None, id=f"s{i}", **extra)
    else:
        raise ValueError(f"unknown shape {shape!r}: use 'chain', 'fanout' or 'parallel'")


def stack_spec(home: str, launcher: str, max_parallelism: int = 8, extra: dict | None = None) -> orcakit.StackSpec:
    """The local flavor on a fresh folder: artifacts in ``home``, runs in ``home/runs.db``."""
    return orcakit.StackSpec(
        orchestrator=orcakit.ComponentSpec(
            flavor="local", config={"max_parallelism": max_parallelism, "launcher": launcher, **(extra or {})}
        ),
        artifact_store=os.path.join(home, "artifacts"),
        run_store=f"sqlite:///{home}/runs.db",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["chain", "fanout", "parallel"], default="chain")
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--launcher", choices=["fork", "exec"], default="fork")
    parser.add_argument("--home", required=True, help="a fresh folder: ORCAKIT_HOME, artifacts and runs.db")
    parser.add_argument("--sleep", type=float, default=0.0, help="each step sleeps this long (0: no-op)")
    parser.add_argument("--max-parallelism", type=int, default=8)
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                        help="more local-flavor config (e.g. an option of a patched runtime)")
    args = parser.parse_args(argv)
    extra = dict(item.split("=", 1) for item in args.config)
    os.environ["ORCAKIT_HOME"] = args.home  # never touch ~/.orcakit

    from orcakit.reference import run_snapshot

    t_compile = time.perf_counter()
    snapshot = bench.compile(stack_spec(args.home, args.launcher, args.max_parallelism, extra), args.n, args.shape, args.sleep)
    t_submit = time.perf_counter()
    run = run_snapshot(snapshot)
    t_end = time.perf_counter()
    steps = run_steps(args.home, run.id)
    memory = memory_peaks()
    print(
        json.dumps(
            {
                "status": run.status.value,
                "steps_completed": steps,
                "import_s": _T_IMPORTED - _T_START,
                "compile_s": t_submit - t_compile,
                "run_s": t_end - t_compile,  # compile -> run end (the in-process figure)
                "execute_s": t_end - t_submit,  # submit -> run end
                "script_s": t_end - _T_START,
                "run_id": run.id,
                **memory,
            }
        )
    )
    return 0 if run.status.value == "completed" else 1


def _status_kib(pid: int | str, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _pss_kib(pid: int | str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def memory_peaks() -> dict:
    """Peak RSS (VmHWM) of this client and of its fork server (still alive: it is shared by the
    client's runs and closed at exit), and their PSS now (pages they share counted once)."""
    from orcakit.reference.flavors.local.launchers import ForkServer

    servers = [server for server in ForkServer._servers.values() if not server._dead]
    server_pid = servers[0]._proc.pid if servers else None
    return {
        "client_hwm_kib": _status_kib("self", "VmHWM"),
        "server_hwm_kib": _status_kib(server_pid, "VmHWM") if server_pid else None,
        "client_pss_kib": _pss_kib("self"),
        "server_pss_kib": _pss_kib(server_pid) if server_pid else None,
        "server_forked_from_client": bool(servers and getattr(servers[0], "forked", False)),
    }


def run_steps(home: str, run_uuid: str) -> int:
    """How many steps of the run COMPLETED (a benchmark that does not check this measures
    nothing)."""
    from orcakit.reference import RunStore

    steps = RunStore(f"sqlite:///{home}/runs.db", create_tables=False).steps(run_uuid)
    return sum(1 for record in steps.values() if record.status.value == "completed")


if __name__ == "__main__":
    sys.exit(main())
