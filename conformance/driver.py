"""The driver interface: what the checks may ask of the system under test.

A *driver* runs probe DAGs on one orchestrator and reports what happened, in orcakit's terms
(:class:`RunObservation`: run and step records, attempts, the probe
records each step wrote from inside its execution environment). The checks are written once,
against this interface; each driver is one implementation:

- :class:`orcakit.conformance.harness.FlavorUnderTest`, the native driver: compiles orcakit
  pipelines, runs them on an orcakit flavor and reads orcakit's run store;
- :class:`orcakit.conformance.zenml_driver.ZenMLDriver`: turns the same probe DAGs into ZenML
  pipelines and runs them on a ZenML stack whose orchestrator is the flavor under test
  (``--flavor=zenml:<name>``).

A driver is chosen by the prefix of ``--flavor`` (:data:`DRIVERS`); none is special-cased by
the checks. Like a pluggy hook implementation, a driver class is checked when it is defined:
every method of the interface must be implemented with the interface's parameter names, so a
driver that drifts from the interface fails at import, not in the middle of a certification.

This module imports nothing heavy: the plugin imports it for every ``--flavor`` run.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import warnings

    from orcakit import BaseOrchestrator, Capabilities, ExecutionMode, PipelineSnapshot
    from orcakit.reference import AttemptRecord, RunRecord, StepRecord


@dataclass
class RunObservation:
    """Everything observable about one run after it ended."""

    snapshot: PipelineSnapshot
    run: RunRecord
    runs_for_snapshot: list[RunRecord]
    steps: dict[str, StepRecord]
    attempts: list[AttemptRecord]
    starts: dict[str, list[dict]]  # step -> probe start records, by attempt
    ends: dict[str, list[dict]]
    outputs: dict[str, Any]
    duration: float
    warnings: list[warnings.WarningMessage] = field(default_factory=list)
    #: Every status each record was seen in, in order: {"run": [...], "<step>": [...]}.
    history: dict[str, list[str]] = field(default_factory=dict)
    #: The flavor's run-ID variable, where it declares one (ENV-1 is checked only then).
    run_id_env_var: str | None = None
    #: Blame by stage, where a framework sits between the author and the orchestrator (ZenML):
    #: what the orchestrator was handed at its entry ({"steps": {step: {"environment": ...}}}),
    #: and what the orchestrator's own process printed.
    handed: dict[str, Any] = field(default_factory=dict)
    orchestrator_log: str = ""

    def executed(self, step: str) -> bool:
        return bool(self.starts.get(step))

    def run_ids(self) -> set:
        """Every run ID the steps saw; a value that is not hashable (a flavor may return
        anything) is kept as its JSON text, so that comparing IDs never crashes the check."""
        seen = set()
        for records in self.starts.values():
            for record in records:
                run_id = record["run_id"]
                seen.add(run_id if isinstance(run_id, (str, int, float, type(None))) else json.dumps(run_id, default=str))
        return seen


#: ``--flavor`` prefix -> ``module:Class`` of the driver; a reference without a known prefix
#: goes to the native driver. Loaded only when used (the ZenML driver imports ZenML).
DRIVERS = {"zenml": "orcakit.conformance.zenml_driver:ZenMLDriver"}
NATIVE = "orcakit.conformance.harness:FlavorUnderTest"


class Driver(abc.ABC):
    """The system under test, as the checks see it (the ``fut`` fixture)."""

    #: Which driver this is ("native", "zenml"), for the report.
    kind: ClassVar[str]
    #: The ``--flavor`` value, the validated config, and the longest a run may take.
    reference: str
    config: dict[str, Any]
    timeout: float
    #: Where runs keep their records and artifacts (shown redacted in the report).
    run_store_url: str
    artifact_store_uri: str
    #: Whether pipeline *definition* is the flavor's own (ENV-4 is about definition time): the
    #: native driver compiles with orcakit's authoring API, which is what a flavor author ships.
    defines_pipelines: ClassVar[bool] = True

    # -- opening a session ----------------------------------------------------------------------

    @classmethod
    @abc.abstractmethod
    def open(cls, reference: str, *, config_file: str | None = None, options: tuple[str, ...] | list[str] = (),
             run_store_url: str | None = None, artifact_store_uri: str | None = None, timeout: float = 180.0) -> "Driver":
        """A session on the flavor ``reference`` (without the driver's prefix), configured from
        ``--flavor-config``/``--flavor-option``; raises an ``OrcakitError`` that explains what
        is wrong with the reference or the config."""

    # -- what the flavor is and declares --------------------------------------------------------

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The flavor's name."""

    @property
    @abc.abstractmethod
    def version(self) -> str:
        """The flavor's version (the package that provides it)."""

    @property
    @abc.abstractmethod
    def run_id_env_var(self) -> str | None:
        """The environment variable that carries the run ID in every step, where the flavor
        declares one (ENV-1 is checked only then)."""

    @property
    @abc.abstractmethod
    def capabilities(self) -> "Capabilities":
        """The manifest in force for this config on this host (what the suite holds it to)."""

    @property
    @abc.abstractmethod
    def declared_capabilities(self) -> "Capabilities":
        """What the flavor declares (the in-force manifest may only narrow it, CAP-1)."""

    @abc.abstractmethod
    def check_declaration(self) -> None:
        """Raise when the flavor's declaration does not match its implementation (CAP-1)."""

    @abc.abstractmethod
    def mapping_notes(self) -> list[str]:
        """Where this driver's reading of the flavor is a judgement, in words for the report."""

    @abc.abstractmethod
    def not_applicable(self) -> dict[str, str]:
        """Requirements that do not apply to this flavor, with the reason the report gives."""

    @abc.abstractmethod
    def config_field(self, name: str) -> bool:
        """Whether the flavor's config has field ``name``."""

    @abc.abstractmethod
    def with_config(self, **changes: Any) -> "Driver":
        """The same flavor and stores with some config values changed."""

    @abc.abstractmethod
    def secret_values(self) -> list[str]:
        """Every secret this session knows, longest first: what output must never show."""

    # -- running ------------------------------------------------------------------------------

    @abc.abstractmethod
    def compile_dag(self, dag: dict, *, environment: dict[str, str] | None = None, mode: "ExecutionMode | None" = None,
                    name: str | None = None) -> "PipelineSnapshot":
        """A probe DAG (``strategies.dags`` format) as a snapshot this driver can run."""

    @abc.abstractmethod
    def compile_dynamic(self, width: int, env_keys: list[str]) -> "PipelineSnapshot":
        """The dynamic probe pipeline (root, ``width`` children, join)."""

    @abc.abstractmethod
    def expresses_retry(self, retry: Any) -> bool:
        """Whether this driver can hand ``retry`` (an orcakit StepRetryConfig) to the flavor as
        it is; cases it cannot express are not drawn for it."""

    @abc.abstractmethod
    def longest_names(self, pipeline_length: int, step_length: int) -> tuple[int, int]:
        """The longest pipeline and step name lengths, up to those asked, that the framework
        pipelines are defined with accepts (RUNID-3 draws long names to test the run ID)."""

    @abc.abstractmethod
    def run(self, snapshot: "PipelineSnapshot", *, requirement: str = "CAP-2", during=None,
            only_this_run: bool = False) -> "RunObservation":
        """Submit ``snapshot``, wait at most ``timeout`` s, and observe the result. A refused
        submission raises the flavor's typed error (``UnsupportedFeatureError``...)."""

    # -- reading back -------------------------------------------------------------------------

    @abc.abstractmethod
    def runs_of(self, snapshot_id: str) -> list["RunRecord"]:
        """Every run record of a snapshot, oldest first."""

    @abc.abstractmethod
    def probes_of(self, snapshot_id: str) -> list[str]:
        """The keys of the probe records of a snapshot's runs (empty: no step executed)."""

    @abc.abstractmethod
    def anything_ran(self, snapshot_id: str) -> bool:
        """Whether any step of the snapshot was recorded or executed (a refusal must leave none)."""

    @abc.abstractmethod
    def partial_artifacts(self) -> list[str]:
        """Partially written objects visible in the artifact store (ART-1)."""

    @abc.abstractmethod
    def leftovers(self, obs: "RunObservation", grace: float = 1.5) -> list[str]:
        """What still runs or exists of a run that ended (CLEAN-1)."""

    @abc.abstractmethod
    def still_running(self, obs: "RunObservation") -> list[str]:
        """What of a run that ended still *runs* (FAIL-2, CLEAN-2): a stopped container that
        was not removed is a leftover (CLEAN-1), not a step that still runs."""

    @abc.abstractmethod
    def written_by(self, obs: "RunObservation") -> Iterator[tuple[str, str]]:
        """``(where, text)`` for everything a run wrote that others than its step can read (SEC-1)."""

    # -- operations on the backend -------------------------------------------------------------

    @abc.abstractmethod
    def stop_run(self, orchestrator_run_id: str) -> None:
        """Stop a running run through the flavor (CLEAN-2)."""

    @abc.abstractmethod
    def orchestrator(self) -> "BaseOrchestrator":
        """An orchestrator object with orcakit's schedule and stop API (SCHED-1, CLEAN-2)."""

    @abc.abstractmethod
    def ask_fresh_process(self, method: str, *args: Any) -> Any:
        """``orchestrator.<method>(*args)`` answered by a new process (SCHED-1)."""

    # -- blame by stage (not abstract: a driver that sees one stage only keeps these) ------------

    def handed_environment(self, obs: "RunObservation", step: str, authored: dict[str, str | None]) -> dict[str, str | None]:
        """The environment the orchestrator was *handed* for ``step`` (the keys of ``authored``,
        ``None`` for absent), which the checks hold the step's environment to. A framework
        between the pipeline author and the orchestrator (ZenML) may change values before the
        orchestrator's entry; that is a framework finding, not the orchestrator's failure. A
        driver that does not observe that stage hands back what the author wrote."""
        return authored

    def take_framework_findings(self) -> list[dict[str, Any]]:
        """The framework findings of the runs since the last call (JSON-serialisable dicts: what
        the framework did differently from the spec, with evidence), handed over once; the plugin
        sends them to the controller in ``report.user_properties`` after each check."""
        return []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check_driver_class(cls)


def _interface() -> dict[str, Any]:
    return {name: value for name, value in vars(Driver).items() if getattr(value, "__isabstractmethod__", False)}


def check_driver_class(cls: type) -> None:
    """Refuse a driver whose methods do not take the interface's parameters (by name and kind),
    as pluggy refuses a hook implementation with arguments the hook does not have."""
    for name, spec in _interface().items():
        impl = inspect.getattr_static(cls, name, None)
        if impl is None or getattr(impl, "__isabstractmethod__", False):
            continue  # still abstract: abc refuses to instantiate it
        if isinstance(spec, classmethod):
            if not isinstance(impl, classmethod):
                raise TypeError(f"driver {cls.__qualname__}: {name} must be a classmethod, as in the Driver interface")
            spec, impl = spec.__func__, impl.__func__
        if isinstance(spec, property):
            if not isinstance(impl, property):
                raise TypeError(f"driver {cls.__qualname__}: {name} must be a property, as in the Driver interface")
            continue
        wanted = [(p.name, p.kind) for p in inspect.signature(spec).parameters.values()]
        got = [(p.name, p.kind) for p in inspect.signature(impl).parameters.values()]
        if got != wanted:
            raise TypeError(f"driver {cls.__qualname__}.{name}{inspect.signature(impl)} does not match the Driver "
                            f"interface {name}{inspect.signature(spec)}; take the same parameters")


def driver_class(reference: str) -> tuple[type[Driver], str]:
    """The driver for a ``--flavor`` reference, and the reference as that driver reads it
    (``zenml:local`` -> the ZenML driver and ``local``)."""
    from orcakit.sources import import_object

    prefix, sep, rest = reference.partition(":")
    target, flavor = (DRIVERS[prefix], rest) if sep and prefix in DRIVERS else (NATIVE, reference)
    cls = import_object(target)
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise TypeError(f"{target} is not a conformance Driver")
    return cls, flavor


def resolve_reference(name: str) -> tuple[str, dict[str, Any]]:
    """A flavor reference and base config: a flavor name, 'module:Class', or an orchestrator
    registered with ``orcakit orchestrator register``."""
    from orcakit import available_flavors

    if ":" in name or name in available_flavors():
        return name, {}
    from orcakit.reference import ConfigStore

    store = ConfigStore()
    registered = store.load().orchestrators
    if name in registered:
        return registered[name].flavor, dict(registered[name].config)
    return name, {}  # load_flavor will say what is registered
