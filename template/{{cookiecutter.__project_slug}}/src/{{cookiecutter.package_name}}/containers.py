"""One step attempt as a container on the Docker engine: the handle the runtime's scheduler
waits on (``wait``, ``kill``, ``describe_exit``, ``cleanup``).

TODO(backend): your backend's job/pod object replaces the container: wait() polls it to its
end, kill() deletes it at once, describe_exit() reads why it failed (OOM-killed, evicted...),
cleanup() removes what is left of it.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any


class StepContainer:
    def __init__(self, client: Any, create: dict[str, Any], log_path: Path) -> None:
        self.name = create["name"]
        self.log_path = log_path
        self.container = client.containers.create(**create)
        self.container.start()

    def wait(self) -> int:
        code = int(self.container.wait()["StatusCode"])
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Step logs are the step's own business: readable by their owner only (SPEC SEC-1).
        with open(self.log_path, "ab", opener=lambda path, flags: os.open(path, flags, 0o600)) as log:
            log.write(self.container.logs(stdout=True, stderr=True))
        return code

    def kill(self) -> None:
        try:
            self.container.kill()
        except Exception:  # noqa: BLE001 - it has ended already
            pass

    def describe_exit(self, code: int) -> str:
        try:
            self.container.reload()
            if self.container.attrs.get("State", {}).get("OOMKilled"):
                return f"OOM-killed: the step exceeded its memory limit (container {self.name})"
        except Exception:  # noqa: BLE001 - gone: the exit code is all there is
            pass
        if code > 128:
            try:
                return f"the step container {self.name} was killed by {signal.Signals(code - 128).name}"
            except ValueError:
                pass
        return f"the step container {self.name} exited with code {code}"

    def cleanup(self) -> None:
        try:
            self.container.remove(force=True)
        except Exception:  # noqa: BLE001 - removed already
            pass
