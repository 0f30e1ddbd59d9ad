"""The authoring API: ``@step`` and ``@pipeline``.

Calling a ``@pipeline`` compiles a static DAG by calling its function once with step calls
recorded instead of executed: a step call returns a :class:`StepOutput` placeholder, and passing
it to another step makes an input edge. ``dynamic=True`` instead ships the function itself;
it then runs live inside an orchestration environment where step calls execute and return
real values.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import PipelineDefinitionError
from .settings import ResourceSettings, Schedule, StepRetryConfig
from .snapshot import ArtifactRef, PipelineSnapshot, StackSpec, StepSpec, validate_environment
from .status import ExecutionMode

_KNOWN_SETTINGS = ("resources",)


def source_of(func: Callable) -> str:
    """``'module:qualname'`` by which a step process re-imports ``func``."""
    qualname = func.__qualname__
    if "<locals>" in qualname or "<lambda>" in qualname:
        raise PipelineDefinitionError(
            f"{qualname!r} is defined inside a function, so a step process cannot import it",
            fix="define steps and pipelines at module level",
        )
    module = func.__module__
    if module == "__main__":
        # A script run as __main__: the step process imports it by file stem from its folder
        # (see PipelineSnapshot.source_roots), without re-running its `if __name__` block.
        main_file = getattr(sys.modules["__main__"], "__file__", None)
        if not main_file:
            raise PipelineDefinitionError(
                f"{qualname!r} is defined in an interactive session, so a step process cannot import it",
                fix="put the steps in a module or script file",
            )
        module = os.path.splitext(os.path.basename(main_file))[0]
    return f"{module}:{qualname}"


def _main_root() -> list[str]:
    """The folder of the script run as ``__main__`` (where its steps are imported from) — not
    when ``__main__`` is a console script such as ``orcakit`` or ``pytest`` in the environment's
    bin folder, which holds no user code."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if not main_file:
        return []
    folder = os.path.dirname(os.path.abspath(main_file))
    if folder.startswith(os.path.abspath(sys.prefix) + os.sep) or "site-packages" in folder:
        return []
    return [folder]


@dataclass(frozen=True)
class StepOutput:
    """Placeholder for a step's output while a static pipeline compiles."""

    step: str
    output: str = "output"


class Step:
    """A function made into a pipeline step by :func:`step`."""

    def __init__(
        self,
        func: Callable,
        *,
        name: str | None = None,
        settings: dict[str, Any] | None = None,
        retry: StepRetryConfig | dict | None = None,
        environment: dict[str, str] | None = None,
    ) -> None:
        self.func = func
        self.name = name or func.__name__
        self.source = source_of(func)
        settings = dict(settings or {})
        unknown = set(settings) - set(_KNOWN_SETTINGS)
        if unknown:
            raise PipelineDefinitionError(
                f"step {self.name!r}: unknown settings {sorted(unknown)}",
                fix=f"use one of {list(_KNOWN_SETTINGS)}, e.g. settings={{'resources': ResourceSettings(cpu_count=2)}}",
            )
        resources = settings.get("resources") or ResourceSettings()
        self.resources = resources if isinstance(resources, ResourceSettings) else ResourceSettings(**resources)
        self.retry = retry if retry is None or isinstance(retry, StepRetryConfig) else StepRetryConfig(**retry)
        self.environment = validate_environment(dict(environment or {}), f"step {self.name!r}")
        self.signature = inspect.signature(func)
        functools.update_wrapper(self, func)

    def with_options(self, **options: Any) -> "Step":
        """A copy with other settings/retry/environment (ZenML's ``with_options``)."""
        current = {
            "name": self.name,
            "settings": {"resources": self.resources},
            "retry": self.retry,
            "environment": self.environment,
        }
        return Step(self.func, **{**current, **options})

    def __call__(self, *args: Any, id: str | None = None, after: Any = None, **kwargs: Any) -> Any:
        compiling = _COMPILING.get()
        if compiling is not None:
            return compiling.add(self, args, kwargs, id, after)
        dynamic = _DYNAMIC.get()
        if dynamic is not None:
            return dynamic(self, args, kwargs, id, after)
        return self.func(*args, **kwargs)  # outside pipelines a step is a plain function

    def bind(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise PipelineDefinitionError(f"step {self.name!r} called with the wrong arguments: {exc}") from None
        bound.apply_defaults()
        arguments = {}
        for name, value in bound.arguments.items():
            kind = self.signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                arguments.update(value)  # **inputs: each keyword is an argument of its own
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                if value:
                    raise PipelineDefinitionError(
                        f"step {self.name!r} takes *{name}; steps need named arguments", fix="pass them by keyword"
                    )
            else:
                arguments[name] = value
        return arguments

    def spec(self, name: str, arguments: dict[str, Any], after: list[str], is_ref: Callable[[Any], ArtifactRef | None]) -> StepSpec:
        """The StepSpec of one invocation; ``is_ref`` tells which argument values are artifacts."""
        inputs, parameters = {}, {}
        for key, value in arguments.items():
            ref = is_ref(value)
            if ref is not None:
                inputs[key] = ref
            else:
                try:
                    json.dumps(value, allow_nan=False)
                except (TypeError, ValueError):
                    raise PipelineDefinitionError(
                        f"argument {key!r} of step {name!r} is a {type(value).__name__}, which cannot be stored as a parameter",
                        fix="pass JSON values (str, numbers, bools, None, lists, dicts) or the output of another step",
                    ) from None
                parameters[key] = value
        upstream = list(dict.fromkeys([*(ref.step for ref in inputs.values()), *after]))
        try:
            return StepSpec(
                name=name,
                source=self.source,
                parameters=parameters,
                inputs=inputs,
                upstream=tuple(upstream),
                resources=self.resources,
                retry=self.retry,
                environment=self.environment,
            )
        except ValueError as exc:
            raise PipelineDefinitionError(f"step {name!r}: {exc}") from None


def step(func: Callable | None = None, **options: Any) -> Any:
    """Make a function a pipeline step: ``@step`` or ``@step(settings=..., retry=..., environment=...)``."""
    if func is None:
        return lambda f: Step(f, **options)
    return Step(func, **options)


@dataclass
class _Compilation:
    steps: dict[str, StepSpec] = field(default_factory=dict)

    def add(self, step_: Step, args: tuple, kwargs: dict, id: str | None, after: Any) -> StepOutput:
        name = id or _unique(step_.name, self.steps)
        if name in self.steps:
            raise PipelineDefinitionError(
                f"two step invocations are both named {name!r}", fix="give each invocation its own id=..."
            )
        after_names = [_after_name(item) for item in _as_list(after)]
        for upstream in after_names:
            if upstream not in self.steps:
                raise PipelineDefinitionError(
                    f"step {name!r} is to run after {upstream!r}, which is not (yet) a step of this pipeline",
                    fix="call the upstream step first and pass its output or its id to after=",
                )
        spec = step_.spec(
            name,
            step_.bind(args, kwargs),
            after_names,
            lambda value: ArtifactRef(step=value.step, output=value.output) if isinstance(value, StepOutput) else None,
        )
        self.steps[name] = spec
        return StepOutput(step=name)


_COMPILING: ContextVar[_Compilation | None] = ContextVar("orcakit_compiling", default=None)
#: Set inside a dynamic pipeline's orchestration environment to a callable that runs one step.
_DYNAMIC: ContextVar[Callable | None] = ContextVar("orcakit_dynamic", default=None)


def _unique(base: str, taken: dict) -> str:
    if base not in taken:
        return base
    n = 2
    while f"{base}_{n}" in taken:
        n += 1
    return f"{base}_{n}"


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple, set)) else [value]


