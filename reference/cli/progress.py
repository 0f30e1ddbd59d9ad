"""Live progress of a run, for ``orcakit run``.

Progress is read from the run store, never from the flavor: a thread polls
:meth:`RunStore.steps` and renders what it sees. That works the same for every flavor (a step
records its own status from inside its process, wherever that runs), at the price of missing
transitions shorter than the polling interval — the final poll after the run ended still shows
every step's terminal status.

Two renderers: on a terminal a rich ``Live`` table (one row per step, counts in the caption);
elsewhere (pipes, CI logs) one plain line per observed status change, e.g.
``step train running`` / ``step train completed (1.2s)`` / ``step eval failed: ValueError: ...``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from orcakit import ExecutionStatus

if TYPE_CHECKING:
    from .._runtime.run_store import RunStore, StepRecord

logger = logging.getLogger("orcakit.cli.progress")
S = ExecutionStatus

#: How a step status is shown: (label, rich style, symbol). ``None`` is a step with no record yet.
STATUS_STYLE: dict[ExecutionStatus | None, tuple[str, str, str]] = {
    None: ("pending", "dim", "·"),
    S.INITIALIZING: ("pending", "dim", "·"),
    S.PROVISIONING: ("pending", "dim", "·"),
    S.QUEUED: ("queued", "dim", "·"),
    S.RUNNING: ("running", "cyan", "▶"),
    S.RETRYING: ("retrying", "yellow", "↻"),
    S.COMPLETED: ("done", "green", "✔"),
    S.CACHED: ("cached", "green", "✔"),
    S.FAILED: ("failed", "bold red", "✘"),
    S.SKIPPED: ("skipped", "magenta", "⤼"),
    S.STOPPING: ("stopping", "yellow", "■"),
    S.STOPPED: ("stopped", "yellow", "■"),
    S.CANCELLING: ("cancelling", "yellow", "■"),
    S.CANCELLED: ("cancelled", "yellow", "■"),
}
#: The order of the counts in the live table's caption, and their styles.
COUNT_ORDER = ("pending", "running", "retrying", "done", "failed", "skipped", "stopped")
STATUS_STYLE_BY_LABEL = {label: style for label, style, _ in STATUS_STYLE.values()} | {"pending": "white"}


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s"


def run_duration(record: Any) -> float | None:
    """A run's duration, the same in `orcakit run`, `runs list` and `runs show`: what its user
    waited, from its creation (submission included) to its end (none while it runs)."""
    return seconds_between(record.created_at, record.ended_at)


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """Seconds from ``start`` to ``end``; None while either is unknown."""
    return (end - start).total_seconds() if start and end else None


def step_seconds(record: "StepRecord | None", now: datetime | None = None) -> float | None:
    """How long a step ran (so far, if it is still running)."""
    if record is None or record.started_at is None:
        return None
    end = record.ended_at or (None if record.status.is_finished else (now or datetime.now(timezone.utc)))
    return None if end is None else max(0.0, (end - record.started_at).total_seconds())


def short_reason(reason: str | None, limit: int = 160) -> str:
    """One line of a (possibly multi-line, traceback-carrying) reason: its last non-empty line,
    which for an exception is ``Type: message``."""
    if not reason:
        return ""
    lines = [line.strip() for line in reason.strip().splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def status_label(status: ExecutionStatus | None) -> str:
    return STATUS_STYLE.get(status, (str(status), "", "?"))[0]


@dataclass
class _Seen:
    status: ExecutionStatus
    attempts: int


class ProgressMonitor:
    """Polls a run's steps from the run store and renders them until :meth:`stop`.

    ``step_names`` are the steps known up front (a static pipeline's DAG, in topological order);
    steps that only appear in the store (a dynamic pipeline's) are added as they show up.
    ``live`` picks the renderer: True for the rich table, False for plain lines (default: whether
    ``console`` is a terminal).
    """

    def __init__(
        self,
        console: Console,
        store: "RunStore",
        run_id: str,
        step_names: list[str] | None = None,
        *,
        live: bool | None = None,
        interval: float = 0.25,
    ) -> None:
        self.console = console
        self.store = store
        self.run_id = run_id
        self.names: list[str] = list(step_names or [])
        self.live = console.is_terminal if live is None else live
        self.interval = interval
        self.records: dict[str, StepRecord] = {}
        self._seen: dict[str, _Seen] = {}
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one poll/render at a time (thread vs. final poll)
        self._thread: threading.Thread | None = None
        self._live: Live | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> "ProgressMonitor":
        if self.live:
            self._live = Live(self.render(), console=self.console, refresh_per_second=8, transient=False)
            self._live.start()
        self._thread = threading.Thread(target=self._loop, name="orcakit-progress", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling, take one last look (so every terminal status is shown) and close."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.poll()
        if self._live is not None:
            self._live.update(self.render(), refresh=True)
            self._live.stop()

    def __enter__(self) -> "ProgressMonitor":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- polling -----------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        with self._lock:
            try:
                records = self.store.steps(self.run_id)
            except Exception as exc:  # a busy/locked store must not kill the display: retry next tick
                logger.debug("progress poll failed: %s", exc)
                return
            for name in records:
                if name not in self.names:
                    self.names.append(name)
            self.records = records
            if self._live is not None:
                self._live.update(self.render())
            else:
                self._print_changes()

    # -- plain lines -------------------------------------------------------------------------------

    def _print_changes(self) -> None:
        for name in self.names:
            record = self.records.get(name)
            if record is None:
                continue
            before = self._seen.get(name)
            if before is not None and before.status is record.status and before.attempts == record.attempts:
                continue
            self._seen[name] = _Seen(record.status, record.attempts)
            line = self.event_line(name, record, before.status if before else None)
            if line:
                # Plain text: no markup, no highlighting, no wrapping (one event per line for grep).
                self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    @staticmethod
    def event_line(name: str, record: "StepRecord", previous: ExecutionStatus | None = None) -> str:
        status = record.status
        attempt = f" (attempt {record.attempts})" if record.attempts > 1 else ""
        if status is S.RUNNING:
            return f"step {name} running{attempt}"
        if status is S.RETRYING:
            why = short_reason(record.reason)
            return f"step {name} retrying: attempt {record.attempts} failed" + (f": {why}" if why else "")
        if status in (S.COMPLETED, S.CACHED):
            return f"step {name} {status.value} ({format_duration(step_seconds(record)) or '0.0s'}){attempt}"
        if status is S.FAILED:
            why = short_reason(record.reason)
            return f"step {name} failed{attempt}" + (f": {why}" if why else "")
        if status in (S.SKIPPED, S.STOPPED, S.CANCELLED):
            why = short_reason(record.reason)
            return f"step {name} {status.value}" + (f": {why}" if why else "")
        return f"step {name} {status.value}"

    # -- live table --------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(COUNT_ORDER, 0)
        for name in self.names:
            record = self.records.get(name)
            label = status_label(record.status if record else None)
            label = {"cached": "done", "queued": "pending", "cancelled": "stopped", "stopping": "running"}.get(label, label)
            counts[label] = counts.get(label, 0) + 1
        return counts

    def render(self) -> Group:
        now = datetime.now(timezone.utc)
        table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
        table.add_column("", width=1, no_wrap=True)
        table.add_column("step", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("attempts", justify="right", no_wrap=True)
        table.add_column("time", justify="right", no_wrap=True)
        table.add_column("detail", overflow="ellipsis", no_wrap=True, ratio=1)
        for name in self.names:
            record = self.records.get(name)
            label, style, symbol = STATUS_STYLE.get(record.status if record else None, ("?", "", "?"))
            table.add_row(
                Text(symbol, style=style),
                name,
                Text(label, style=style),
                str(record.attempts) if record and record.attempts else "",
                format_duration(step_seconds(record, now)),
                short_reason(record.reason, 100) if record else "",
            )
        counts = self.counts()
        parts = [
            Text(f"{counts[key]} {key}", style=STATUS_STYLE_BY_LABEL.get(key, "") if counts[key] else "dim")
            for key in COUNT_ORDER
            if counts[key] or key in ("pending", "running", "done", "failed")
        ]
        summary = Text(" · ").join(parts)
        summary.append(f"   {format_duration(time.monotonic() - self._started)}", style="dim")
        return Group(table, summary)
