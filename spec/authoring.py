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
from .parameters import bind_parameters, parameters_from_text
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


class DynamicRun:
    """Runtime hook for a dynamic pipeline's orchestration environment: runs the pipeline
    function live, turning each step call into a :class:`StepSpec` (a unique name, or the
    call's ``id=``; ``after=``; outputs of earlier calls as artifact inputs) that ``execute``
    runs to its end and whose output it returns. A runtime supplies ``execute`` (the reference
    one launches the step through ``orchestrator.run_isolated_step``).

    ``ran`` lists the step names in call order."""

    def __init__(self, execute: Callable[[StepSpec], Any]) -> None:
        self.execute = execute
        self.ran: list[str] = []
        self._produced: dict[int, tuple[Any, ArtifactRef]] = {}

    def run(self, func: Callable, parameters: dict[str, Any]) -> Any:
        token = _DYNAMIC.set(self._call)
        try:
            return func(**parameters)
        finally:
            _DYNAMIC.reset(token)

    def _ref(self, value: Any) -> ArtifactRef | None:
        entry = self._produced.get(id(value))
        return entry[1] if entry is not None and entry[0] is value else None

    def _after_name(self, item: Any) -> str:
        if isinstance(item, str):
            return item
        ref = self._ref(item)
        if ref is None:
            raise PipelineDefinitionError(
                f"after= takes step outputs or step ids, got {item!r}",
                fix="pass the value a step call returned, or that step's name/id",
            )
        return ref.step

    def _call(self, step_: "Step", args: tuple, kwargs: dict, step_id: str | None, after: Any) -> Any:
        name = step_id or _unique(step_.name, self.ran)
        after_names = [self._after_name(item) for item in _as_list(after)]
        spec = step_.spec(name, step_.bind(args, kwargs), after_names, self._ref)
        self.ran.append(name)
        value = self.execute(spec)
        self._produced[id(value)] = (value, ArtifactRef(step=name))
        return value


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
        """The snapshot of this pipeline for ``stack``, called with ``args``/``kwargs``, which
        are checked against the function's signature first (:mod:`orcakit.parameters`)."""
        parameters = bind_parameters(self.func, self.name, args, kwargs)
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
        # What the run was called with, where it is JSON (a static pipeline's steps carry the
        # values they use; this record says which came from a parameter, so that a secret-looking
        # one is sealed wherever it went: orcakit.sealing).
        recorded = {}
        for key, value in parameters.items():
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                continue
            recorded[key] = value
        return PipelineSnapshot(steps=compilation.steps, pipeline_parameters=recorded, **common)

    def parameters_from_text(self, raw: dict[str, str]) -> dict[str, Any]:
        """``{name: text}`` (``orcakit run --param name=text``) as values of the declared
        parameter types; see :func:`orcakit.parameters.parameters_from_text`."""
        return parameters_from_text(self.func, self.name, raw)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Compile and run on the active stack (see ``orcakit stack set``) with the installed
        runtime (see :func:`load_runner`); returns the run."""
        return load_runner()(self, *args, **kwargs)


def pipeline(func: Callable | None = None, **options: Any) -> Any:
    """Make a function a pipeline: ``@pipeline`` or ``@pipeline(dynamic=True, environment=...)``."""
    if func is None:
        return lambda f: Pipeline(f, **options)
    return Pipeline(func, **options)


#: Entry-point group of pipeline runners: ``run(pipeline, *args, **kwargs) -> run record``.
#: The contract knows no runtime; orcakit's distribution registers its reference runtime here
#: (``reference = "orcakit.reference:run_pipeline"``), and another runtime can do the same.
RUNNER_ENTRY_POINT_GROUP = "orcakit.runners"
#: Picks one runner by name when several are installed.
RUNNER_ENV = "ORCAKIT_RUNNER"


def load_runner() -> Callable[..., Any]:
    """The pipeline runner that calling a :class:`Pipeline` uses."""
    from importlib.metadata import entry_points

    runners = {ep.name: ep for ep in entry_points(group=RUNNER_ENTRY_POINT_GROUP)}
    wanted = os.environ.get(RUNNER_ENV)
    if wanted:
        if wanted not in runners:
            raise PipelineDefinitionError(
                f"{RUNNER_ENV}={wanted!r} names no installed pipeline runner (installed: {', '.join(sorted(runners)) or 'none'})",
                fix=f"unset {RUNNER_ENV} or set it to one of the installed runners",
            )
        return runners[wanted].load()
    if len(runners) == 1:
        return next(iter(runners.values())).load()
    if not runners:
        raise PipelineDefinitionError(
            "calling a pipeline runs it, but no pipeline runner is installed",
            why=f"the contract runs pipelines through a runtime registered in the {RUNNER_ENTRY_POINT_GROUP!r} entry-point group",
            fix="install orcakit as a distribution (pip install orcakit), which registers its reference runtime",
        )
    raise PipelineDefinitionError(
        f"several pipeline runners are installed ({', '.join(sorted(runners))}) and none is chosen",
        fix=f"set {RUNNER_ENV} to the one to use",
    )
