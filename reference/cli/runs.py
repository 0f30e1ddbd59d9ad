"""``orcakit runs list | show | stop``: recorded runs, read from a stack's run store (default:
the active stack's), whichever process or machine ran them."""

from __future__ import annotations

import json
from typing import Any

import click

from orcakit import ConfigurationError, OrcakitError

from .output import console, emit, esc, output_option


@click.group("runs")
def runs_group() -> None:
    """Recorded runs, from a stack's run store (default: the active stack's)."""


def _stack(stack_name: str | None) -> tuple[str, Any]:
    """``(name, StackSpec)`` of the stack asked for (default: the active one)."""
    from .._runtime.config_store import ConfigStore

    config_store = ConfigStore()
    name = stack_name or config_store.load().active_stack
    return name, config_store.stack_spec(name)


def _run_store(stack_name: str | None) -> Any:
    """The stack's run store, its orphaned runs already reaped (so none shows as running forever)."""
    from .._runtime.run_store import RunStore
    from .orphans import reap_orphans

    from orcakit import StoreError

    _, stack_spec = _stack(stack_name)
    try:
        store = RunStore(stack_spec.run_store)
        reap_orphans(store, stack_spec)
    except StoreError as exc:
        if " is read-only" not in exc.what:
            raise
        return _read_only_copy(stack_spec.run_store, exc.what)
    return store


def _read_only_copy(url: str, why: str) -> Any:
    """A SQLite run store this user may read but not write (a read-only ORCAKIT_HOME, another
    user's store): SQLite cannot even read a WAL database without writing its -shm file beside
    it, so the commands that only read open a private copy (nothing is written to the original,
    and no orphan is reaped)."""
    import atexit
    import shutil
    import tempfile
    from pathlib import Path

    from .._runtime.run_store import RunStore
    from .._runtime.stores import sqlite_database

    source = Path(sqlite_database(url) or "").expanduser()
    folder = Path(tempfile.mkdtemp(prefix="orcakit-readonly-store-"))
    atexit.register(shutil.rmtree, folder, True)
    for suffix in ("", "-wal"):
        if Path(f"{source}{suffix}").is_file():
            shutil.copyfile(f"{source}{suffix}", folder / f"runs.db{suffix}")
    console(stderr=True).print(f"[dim]note: {esc(why)}; showing a read-only copy of it[/]", soft_wrap=True)
    return RunStore(f"sqlite:///{folder / 'runs.db'}")


def find_run(store: Any, run_id: str, stack_name: str | None) -> Any:
    """The run ``run_id`` (or a prefix) in ``store``; when it is not there, an error that names
    the store searched and the other stacks whose run stores hold a match (a run made before
    `orcakit stack register ... --set` lives in the previous stack's store)."""
    from orcakit import StoreError

    from .._runtime.config_store import ConfigStore
    from .._runtime.run_store import RunStore, redact_url

    try:
        return store.get_run(run_id)
    except StoreError as exc:
        if not exc.what.startswith("no run "):
            raise
    config_store = ConfigStore()
    config = config_store.load()
    here = stack_name or config.active_stack
    elsewhere: list[str] = []
    for name in sorted(config.stacks):
        if name == here:
            continue
        url = config.stacks[name].run_store
        if url == store.url:
            continue
        try:
            other = RunStore(url, create_tables=False)
            try:
                other.get_run(run_id)
                elsewhere.append(name)
            finally:
                other.close()
        except Exception:  # noqa: BLE001 - a store that cannot be read holds nothing we can show
            continue
    what = f"no run {run_id!r} in the run store of stack {here!r} ({redact_url(store.url)})"
    if elsewhere:
        stacks = ", ".join(repr(name) for name in elsewhere)
        raise StoreError(
            f"{what}; the run store of stack {stacks} has it",
            why="each stack has its own run store; `orcakit runs` reads the active stack's unless told otherwise",
            fix=f"orcakit runs show {run_id} --stack {elsewhere[0]}",
        )
    raise StoreError(what, why="each stack has its own run store; no other registered stack's store has such a run either",
                     fix="list runs with `orcakit runs list` (add --stack NAME for another stack's)")


