"""``orcakit run MODULE:PIPELINE``: compile a pipeline on a stack, run it with live progress (or
detached, ``--no-wait``), print the outcome; Ctrl-C stops the run when the flavor can.

Progress is read from the run store (:mod:`.progress`), never from the flavor, so it looks the
same for every flavor.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import TYPE_CHECKING, Any, Callable, NoReturn

import click

from orcakit import ConfigurationError, OrcakitError

from .output import EXIT_FAILURE, EXIT_INTERRUPTED, console, esc

if TYPE_CHECKING:
    from rich.console import Console

#: After Ctrl-C, how long to wait for a stopped run to reach a terminal status before exiting.
STOP_WAIT_SECONDS = 30.0


def load_pipeline(target: str) -> Any:
    """The ``@pipeline`` object named by ``MODULE:PIPELINE``, importing MODULE with the current
    directory on sys.path (as ``python -m`` would)."""
    import importlib

    from orcakit import Pipeline

    module_name, sep, attr = target.rpartition(":") if target.count(":") > 1 else target.partition(":")
    if not sep or not module_name or not attr:
        raise click.UsageError(
            f"{target!r}: give the pipeline as MODULE:PIPELINE or FILE.py:PIPELINE, e.g. my_pipelines:training "
            "or path/to/my_pipelines.py:training"
        )
    module_name, root = module_of(module_name)
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        value: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise ConfigurationError(
                f"cannot import module {module_name!r} ({exc})",
                fix="run orcakit from the folder that contains the module (it is put on sys.path), or install it",
            ) from exc
        raise ConfigurationError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}", fix="run with --debug for the traceback") from exc
    except OrcakitError:
        raise
    except Exception as exc:
        raise ConfigurationError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}", fix="run with --debug for the traceback"
        ) from exc
    for part in attr.split("."):
        if not hasattr(value, part):
            raise ConfigurationError(
                f"module {module_name!r} has no attribute {attr!r}",
                fix=f"check the name; pipelines in {module_name}: {', '.join(_pipelines_in(importlib.import_module(module_name))) or 'none'}",
            )
        value = getattr(value, part)
    if not isinstance(value, Pipeline):
        raise ConfigurationError(
            f"{target} is a {type(value).__name__}, not an orcakit pipeline",
            fix="decorate the function with @orcakit.pipeline",
        )
    return value


def module_of(name: str) -> tuple[str, str]:
    """``(module name, folder to import it from)`` for MODULE (from the current directory) or a
    file path ``path/to/mod.py`` (imported as ``mod`` from ``path/to``, which step processes
    then put on their sys.path too)."""
    if name.endswith(".py") or os.sep in name or (os.altsep and os.altsep in name):
        path = os.path.abspath(name)
        if not os.path.isfile(path):
            raise ConfigurationError(f"no such file {name!r}", fix="give the path of a Python file, or MODULE:PIPELINE")
        stem = os.path.splitext(os.path.basename(path))[0]
        if not stem.isidentifier():
            raise ConfigurationError(
                f"{name!r} cannot be imported as a module: {stem!r} is not a Python identifier",
                why="every step re-imports its function by module name in its own process",
                fix="rename the file (letters, digits and '_', not starting with a digit)",
            )
        return stem, os.path.dirname(path)
    return name, os.getcwd()


def _pipelines_in(module: Any) -> list[str]:
    from orcakit import Pipeline

    return sorted(name for name, value in vars(module).items() if isinstance(value, Pipeline))


def parse_params(items: tuple[str, ...], pipeline: Any = None) -> dict[str, Any]:
    """``key=value`` pairs. With ``pipeline``, each value is read as its declared parameter type
    and checked (``Pipeline.parameters_from_text``); without, a value is JSON when it parses as
    JSON (``3``, ``[1,2]``, ``true``), else the string itself."""
    texts: dict[str, str] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.UsageError(f"--param {item!r}: give it as KEY=VALUE")
        if key in texts:
            raise click.UsageError(f"--param {key!r} is given twice")
        texts[key] = raw
    if pipeline is not None:
        return pipeline.parameters_from_text(texts)
    params: dict[str, Any] = {}
    for key, raw in texts.items():
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


@click.command("run")
@click.argument("target", metavar="MODULE:PIPELINE")
@click.option("--stack", "stack_name", default=None, help="Run on this stack instead of the active one.")
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE", help="A pipeline parameter, read and checked as its declared type (JSON for lists, mappings, models); repeatable.")
@click.option("--no-wait", is_flag=True, help="Return once the run is submitted; it continues in the background.")
@click.option("--logs", "show_logs", is_flag=True, help="Also print what the steps write (stdout/stderr), live, each line prefixed with its step.")
def run_command(target: str, stack_name: str | None, params: tuple[str, ...], no_wait: bool, show_logs: bool) -> None:
    """Run a pipeline: orcakit run my_module:my_pipeline -p epochs=3 (or path/to/my_module.py:my_pipeline).

    Shows live progress (a table on a terminal, one line per step event otherwise), then the
    run ID, status and duration. Exit code 0 when the run COMPLETED, 1 otherwise, 130 after
    Ctrl-C (the run is stopped first when the orchestrator can stop runs).
    """
    from .._runtime.config_store import ConfigStore

    pipeline = load_pipeline(target)
    arguments = parse_params(params, pipeline)
    config = ConfigStore()
    stack_spec = config.stack_spec(stack_name)
    snapshot = pipeline.compile(stack_spec, **arguments)
    # Step processes re-import the pipeline's module from where `orcakit run` imported it (the
    # default root would be the folder of the `orcakit` script, which holds no user code).
    snapshot = snapshot.model_copy(update={"source_roots": [module_of(target.rpartition(":")[0])[1]]})
    out = console()
    where = f"stack {stack_name or config.load().active_stack} (orchestrator {stack_spec.orchestrator.name}, flavor {stack_spec.orchestrator.flavor})"
    count = len(snapshot.steps)
    kind = "(dynamic)" if snapshot.dynamic else f"({count} step{'' if count == 1 else 's'})"
    out.print(f"running pipeline [bold]{esc(snapshot.pipeline_name)}[/] {kind} on {esc(where)}", soft_wrap=True)
    if no_wait:
        run_id, log_path, pid = submit_detached(snapshot, config.home)
        out.print(f"submitted run [bold]{run_id}[/]; follow it with: orcakit runs show {run_id[:12]}", soft_wrap=True)
        out.print(f"progress log: {esc(log_path)}", soft_wrap=True)
        out.print(f"driver process: {pid} (`kill -INT {pid}` stops the run like Ctrl-C)", soft_wrap=True)
        return
    # `kill PID` (SIGTERM: a service manager, a CI timeout) stops the run exactly as Ctrl-C does,
    # rather than ending this process and stranding the run it drives.
    import signal

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    tail = LogTail(out) if show_logs else None
    try:
        record = run_with_progress(snapshot, out, on_run=tail.start if tail else None, on_end=tail.stop if tail else None)
    finally:
        if tail is not None:
            tail.stop()
    click.get_current_context().exit(0 if record.status.value == "completed" else EXIT_FAILURE)


class LogTail:
    """Prints the new lines of a run's step logs (the folder its metadata names) every half
    second, each as ``[step] line``, until stopped (then once more, so nothing is missed)."""

    def __init__(self, out: "Console", interval: float = 0.5) -> None:
        import threading

        self.out, self.interval = out, interval
        self._done = threading.Event()
        self._thread: Any = None
        self._folder: Any = None
        self._seen: dict[str, int] = {}
        self._partial: dict[str, bytes] = {}

    def start(self, run: Any) -> None:
        import threading
        from pathlib import Path

        folder = run.metadata.get("logs")
        if not folder:
            return
        self._folder = Path(folder)
        self._thread = threading.Thread(target=self._loop, name="orcakit-log-tail", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._done.wait(self.interval):
            self._print_new()

    def _print_new(self, final: bool = False) -> None:
        try:
            logs = sorted(p for p in self._folder.glob("*.log") if not p.name.startswith("_"))
        except OSError:
            return
        for path in logs:
            step = path.stem
            try:
                with open(path, "rb") as handle:
                    handle.seek(self._seen.get(step, 0))
                    data = handle.read()
            except OSError:
                continue
            self._seen[step] = self._seen.get(step, 0) + len(data)
            *lines, rest = (self._partial.get(step, b"") + data).split(b"\n")
            self._partial[step] = rest
            if final and rest:
                lines.append(rest)
            for line in lines:
                self.out.print(f"[dim]\\[{esc(step)}][/] {esc(line.decode(errors='replace'))}", soft_wrap=True, highlight=False)

    def stop(self) -> None:
        if self._done.is_set():
            return
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._print_new(final=True)


def run_with_progress(
    snapshot: Any, out: "Console", on_run: Callable[[Any], None] | None = None, live: bool | None = None,
    on_end: Callable[[], None] | None = None,
) -> Any:
    """Run ``snapshot``, rendering progress from the run store; print the outcome; return the
    final run record. Ctrl-C prints what happened to the run and exits 130.

    ``on_run(run)`` is called once the backend accepted the run; ``live`` forces the renderer
    (default: a live table when ``out`` is a terminal)."""
    from .._runtime.client import run_snapshot
    from .progress import ProgressMonitor
    from .._runtime.run_store import RunStore

    state: dict[str, Any] = {}

    def on_submitted(run: Any, orchestrator: Any) -> None:
        state["run"], state["orchestrator"] = run, orchestrator
        store = RunStore(snapshot.stack.run_store, create_tables=False)
        state["store"] = store
        if on_run is not None:
            on_run(run)
        state["monitor"] = ProgressMonitor(out, store, run.id, snapshot.topological_order(), live=live).start()

    def stop_monitor() -> None:
        if "monitor" in state:
            state["monitor"].stop()

    try:
        try:
            record = run_snapshot(snapshot, wait=True, on_submitted=on_submitted)
            if not record.status.is_finished:
                # The flavor gave no way to wait (fire-and-forget backend): follow the run store.
                record = _follow(state["store"], record.id)
        except KeyboardInterrupt:
            stop_monitor()
            _interrupted(out, state)
        except BaseException:
            stop_monitor()
            raise
        stop_monitor()
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        _interrupted(out, state, twice=True)
    if on_end is not None:
        on_end()  # e.g. the last step output lines, before the outcome
    _print_outcome(out, record, state.get("store"))
    return record


def _follow(store: Any, run_id: str, poll: float = 0.5, timeout: float | None = None) -> Any:
    """Poll the run store until the run is terminal (or ``timeout`` seconds passed)."""
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    record = store.get_run(run_id)
    while not record.status.is_finished and (deadline is None or time.monotonic() < deadline):
        time.sleep(poll)
        record = store.get_run(run_id)
    return record


def _interrupted(out: "Console", state: dict[str, Any], twice: bool = False) -> NoReturn:
    err = console(stderr=True)
    run = state.get("run")
    if run is None:
        err.print("[yellow]interrupted before the run was submitted; nothing is running[/]")
        raise SystemExit(EXIT_INTERRUPTED)
    store, orchestrator = state["store"], state["orchestrator"]
    if not twice and orchestrator.capabilities.stop_run:
        # run_snapshot asked the backend to stop the run and waited for it; still, follow the
        # run store until the run is terminal before exiting, so the exit does not abandon a run
        # the client process drives (a second Ctrl-C gives up waiting).
        try:
            _follow(store, run.id, poll=0.1, timeout=STOP_WAIT_SECONDS)
        except KeyboardInterrupt:
            twice = True
        except Exception:  # the store may be what hung; report what we can below
            pass
    try:
        current = store.get_run(run.id).status
        status, finished = current.value.upper(), current.is_finished
    except Exception:
        status, finished = "UNKNOWN", False
    if twice:
        err.print(f"[yellow]interrupted again: run {run.id} is {status}; it may still be stopping[/]")
    elif orchestrator.capabilities.stop_run and finished:
        err.print(f"[yellow]interrupted: run {run.id} was stopped; it ended {status}[/]")
    elif orchestrator.capabilities.stop_run:
        err.print(f"[yellow]interrupted: asked the backend to stop run {run.id}, but after {STOP_WAIT_SECONDS:g}s it is still {status}[/]")
    else:
        err.print(
            f"[yellow]interrupted: orchestrator flavor {orchestrator.flavor.name!r} cannot stop runs, so run {run.id} "
            f"continues on the backend (status {status})[/]"
        )
    err.print(f"  see: orcakit runs show {run.id[:12]}")
    raise SystemExit(EXIT_INTERRUPTED)


def _print_outcome(out: "Console", record: Any, store: Any) -> None:
    from .progress import format_duration, run_duration, seconds_between, short_reason

    status = record.status
    colour = "green" if status.value == "completed" else "red"
    # What the user waited for (submission included), and the steps' part of it.
    waited = run_duration(record)
    running = seconds_between(record.started_at, record.ended_at)
    out.print(f"run ID:   {record.id}", highlight=False)
    if record.orchestrator_run_id:
        out.print(f"backend:  {esc(record.orchestrator)} run {esc(record.orchestrator_run_id)}", highlight=False)
    out.print(f"status:   [bold {colour}]{status.value.upper()}[/]")
    out.print(f"duration: {format_duration(waited) or '-'}" + (f" (steps: {format_duration(running)})" if running is not None else ""))
    if status.value != "completed":
        if record.reason:
            out.print(f"reason:   {esc(record.reason)}", soft_wrap=True)
        if store is not None:
            for name, step in store.steps(record.id).items():
                if step.status.value == "failed":
                    out.print(f"  failed step {esc(name)}: {esc(short_reason(step.reason, 300))}", soft_wrap=True)
        logs = record.metadata.get("logs")
        if logs:
            out.print(f"step logs: {esc(logs)}", soft_wrap=True)


def submit_detached(snapshot: Any, home: Any) -> tuple[str, str, int]:
    """``--no-wait``: run the client half in a detached child process and return the run ID.

    The client half cannot simply return early: a flavor's ``wait_for_completion`` may be what
    drives the run (the local flavor schedules steps from a thread of the client process), so
    exiting would abandon the run half-way. The child (its own session, so a closed terminal
    does not end it) submits, reports the run ID through a pipe, waits for the run to end and
    writes plain progress to a log file.
    """
    from pathlib import Path

    log_dir = Path(home) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"run-{snapshot.snapshot_id}.log"
    sys.stdout.flush()
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child; observed through the run store
        code = 1
        try:
            os.close(read_fd)
            os.setsid()
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            import signal

            from rich.console import Console

            # `kill -INT PID` or `kill PID` stops the run the way Ctrl-C does in the foreground.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            log_console = Console(file=open(1, "w", closefd=False, buffering=1), width=200, highlight=False, force_terminal=False)

            def report(run: Any) -> None:
                os.write(write_fd, (json.dumps({"run_id": run.id, "pid": os.getpid()}) + "\n").encode())
                os.close(write_fd)

            try:
                record = run_with_progress(snapshot, log_console, on_run=report, live=False)
                code = 0 if record.status.value == "completed" else EXIT_FAILURE
            except SystemExit as exc:  # interrupted: _interrupted() already logged what happened
                code = exc.code if isinstance(exc.code, int) else EXIT_FAILURE
        except BaseException as exc:
            try:
                message = {"error": getattr(exc, "what", str(exc)), "fix": getattr(exc, "fix", None)}
                os.write(write_fd, (json.dumps(message) + "\n").encode())
            except OSError:
                pass  # already reported the run ID; the error is in the log
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        line = pipe.readline()
    try:
        message = json.loads(line) if line else {}
    except ValueError:
        message = {}
    if "run_id" in message:
        return message["run_id"], str(log_path), message["pid"]
    from orcakit import SubmissionError

    raise SubmissionError(
        f"the run was not submitted: {message.get('error') or 'the background process exited early'}",
        fix=message.get("fix") or f"see {log_path}",
    )
