"""The DAG scheduler the reference flavors share.

A flavor supplies a *launcher* (start one attempt of one step on its backend and return a handle
to wait on or kill); the scheduler does the rest the spec asks for: a step starts only after all
its upstream steps COMPLETED (ORDER-1), independent steps run in parallel up to
``max_parallelism``, failed attempts are retried with delay and backoff (RETRY-*), the execution
mode decides what a failure does (FAIL-*), and every step and the run end in a terminal status,
whatever happened to the processes (STATUS-2).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from orcakit import ExecutionMode, ExecutionStatus, PipelineSnapshot

from .run_store import RunRecord, RunStore

logger = logging.getLogger("orcakit.scheduler")
S = ExecutionStatus

#: Exit code of the step entrypoint when it could not attach to its run (nothing recorded).
EXIT_NOT_ATTACHED = 3


class StepHandle(Protocol):
    """One launched attempt of one step."""

    def wait(self) -> int:
        """Block until the attempt ended; its exit code (negative: killed by that signal)."""

    def kill(self) -> None:
        """End the attempt now (idempotent)."""

    def describe_exit(self, code: int) -> str:
        """Why the attempt ended with a non-zero ``code``, in words (e.g. 'OOM-killed')."""

    def cleanup(self) -> None:
        """Release what the attempt held on the backend (cgroups, a container...) once its end
        was recorded; called exactly once per launched attempt, after :meth:`wait` returned."""


#: ``launch(step_name, attempt) -> StepHandle``; may raise to report the launch failed.
Launcher = Callable[[str, int], StepHandle]
#: Progress callback: ``(step_name, status)``.
ProgressCallback = Callable[[str, ExecutionStatus], None]


@dataclass
class _Running:
    handle: StepHandle
    attempt: int
    stopping: bool = False


class DagScheduler:
    """Runs one static pipeline run to its end. ``run()`` blocks; ``stop()`` may be called from
    any thread (a Ctrl-C handler, ``orcakit runs stop``)."""

    def __init__(
        self,
        snapshot: PipelineSnapshot,
        store: RunStore,
        run_uuid: str,
        launch: Launcher,
        *,
        max_parallelism: int,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.store = store
        self.run_uuid = run_uuid
        self.launch = launch
        self.max_parallelism = max(1, max_parallelism)
        self.on_progress = on_progress or (lambda step, status: None)
        self._events: queue.Queue = queue.Queue()
        self._stop_requested = threading.Event()
        #: Set once a run started with :meth:`start` has ended (and ``on_finish`` ran).
        self.finished = threading.Event()
        self._last_stop_poll = time.monotonic()

    def stop(self) -> None:
        self._stop_requested.set()
        self._events.put(None)

    def start(self, *, name: str, on_finish: Callable[[], None] | None = None) -> Callable[[], None]:
        """Run in a background thread (a submission must not block) and return the
        ``wait_for_completion`` for the flavor's SubmissionResult, which re-raises a scheduler
        error. ``on_finish`` (e.g. a backend clean-up) runs before the run counts as finished;
        :attr:`finished` is set then."""
        outcome: dict[str, BaseException] = {}

        def drive() -> None:
            try:
                self.run()
            except BaseException as exc:  # noqa: BLE001 - re-raised by wait_for_completion
                outcome["error"] = exc
                self.store.set_run_status(self.run_uuid, S.FAILED, reason=f"scheduler error: {exc}")
            finally:
                try:
                    if on_finish is not None:
                        on_finish()
                finally:
                    self.finished.set()

        threading.Thread(target=drive, name=name, daemon=True).start()

        def wait_for_completion() -> None:
            # An Event, not Thread.join(): after Ctrl-C interrupts a join(), Python 3.11 reports
            # the thread as finished, and the client would exit while the run is still stopping.
            self.finished.wait()
            if "error" in outcome:
                raise outcome["error"]

        return wait_for_completion

    def run(self) -> RunRecord:
        snapshot, mode = self.snapshot, self.snapshot.execution_mode
        order = snapshot.topological_order()
        status: dict[str, ExecutionStatus] = {}
        running: dict[str, _Running] = {}
        attempts: dict[str, int] = {}
        retry_at: dict[str, float] = {}
        halted = False  # no new step starts (STOP_ON_FAILURE / FAIL_FAST / stop())
        stopped = False

        def launch(name: str) -> None:
            attempts[name] = attempts.get(name, 0) + 1
            attempt = attempts[name]
            try:
                handle = self.launch(name, attempt)
            except Exception as exc:  # the backend refused: record it as this attempt's failure
                logger.error("could not launch step %r: %s", name, exc)
                self._events.put((name, attempt, _LaunchFailed(str(exc)), None))
                running[name] = _Running(_NoHandle(), attempt)
                return
            running[name] = _Running(handle, attempt)
            self.on_progress(name, S.RUNNING)
            threading.Thread(target=self._wait, args=(name, attempt, handle), daemon=True).start()

        while True:
            if self._stop_requested.is_set() and not stopped:
                stopped = halted = True
                for entry in running.values():
                    entry.stopping = True
                    entry.handle.kill()
            if not halted:
                for name in order:
                    if len(running) >= self.max_parallelism:
                        break
                    if name in status or name in running or name in retry_at:
                        continue
                    if self.is_ready(name, status):
                        launch(name)
            now = time.monotonic()
            for name, when in list(retry_at.items()):
                if stopped or (halted and mode is not ExecutionMode.STOP_ON_FAILURE):
                    # A step between two attempts has run, so it ends STOPPED, never SKIPPED
                    # (FAIL-2); under STOP_ON_FAILURE it still counts as running and its
                    # remaining attempts go ahead (FAIL-3).
                    del retry_at[name]
                    self.store.mark_steps(self.run_uuid, [name], S.STOPPED, "stopped between two attempts")
                    status[name] = S.STOPPED
                    self.on_progress(name, S.STOPPED)
                elif when <= now and len(running) < self.max_parallelism:
                    del retry_at[name]
                    launch(name)
            if not running and not retry_at:
                break
            timeout = max(0.0, min(retry_at.values()) - time.monotonic()) if retry_at else self.STOP_POLL_INTERVAL
            try:
                event = self._events.get(timeout=min(timeout, self.STOP_POLL_INTERVAL))
            except queue.Empty:
                continue
            finally:
                self._poll_stop_request()
            if event is None:
                continue
            name, attempt, code, handle = event
            entry = running.pop(name)
            if code not in (0, 1) and not entry.stopping and not stopped:
                # Killed from outside? If a stop was asked for meanwhile (another process's
                # `runs stop` kills the backend's attempts too), the attempt was stopped, not
                # failed: ask the run store now rather than at the next poll.
                self._poll_stop_request(force=True)
                if self._stop_requested.is_set():
                    entry.stopping = True
            outcome = self.settle(name, attempt, code, handle, entry.stopping)
            if handle is not None:
                handle.cleanup()
            if outcome is S.RETRYING:
                retry_at[name] = time.monotonic() + self.retry_delay(name, attempt)
                self.on_progress(name, S.RETRYING)
                continue
            status[name] = outcome
            self.on_progress(name, outcome)
            if outcome is S.FAILED:
                self.skip_downstream(name, status)
                if mode is ExecutionMode.STOP_ON_FAILURE:
                    halted = True
                elif mode is ExecutionMode.FAIL_FAST and not halted:
                    halted = True
                    for other in running.values():
                        other.stopping = True
                        other.handle.kill()

        never_ran = [name for name in order if name not in status or status[name] is S.SKIPPED]
        if never_ran:
            reason = "stopped before it started" if stopped else "not run because of an upstream failure or the execution mode"
            self.store.mark_steps(self.run_uuid, never_ran, S.SKIPPED, reason)
            for name in never_ran:
                if name not in status:
                    self.on_progress(name, S.SKIPPED)
        return self.store.finalize_run(self.run_uuid, order, stopped=stopped)

    #: How often the run store is asked whether someone (another process: `orcakit runs stop`)
    #: moved the run to STOPPING.
    STOP_POLL_INTERVAL = 0.5

    def _poll_stop_request(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_stop_poll < self.STOP_POLL_INTERVAL:
            return
        self._last_stop_poll = now
        if self.store.stop_requested(self.run_uuid):
            self._stop_requested.set()

    def skip_downstream(self, name: str, status: dict[str, ExecutionStatus]) -> None:
        """Everything downstream of failed step ``name`` is SKIPPED and never starts (FAIL-1)."""
        for child in self.snapshot.downstream_of(name):
            if child not in status:
                status[child] = S.SKIPPED
                self.on_progress(child, S.SKIPPED)

    def is_ready(self, name: str, status: dict[str, ExecutionStatus]) -> bool:
        """A step may start once every upstream step COMPLETED (ORDER-1)."""
        return all(status.get(up) is S.COMPLETED for up in self.snapshot.steps[name].upstream)

    def retry_delay(self, name: str, attempt: int) -> float:
        """Seconds to wait before the attempt after ``attempt`` (ZenML: delay, then *= backoff)."""
        retry = self.snapshot.steps[name].retry
        delays = retry.delays() if retry is not None else []
        return delays[attempt - 1] if attempt - 1 < len(delays) else 0.0

    def _wait(self, name: str, attempt: int, handle: StepHandle) -> None:
        try:
            code = handle.wait()
        except Exception as exc:  # the backend lost the step: count it as a failed attempt
            code = _LaunchFailed(f"lost track of the step: {exc}")
        self._events.put((name, attempt, code, handle))

    def settle(self, name: str, attempt: int, code, handle: StepHandle | None, stopping: bool) -> ExecutionStatus:
        """The step's status after an attempt ended, recording what the step itself could not."""
        spec = self.snapshot.steps[name]
        if stopping:
            return self.store.finish_attempt(
                self.run_uuid, name, attempt, succeeded=False, total_attempts=spec.total_attempts,
                reason="stopped", final_status=S.STOPPED,
            )
        record = self.store.step(self.run_uuid, name)
        recorded = record is not None and record.attempts >= attempt
        if recorded and record.status in (S.COMPLETED, S.RETRYING, S.FAILED) and code in (0, 1):
            return record.status  # the entrypoint recorded the outcome itself
        if isinstance(code, _LaunchFailed):
            reason = f"launch failed: {code.reason}"
        elif code == 0:
            reason = "the step process exited 0 without recording a result"
        elif code == EXIT_NOT_ATTACHED and not recorded:
            # The exit code alone cannot tell: user code may exit 3 too. An attempt the step
            # recorded proves it attached, so only an unrecorded one failed to attach.
            reason = "the step could not attach to its run (see the step log)"
        else:
            reason = handle.describe_exit(code) if handle is not None else f"exit code {code}"
            if recorded and code > 0:
                reason += " without reporting its outcome (the step's code, or something it called, ended the process)"
        return self.store.finish_attempt(
            self.run_uuid, name, attempt, succeeded=False, total_attempts=spec.total_attempts, reason=reason
        )


@dataclass(frozen=True)
class _LaunchFailed:
    reason: str


class _NoHandle:
    def wait(self) -> int:  # pragma: no cover - never waited on
        return 1

    def kill(self) -> None:
        pass

    def describe_exit(self, code: int) -> str:
        return f"exit code {code}"

    def cleanup(self) -> None:
        pass
