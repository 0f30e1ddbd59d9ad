"""One attempt of one step as a container: start it, stream its output, wait, say why it ended.

A :class:`StepContainer` is the handle the shared DAG scheduler waits on. Creating and starting
the container happens on the handle's own thread, so the scheduler launches a wide layer of steps
without waiting for each ``create``/``start`` round trip in turn.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

#: Seconds to wait for the engine's OOM flag after a SIGKILL of a memory-limited container.
OOM_FLAG_GRACE = 2.0

logger = logging.getLogger("orcakit.docker")
step_logger = logging.getLogger("orcakit.docker.steps")

#: Exit code reported when the container could not be created or started (as `docker run`).
EXIT_LAUNCH_FAILED = 125
#: Exit code reported when the container vanished (removed from outside, engine lost).
EXIT_LOST = 255
#: How long to keep trying to reach the engine again while waiting for a step (restarts).
ENGINE_GRACE_SECONDS = 60.0


class StepContainer:
    """A step attempt's container (see module doc). ``wait``/``kill``/``describe_exit``/
    ``cleanup`` are what the scheduler calls."""

    def __init__(
        self,
        client: Any,
        create: dict[str, Any],
        *,
        step: str,
        attempt: int,
        log_path: Path,
        memory: str | None,
        after_exit: Callable[["StepContainer"], None] | None = None,
    ) -> None:
        self.client = client
        self.create_kwargs = create
        self.step, self.attempt = step, attempt
        self.name: str = create.get("name", "")
        self.log_path = log_path
        self.memory = memory
        self.after_exit = after_exit
        self.container: Any = None
        self.code: int | None = None
        self.oom_killed = False
        self.launch_error: str | None = None
        self.lost: str | None = None
        self.engine_error: str | None = None
        self._kill_requested = False
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"orcakit-docker-{step}-{attempt}", daemon=True)
        self._thread.start()

    # -- the scheduler's side ----------------------------------------------------------------

    def wait(self) -> int:
        self._done.wait()
        return self.code

    def kill(self) -> None:
        with self._lock:
            self._kill_requested = True
            container = self.container
        if container is not None and not self._done.is_set():
            _quietly(container.kill)

    def describe_exit(self, code: int) -> str:
        if self.launch_error is not None:
            return f"launch failed: could not start the step container: {self.launch_error}"
        if self.oom_killed:
            return f"OOM-killed: the step exceeded its memory limit ({self.memory}) and the kernel killed it (container {self.name})"
        if self.lost is not None:
            return self.lost
        if code > 128 and code - 128 < 65:
            try:
                name = signal.Signals(code - 128).name
            except ValueError:
                name = f"signal {code - 128}"
            how = " (e.g. `docker kill`, or the engine stopped it)" if code - 128 == signal.SIGKILL else ""
            text = f"the step container {self.name} was killed by {name}{how}, exit code {code}"
        else:
            text = f"the step container {self.name} exited with code {code}"
        return text + (f"; engine: {self.engine_error}" if self.engine_error else "")

    def cleanup(self) -> None:
        """Nothing to do here: the handle's own thread removes the container as soon as its
        exit state is read (off the scheduler's path), and the run's final sweep removes
        whatever is still labelled with the run."""

    # -- the container's life ----------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._launch_and_follow()
        except Exception as exc:  # noqa: BLE001 - every outcome must end the attempt
            if self.code is None:
                self.lost = f"lost track of the step container {self.name}: {_one_line(exc)}"
                self.code = EXIT_LOST
        finally:
            if self.after_exit is not None:
                try:
                    self.after_exit(self)
                except Exception:  # noqa: BLE001 - a hook must not hang the run
                    logger.exception("after-exit hook of step %r failed", self.step)
            self._done.set()
        # The exit state is read: remove the container now, off the scheduler's path (the
        # run's final sweep removes anything this misses).
        if self.container is not None:
            _quietly(lambda: self.container.remove(force=True))

    def _launch_and_follow(self) -> None:
        from docker.errors import APIError, NotFound

        try:
            container = self.client.containers.create(**self.create_kwargs)
        except APIError as exc:
            self.launch_error = _one_line(exc.explanation or exc)
            self.code = EXIT_LAUNCH_FAILED
            return  # nothing was created
        with self._lock:
            self.container = container
            stop_now = self._kill_requested
        if stop_now:  # stopped while being created: never start it
            self.code = 128 + signal.SIGKILL
            return
        try:
            container.start()
        except APIError as exc:
            self.launch_error = _one_line(exc.explanation or exc)
            self.code = EXIT_LAUNCH_FAILED
            return
        with self._lock:
            stop_now = self._kill_requested
        if stop_now:  # kill() raced with start(): it may have found nothing running yet
            _quietly(container.kill)
        self._stream_logs(container)
        self.code = self._exit_code(container)
        if self.code in (0, 1) or self.lost is not None:
            return  # the entrypoint's own verdicts: nothing more to ask the engine
        try:
            container.reload()
            state = container.attrs.get("State", {})
            # The engine learns of an OOM kill from a separate event that can land after the
            # exit one on a busy machine: a SIGKILLed container with a memory limit is asked
            # again for a moment before the kill is put down to something else.
            deadline = time.monotonic() + OOM_FLAG_GRACE
            while (self.code == 128 + signal.SIGKILL and self.memory and not self._kill_requested
                   and not state.get("OOMKilled") and time.monotonic() < deadline):
                time.sleep(0.1)
                container.reload()
                state = container.attrs.get("State", {})
            self.oom_killed = bool(state.get("OOMKilled"))
            self.engine_error = state.get("Error") or None
        except NotFound:
            self.lost = f"the step container {self.name} was removed from outside before its exit state could be read"
        except Exception:  # noqa: BLE001 - the exit code is known; the details are a bonus
            pass

    def _stream_logs(self, container: Any) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # not readable by other users (SPEC SEC-1); host root and the writer read it
        with open(self.log_path, "ab", opener=lambda path, flags: os.open(path, flags, 0o600)) as log:
            log.write(f"===== {self.step}: attempt {self.attempt} in container {self.name} =====\n".encode())
            log.flush()
            pending = b""
            try:
                for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=True):
                    log.write(chunk)
                    log.flush()
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        step_logger.info("[%s] %s", self.step, line.decode(errors="replace"))
            except Exception as exc:  # noqa: BLE001 - the engine went away; wait() decides
                logger.warning("log stream of step %r ended early: %s", self.step, _one_line(exc))
            if pending:
                step_logger.info("[%s] %s", self.step, pending.decode(errors="replace"))

    def _exit_code(self, container: Any) -> int:
        from docker.errors import NotFound

        deadline = time.monotonic() + ENGINE_GRACE_SECONDS
        while True:
            try:
                return int(container.wait(timeout=None)["StatusCode"])
            except NotFound:
                self.lost = f"the step container {self.name} disappeared (removed from outside, or lost when the engine restarted)"
                return EXIT_LOST
            except Exception as exc:  # noqa: BLE001 - connection lost: the engine may be restarting
                if time.monotonic() > deadline:
                    self.lost = f"lost the Docker engine while step container {self.name} ran: {_one_line(exc)}"
                    return EXIT_LOST
                time.sleep(1.0)


def _quietly(action: Callable[[], Any]) -> None:
    """Run an engine call whose failure (already gone, not running) changes nothing."""
    try:
        action()
    except Exception:  # noqa: BLE001
        pass


def _one_line(value: Any) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= 500 else text[:500] + "..."