def _complete_run_ids(ctx: click.Context, _param: Any, incomplete: str) -> list[Any]:
    """Shell completion of RUN: the recent runs of the stack asked for, with their pipeline and
    status as help (nothing when the store cannot be read: completion never prints errors)."""
    from click.shell_completion import CompletionItem

    try:
        from .._runtime.run_store import RunStore

        _, stack_spec = _stack(ctx.params.get("stack_name"))
        store = RunStore(stack_spec.run_store, create_tables=False)
        try:
            records = store.list_runs(limit=50)
        finally:
            store.close()
    except Exception:  # noqa: BLE001
        return []
    return [CompletionItem(r.id, help=f"{r.pipeline_name} {r.status.value}") for r in records if r.id.startswith(incomplete)]


_RUN_ARGUMENT = click.argument("run_id", metavar="RUN", shell_complete=_complete_run_ids)


def _when(value: Any) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else ""


_STACK_OPTION = click.option("--stack", "stack_name", default=None, help="Read this stack's run store instead of the active stack's.")


def _run_data(record: Any) -> dict[str, Any]:
    from .._runtime.config_store import redact_config

    from .progress import run_duration

    return {
        "id": record.id, "pipeline": record.pipeline_name, "flavor": record.orchestrator, "status": record.status,
        "backend_run_id": record.orchestrator_run_id, "snapshot_id": record.snapshot_id,
        "created_at": record.created_at, "started_at": record.started_at, "ended_at": record.ended_at,
        "duration_seconds": run_duration(record), "reason": record.reason, "metadata": redact_config(record.metadata),
    }