def _after_name(item: Any) -> str:
    if isinstance(item, StepOutput):
        return item.step
    if isinstance(item, str):
        return item
    raise PipelineDefinitionError(f"after= takes step outputs or step ids, got {item!r}")


class Pipeline:
    """A function made into a pipeline by :func:`pipeline`."""

    def __init__(
        self,
        func: Callable,
        *,
        name: str | None = None,
        dynamic: bool = False,
        environment: dict[str, str] | None = None,
        execution_mode: ExecutionMode | str = ExecutionMode.CONTINUE_ON_FAILURE,
        schedule: Schedule | None = None,
    ) -> None:
        self.func = func
        self.name = name or func.__name__
        self.dynamic = dynamic
        self.environment = validate_environment(dict(environment or {}), f"pipeline {self.name!r}")
        self.execution_mode = ExecutionMode(execution_mode)
        self.schedule = schedule
        self.source = source_of(func)
        functools.update_wrapper(self, func)

    def with_options(self, **options: Any) -> "Pipeline":
        current = {
            "name": self.name,
            "dynamic": self.dynamic,
            "environment": self.environment,
            "execution_mode": self.execution_mode,
            "schedule": self.schedule,
        }
        return Pipeline(self.func, **{**current, **options})

    def compile(self, stack: StackSpec, *args: Any, **kwargs: Any) -> PipelineSnapshot:
        """The snapshot of this pipeline for ``stack``, called with ``args``/``kwargs``."""
        try:
            parameters = dict(inspect.signature(self.func).bind(*args, **kwargs).arguments)
        except TypeError as exc:
            raise PipelineDefinitionError(f"pipeline {self.name!r} called with the wrong arguments: {exc}") from None
        common = dict(
            pipeline_name=self.name,
            execution_mode=self.execution_mode,
            environment=self.environment,
            schedule=self.schedule,
            stack=stack,
            source_roots=_main_root(),
        )
        if self.dynamic:
            try:
                json.dumps(parameters)
            except TypeError:
                raise PipelineDefinitionError(
                    f"dynamic pipeline {self.name!r} takes parameters that are not JSON values",
                    fix="pass JSON values; the function is re-run inside the orchestration environment",
                ) from None
            return PipelineSnapshot(dynamic=True, pipeline_source=self.source, pipeline_parameters=parameters, **common)
        compilation = _Compilation()
        token = _COMPILING.set(compilation)
        try:
            self.func(*args, **kwargs)
        finally:
            _COMPILING.reset(token)
        if not compilation.steps:
            raise PipelineDefinitionError(
                f"pipeline {self.name!r} calls no step", fix="call at least one @step function in the pipeline body"
            )
        return PipelineSnapshot(steps=compilation.steps, **common)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Compile and run on the active stack (see ``orcakit stack set``); returns the run."""
        from orcakit.reference.client import run_pipeline  # the reference runtime, imported on use

        return run_pipeline(self, *args, **kwargs)


def pipeline(func: Callable | None = None, **options: Any) -> Any:
    """Make a function a pipeline: ``@pipeline`` or ``@pipeline(dynamic=True, environment=...)``."""
    if func is None:
        return lambda f: Pipeline(f, **options)
    return Pipeline(func, **options)
