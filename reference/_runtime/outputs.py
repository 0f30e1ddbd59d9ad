"""A run's step outputs as values, read from the artifact store when asked for.

``RunRecord.outputs`` (``run = my_pipeline(...)`` then ``run.outputs["train"]``) and ``orcakit
runs show`` use this. Nothing is read before a step's output is looked up: a run whose outputs
are large costs nothing until one is wanted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from orcakit import StackSpec, StoreError


class StepOutputs(Mapping[str, Any]):
    """``{step name: output value}`` of one run: the steps that recorded an output (completed
    ones), each value loaded on first access and then kept."""

    def __init__(self, run_id: str, run_store_url: str, artifact_store: str, artifact_store_options: dict | None = None) -> None:
        self.run_id = run_id
        self._run_store_url = run_store_url
        self._artifact_store = (artifact_store, artifact_store_options or {})
        self._names: list[str] | None = None
        self._values: dict[str, Any] = {}

    @classmethod
    def of(cls, run_id: str, stack: StackSpec) -> "StepOutputs":
        return cls(run_id, stack.run_store, stack.artifact_store, stack.artifact_store_options)

    def _steps(self) -> list[str]:
        if self._names is None:
            from .run_store import RunStore

            store = RunStore(self._run_store_url, create_tables=False)
            try:
                self._names = [name for name, step in store.steps(self.run_id).items() if step.outputs]
            finally:
                store.close()
        return self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._steps())

    def __len__(self) -> int:
        return len(self._steps())

    def __contains__(self, name: object) -> bool:
        return name in self._steps()

    def __getitem__(self, name: str) -> Any:
        if name not in self._values:
            if name not in self._steps():
                raise KeyError(name)
            self._values[name] = self.load(name)
        return self._values[name]

    def load(self, name: str) -> Any:
        from .artifact_store import dematerialize, open_artifact_store, output_key

        store = open_artifact_store(*self._artifact_store)
        try:
            return dematerialize(store.get(output_key(self.run_id, name)))
        except StoreError:
            raise
        except Exception as exc:  # an unpicklable class missing here, a truncated blob
            raise StoreError(
                f"cannot load the output of step {name!r} of run {self.run_id}: {type(exc).__name__}: {exc}",
                why="outputs that are not JSON are pickled: reading one needs the classes it holds importable here",
                fix="run this from the environment the pipeline ran in (its modules importable)",
            ) from exc

    def __repr__(self) -> str:
        loaded = ", ".join(f"{name!r}: {self._values[name]!r}" if name in self._values else f"{name!r}: <not loaded>"
                           for name in self._steps())
        return f"StepOutputs({{{loaded}}})"


def summarise(value: Any, width: int = 60) -> str:
    """One line for a table: the type and a shortened repr (``list[100]: [0, 1, 2, ...``)."""
    from orcakit.redaction import redact

    kind = type(value).__name__
    if isinstance(value, (list, tuple, dict, set, str, bytes)):
        kind += f"[{len(value)}]"
    text = redact(repr(value)).replace("\n", " ")
    if len(text) > width:
        text = text[: width - 1] + "…"
    return f"{kind}: {text}"