@runs_group.command("list")
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(min=1), help="How many runs, newest first.")
@_STACK_OPTION
@output_option
def runs_list(limit: int, stack_name: str | None, output_format: str) -> None:
    """List recent runs, newest first."""
    from rich.table import Table

    from .progress import STATUS_STYLE, format_duration, run_duration

    records = _run_store(stack_name).list_runs(limit=limit)
    if emit([_run_data(record) for record in records], output_format):
        return
    out = console()
    if not records:
        out.print("no runs yet")
        return
    from rich import box

    # Narrow terminals (80 columns): the run ID (what `runs show` takes) and the status (what
    # one looks for) stay whole; the flavor goes and the creation time gets shorter.
    narrow = out.width < 110
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False) if narrow else Table()
    table.add_column("run ID", no_wrap=True, min_width=32)
    table.add_column("pipeline", overflow="fold")
    if not narrow:
        table.add_column("flavor", overflow="fold")
    table.add_column("status", no_wrap=True, min_width=max(len(record.status.value) for record in records))
    table.add_column("created", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    for record in records:
        style = STATUS_STYLE.get(record.status, ("", "", ""))[1]
        row = [record.id, esc(record.pipeline_name)]
        if not narrow:
            row.append(esc(record.orchestrator))
        row += [
            f"[{style}]{record.status.value}[/]" if style else record.status.value,
            record.created_at.astimezone().strftime("%m-%d %H:%M") if narrow else _when(record.created_at),
            format_duration(run_duration(record)),
        ]
        table.add_row(*row)
    out.print(table)


#: Step outputs larger than this (bytes, local artifact store) are not read to be summarised.
_LARGEST_SHOWN = 16 * 2**20


def _outputs(stack_spec: Any, record: Any, steps: dict[str, Any]) -> dict[str, str]:
    """Each step output, summarised for a table (an output that cannot be loaded says why)."""
    from .._runtime.outputs import StepOutputs, summarise

    import os

    loader = StepOutputs.of(record.id, stack_spec)
    shown = {}
    for name, step in steps.items():
        if not step.outputs:
            continue
        uri = step.outputs.get("output", "")
        size = os.path.getsize(uri) if uri and os.path.isfile(uri) else None
        if size is not None and size > _LARGEST_SHOWN:
            # a summary is not worth reading a large artifact (run.outputs[...] reads it in Python)
            shown[name] = f"({size / 2**20:.0f} MiB, not read: {uri})"
            continue
        try:
            shown[name] = summarise(loader[name])
        except Exception as exc:  # noqa: BLE001 - one unreadable output must not hide the run
            shown[name] = f"(cannot load: {type(exc).__name__}: {exc})"
    return shown


@runs_group.command("show")
@_RUN_ARGUMENT
@_STACK_OPTION
@output_option
@click.option("--no-outputs", is_flag=True, help="Do not read the steps' outputs from the artifact store.")
def runs_show(run_id: str, stack_name: str | None, output_format: str, no_outputs: bool) -> None:
    """Show a run (an ID prefix is enough): its record, its steps with their outputs (summarised)
    and every attempt."""
    from rich.table import Table

    from .progress import STATUS_STYLE, format_duration, run_duration, seconds_between

    store = _run_store(stack_name)
    _, stack_spec = _stack(stack_name)
    record = find_run(store, run_id, stack_name)
    steps = store.steps(record.id)
    attempts = list(store.attempts(record.id))
    outputs = {} if no_outputs else _outputs(stack_spec, record, steps)
    data = {
        **_run_data(record),
        "steps": {name: {"status": step.status, "attempts": step.attempts, "started_at": step.started_at,
                         "ended_at": step.ended_at, "duration_seconds": seconds_between(step.started_at, step.ended_at),
                         "reason": step.reason, "output": outputs.get(name), "output_uri": step.outputs.get("output")}
                  for name, step in steps.items()},
        "attempts": attempts,
    }
    if emit(data, output_format):
        return
    out = console()
    style = STATUS_STYLE.get(record.status, ("", "", ""))[1] or "bold"
    out.print(f"[bold]run {record.id}[/]  [{style}]{record.status.value.upper()}[/]")
    rows = [
        ("pipeline", record.pipeline_name),
        ("flavor", record.orchestrator),
        ("backend run ID", record.orchestrator_run_id or "(not attached yet)"),
        ("snapshot", record.snapshot_id),
        ("created", _when(record.created_at)),
        ("started", _when(record.started_at)),
        ("ended", _when(record.ended_at)),
        ("duration", format_duration(run_duration(record))
         + (f" (steps: {format_duration(seconds_between(record.started_at, record.ended_at))})" if record.started_at else "")),
    ]
    if record.reason:
        rows.append(("reason", record.reason))
    for key, value in rows:
        if value:
            out.print(f"  {key + ':':<16} {esc(value)}", soft_wrap=True)
    from .._runtime.config_store import redact_config

    for key, value in redact_config(record.metadata).items():
        if key != "orchestrator_run_id":  # shown above as the backend run ID
            out.print(f"  {key + ':':<16} {esc(value if isinstance(value, str) else json.dumps(value))}", soft_wrap=True)

    table = Table(title="steps", title_justify="left")
    table.add_column("step", style="bold", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("attempts", justify="right")
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("output" if outputs else "reason")
    if outputs:
        table.add_column("reason")
    for name, step in steps.items():
        step_style = STATUS_STYLE.get(step.status, ("", "", ""))[1]
        row = [
            esc(name),
            f"[{step_style}]{step.status.value}[/]" if step_style else step.status.value,
            str(step.attempts),
            format_duration(seconds_between(step.started_at, step.ended_at)),
        ]
        if outputs:
            row.append(esc(outputs.get(name, "")))
        row.append(esc((step.reason or "").strip()))
        table.add_row(*row)
    out.print(table)

    if attempts:
        table = Table(title="attempts", title_justify="left")
        for column in ("step", "attempt", "status", "started", "duration", "host", "reason"):
            table.add_column(column, no_wrap=column not in ("reason",))
        for attempt in attempts:
            table.add_row(
                esc(attempt.step_name),
                str(attempt.attempt),
                attempt.status.value,
                _when(attempt.started_at),
                format_duration(seconds_between(attempt.started_at, attempt.ended_at)),
                esc(attempt.host),
                esc((attempt.reason or "").strip().splitlines()[-1] if attempt.reason and attempt.reason.strip() else ""),
            )
        out.print(table)
    out.print(f"[dim]step logs: orcakit runs logs {record.id[:12]} [STEP] [--follow][/]")


def _log_text(stack_spec: Any, record: Any, step: str) -> bytes | None:
    """The step's log as this machine can read it: the folder the run's metadata names (the
    local and docker flavors write there), else the artifact store (where flavors whose steps
    run elsewhere upload them)."""
    from pathlib import Path

    from .._runtime.artifact_store import log_key, open_artifact_store

    folder = record.metadata.get("logs")
    if folder:
        path = Path(folder) / f"{step}.log"
        if path.is_file():
            return path.read_bytes()
    try:
        artifacts = open_artifact_store(stack_spec.artifact_store, stack_spec.artifact_store_options)
        key = log_key(record.snapshot_id, step)
        return artifacts.get(key) if artifacts.exists(key) else None
    except Exception:  # noqa: BLE001 - no artifact store here: no log either
        return None


@runs_group.command("logs")
@_RUN_ARGUMENT
@click.argument("step", required=False)
@_STACK_OPTION
@click.option("--follow", "-f", is_flag=True, help="Keep printing what the step(s) write until the run ends.")
@click.option("--interval", default=0.5, show_default=True, type=click.FloatRange(min=0.05), help="Seconds between polls with --follow.")
def runs_logs(run_id: str, step: str | None, stack_name: str | None, follow: bool, interval: float) -> None:
    """Print a run's step logs (what each step printed, and its tracebacks): one STEP, or every
    step in turn under a header. With --follow, keep printing new lines until the run ends."""
    import sys
    import time

    store = _run_store(stack_name)
    _, stack_spec = _stack(stack_name)
    record = find_run(store, run_id, stack_name)

    def steps_now() -> list[str]:
        names = list(store.steps(record.id))
        if step is not None:
            if step not in names and store.get_run(record.id).status.is_finished:
                raise ConfigurationError(
                    f"run {record.id} has no step {step!r}",
                    fix=f"its steps: {', '.join(names) or 'none recorded'}",
                )
            return [step]
        return names

    seen: dict[str, int] = {}
    header = step is None

    def show_new() -> None:
        for name in steps_now():
            text = _log_text(stack_spec, record, name)
            if text is None or len(text) <= seen.get(name, 0):
                continue
            if header:
                click.echo(f"==> {name} <==")
            sys.stdout.flush()
            click.echo(text[seen.get(name, 0):].decode(errors="replace"), nl=False)
            seen[name] = len(text)

    current = record
    while True:
        show_new()
        if not follow or current.status.is_finished:
            break
        time.sleep(interval)
        current = store.get_run(record.id)
        if current.metadata.get("logs") and not record.metadata.get("logs"):
            record = current
    if not seen:
        click.echo(f"(no step log of run {record.id} on this machine or in its artifact store yet)", err=True)


@runs_group.command("stop")
@_RUN_ARGUMENT
@_STACK_OPTION
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for the run to reach a terminal status.")
def runs_stop(run_id: str, stack_name: str | None, timeout: float) -> None:
    """Stop a run through its orchestrator (when the flavor declares stop_run)."""
    import time

    from orcakit import UnsupportedFeatureError

    from .._runtime.config_store import ConfigStore
    from .._runtime.orphans import orchestrator_for, submitted_snapshot
    from .orphans import reap_orphans

    stack_spec = ConfigStore().stack_spec(stack_name)
    from .._runtime.run_store import RunStore

    store = RunStore(stack_spec.run_store)
    record = find_run(store, run_id, stack_name)
    out = console()
    if record.status.is_finished:
        out.print(f"run {record.id} already ended {record.status.value.upper()}")
        return
    # Its driving client died: nothing polls for the stop, so end it here (and kill what it left).
    reaped = reap_orphans(store, stack_spec, [record.id], stop=True)
    if reaped:
        out.print(f"run {record.id} stopped: it ended {reaped[0].status.value.upper()}")
        return
    orchestrator_obj = orchestrator_for(submitted_snapshot(stack_spec, record.snapshot_id), stack_spec)
    flavor_obj = orchestrator_obj.flavor
    if not orchestrator_obj.capabilities.stop_run:
        raise UnsupportedFeatureError(
            f"orchestrator flavor {flavor_obj.name!r} cannot stop runs (it does not declare the stop_run capability)",
            feature="stop_run",
            fix="stop the run with the backend's own tools",
        )
    if not record.orchestrator_run_id:
        raise ConfigurationError(
            f"run {record.id} has no backend run ID yet (status {record.status.value}), so there is nothing to stop on the backend",
            fix="retry once its first step started",
        )
    # Ask through the run store first: the process that schedules the run may be another one
    # (the local flavor's scheduler polls for STOPPING); then through the backend.
    store.request_stop(record.id)
    orchestrator_obj.stop_run(record.orchestrator_run_id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = store.get_run(record.id)
        if record.status.is_finished:
            out.print(f"run {record.id} stopped: it ended {record.status.value.upper()}")
            return
        time.sleep(0.25)
    raise OrcakitError(
        f"asked flavor {flavor_obj.name!r} to stop run {record.id}, but after {timeout:g}s it is still {record.status.value.upper()}",
        why="the backend may take longer to stop, or (local flavor) only the process that runs the pipeline can stop it",
        fix=(
            "check again with `orcakit runs show`; for a local run press Ctrl-C in the terminal that runs it "
            "(or `kill -INT` the driver process `orcakit run --no-wait` printed)"
        ),
    )
