"""The harness: resolves the flavor under test, runs probe pipelines on it with a time limit and
collects what the run store and the probes observed.

Failures of the *flavor* are reported as :class:`FlavorViolation` (an AssertionError, so pytest
shows it as a failure). Faults of the harness or the environment (a temp folder that cannot be
created, a store that cannot be read) raise :class:`HarnessError`, which the plugin reports with
the *error* outcome so that nobody mistakes a broken CI machine for a broken flavor.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orcakit import (
    BaseOrchestrator,
    Capabilities,
    ComponentSpec,
    ExecutionMode,
    Flavor,
    PipelineSnapshot,
    StackSpec,
    load_flavor,
)
from orcakit.reference import ArtifactStore, open_artifact_store
from orcakit.reference import run_snapshot
from orcakit.reference import AttemptRecord, RunRecord, RunStore, StepRecord

from orcakit.redaction import redact

from .driver import Driver, RunObservation  # noqa: F401 - RunObservation is re-exported
from .probes import dynamic_probe_dag, pid_namespace, probe_dag, process_start_ticks


class FlavorViolation(AssertionError):
    """The flavor broke a requirement; the message names the requirement and what was seen.

    ``requirement`` is the one ID this violation proves broken: the report blames that ID only,
    not every ID in the check's marker (a check of RUNID-1 that finds the run-ID variable wrong
    proves ENV-1 broken, and says nothing yet about RUNID-1)."""

    def __init__(self, requirement: str, text: str) -> None:
        super().__init__(text)
        self.requirement = requirement


class HarnessError(RuntimeError):
    """The harness or its environment failed; says nothing about the flavor."""


def violation(requirement: str, message: str, **evidence: Any) -> FlavorViolation:
    """The violation of ``requirement``; evidence is redacted (SEC-1): a check that quotes what
    a step saw must not print a secret-looking value into the report."""
    text = f"[{requirement}] {message}"
    if evidence:
        text += "\n" + "\n".join(f"  {key}: {_short(redact(value, key))}" for key, value in evidence.items())
    return FlavorViolation(requirement, redact(text))


class Findings:
    """The violations one check found, the first per requirement: a check that sees several
    requirements broken in one run reports all of them (so the report blames each), instead of
    whichever its loop happened to reach first."""

    def __init__(self) -> None:
        self.violations: dict[str, FlavorViolation] = {}
        self.compared: set[str] = set()

    def add(self, found: FlavorViolation) -> None:
        self.violations.setdefault(found.requirement, found)

    def verify(self, *requirements: str) -> None:
        """Note that the check compared what ``requirements`` promise: each of them that no
        violation was found for is reported *passed* even if the check fails on another one
        (a check that proves SEC-1 broken after comparing the environment has verified ENV-2)."""
        self.compared.update(requirements)

    def check(self, assertion, *args: Any, verifies: tuple[str, ...] = (), **kwargs: Any) -> Any:
        """Run one assertion of a check, keeping its violation instead of stopping there; when
        it returns, the ``verifies`` IDs were compared and found right."""
        try:
            result = assertion(*args, **kwargs)
        except FlavorViolation as found:
            self.add(found)
            return None
        self.verify(*verifies)
        return result

    def raise_any(self) -> None:
        found = list(self.violations.values())
        if not found:
            return
        error: BaseException = found[0] if len(found) == 1 else ExceptionGroup(
            f"requirements {', '.join(self.violations)} broken", found)
        error.verified = frozenset(self.compared - set(self.violations))  # read by the plugin
        raise error


def _short(value: Any, limit: int = 2000) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


@dataclass(repr=False)
class FlavorUnderTest(Driver):
    """The native driver: an orcakit flavor being certified, its validated config and where its
    runs keep their state (orcakit's run store and artifact store)."""

    kind = "native"

    reference: str
    flavor: Flavor
    config: dict[str, Any]
    workdir: Path
    run_store_url: str
    artifact_store_uri: str
    artifact_store_options: dict[str, Any] = field(default_factory=dict)
    timeout: float = 180.0

    @classmethod
    def resolve(cls, reference: str, config: dict[str, Any], workdir: Path | None = None, run_store_url: str | None = None,
                artifact_store_uri: str | None = None, timeout: float = 180.0) -> "FlavorUnderTest":
        flavor = load_flavor(reference)
        validated = flavor.validate_config(config)
        if workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix="orcakit-conformance-"))
        workdir.mkdir(parents=True, exist_ok=True)
        return cls(
            reference=reference,
            flavor=flavor,
            config=validated.model_dump(mode="json", exclude_unset=True),
            workdir=workdir,
            run_store_url=run_store_url or f"sqlite:///{workdir / 'runs.db'}",
            artifact_store_uri=artifact_store_uri or str(workdir / "artifacts"),
            timeout=timeout,
        )

    def __repr__(self) -> str:
        # Tracebacks and Hypothesis' "Falsifying example" show the arguments of every frame:
        # never the store password or the config, and no path into this session's temporary
        # stores (deleted when it ends; a reader of the report cannot open them).
        return f"<the flavor under test: {self.reference}>"

    def _repr_pretty_(self, printer, cycle) -> None:
        # Hypothesis' "Falsifying example" pretty-prints dataclasses field by field (the store
        # URLs, the temporary folder) unless told otherwise: the same short form as repr().
        printer.text(repr(self))

    def secret_values(self) -> list[str]:
        """Every secret this session knows (the run store's password, secret-looking config and
        artifact-store option values), longest first: what the suite's output must never show."""
        from sqlalchemy.engine import make_url

        try:
            password = make_url(self.run_store_url).password
        except Exception:  # noqa: BLE001 - not a URL SQLAlchemy can parse: nothing to hide
            password = None
        return secret_config_values(self.config, self.artifact_store_options, *([str(password)] if password else []))

    @classmethod
    def open(cls, reference: str, *, config_file: str | None = None, options: tuple[str, ...] | list[str] = (),
             run_store_url: str | None = None, artifact_store_uri: str | None = None, timeout: float = 180.0) -> "FlavorUnderTest":
        """A session on an orcakit flavor: a flavor name, 'module:Class', or an orchestrator
        registered with ``orcakit orchestrator register`` (its config under the options)."""
        from orcakit.options import parse_flavor_config

        from .driver import resolve_reference

        reference, base_config = resolve_reference(reference)
        flavor_config = parse_flavor_config(load_flavor(reference), config_file, options)
        return cls.resolve(reference, {**base_config, **flavor_config}, run_store_url=run_store_url,
                           artifact_store_uri=artifact_store_uri, timeout=timeout)

    def longest_names(self, pipeline_length: int, step_length: int) -> tuple[int, int]:
        return pipeline_length, step_length  # orcakit's own limits are what the strategy draws

    def expresses_retry(self, retry: Any) -> bool:
        return True  # orcakit's StepRetryConfig is the one the checks draw

    @property
    def name(self) -> str:
        return self.flavor.name

    @property
    def version(self) -> str:
        return self.flavor.version

    @property
    def run_id_env_var(self) -> str | None:
        return self.flavor.run_id_env_var

    @property
    def declared_capabilities(self) -> Capabilities:
        return self.flavor.capabilities

    def check_declaration(self) -> None:
        self.flavor.check()

    def mapping_notes(self) -> list[str]:
        return []  # orcakit's own terms: nothing to map

    def not_applicable(self) -> dict[str, str]:
        return {}  # every orcakit flavor declares its run-ID variable (Flavor.check)

    def runs_of(self, snapshot_id: str) -> list[RunRecord]:
        store = self.run_store()
        try:
            return store.list_runs(limit=1000, snapshot_id=snapshot_id)
        finally:
            store.close()

    def probes_of(self, snapshot_id: str) -> list[str]:
        return self.artifact_store().list(f"probes/{snapshot_id}/")

    def anything_ran(self, snapshot_id: str) -> bool:
        store = self.run_store()
        try:
            recorded = any(store.steps(run.id) for run in store.list_runs(snapshot_id=snapshot_id))
        finally:
            store.close()
        return recorded or bool(self.probes_of(snapshot_id))

    def partial_artifacts(self) -> list[str]:
        return [key for key in self.artifact_store().list("") if key.endswith(".partial")]

    def stop_run(self, orchestrator_run_id: str) -> None:
        self.orchestrator().stop_run(orchestrator_run_id)

    def submit_from_other_processes(self, snapshot: PipelineSnapshot, processes: int) -> list[dict]:
        """Run ``snapshot`` once from each of ``processes`` separate client processes, started
        together: what several users, or a scheduler on several machines, do. Returns what each
        client's run record said (``id``, ``orchestrator_run_id``) or ``error``."""
        self.check_stores()
        request = json.dumps({"method": "submit", "snapshot": snapshot.model_dump_json()})
        clients = [subprocess.Popen([sys.executable, "-m", "orcakit.conformance.fresh"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(processes)]
        answers = []
        try:
            for client in clients:
                client.stdin.write(request)
                client.stdin.close()
            for client in clients:
                out = client.stdout.read()
                client.wait(timeout=self.timeout)
                try:
                    answers.append(json.loads(out.strip().splitlines()[-1]))
                except (ValueError, IndexError):
                    answers.append({"error": redact(client.stderr.read()[-1000:])})
        finally:
            for client in clients:
                if client.poll() is None:
                    client.kill()
        return answers

    def stop_run_from_another_client(self, run: RunRecord) -> None:
        """Stop ``run`` as a user does: from a separate process with an orchestrator object of
        its own (what ``orcakit runs stop`` does), not through the object driving the run."""
        answer = self._fresh({"reference": self.reference, "config": self.config, "method": "stop_run",
                              "args": [run.orchestrator_run_id], "run_store": self.run_store_url, "run": run.id})
        if "error" in answer:
            raise violation("CLEAN-2", "stop_run raised when called from another process", error=answer["error"])

    def written_by(self, obs: RunObservation):
        """Every artifact-store object of the snapshot and the run (snapshots, step specs, logs,
        outputs — not the probe's own records, which hold what the step saw on purpose), the
        step logs kept on this machine, and every row of the run store."""
        store = self.artifact_store()
        for key in store.list(""):
            if key.startswith("probes/") or (obs.snapshot.snapshot_id not in key and obs.run.id not in key):
                continue
            yield f"artifact {key}", store.get(key).decode(errors="replace")
        logs = obs.run.metadata.get("logs")
        if logs and Path(logs).is_dir():
            for path in sorted(Path(logs).rglob("*")):
                if path.is_file():
                    # Named relative to the run: the folder is deleted with the session.
                    yield f"step log {path.relative_to(logs)} of run {obs.run.orchestrator_run_id}", path.read_text(errors="replace")
        yield from sql_rows(self.run_store_url)

    def config_field(self, name: str) -> bool:
        """Whether the flavor's config has field ``name`` (conventions such as ZenML's
        ``max_parallelism`` apply only where it does)."""
        return name in self.flavor.config_class.model_fields

    def with_config(self, **changes: Any) -> "FlavorUnderTest":
        """The same flavor and stores with some config values changed (validated as usual)."""
        config = self.flavor.validate_config({**self.config, **changes}).model_dump(mode="json", exclude_unset=True)
        return dataclasses.replace(self, config=config)

    def orchestrator(self) -> BaseOrchestrator:
        return self.flavor.create(self.config)

    @property
    def capabilities(self) -> Capabilities:
        """The manifest in force for this config on this host (what the suite holds it to)."""
        return self.orchestrator().capabilities

    def stack(self) -> StackSpec:
        source = None if ":" not in self.reference else self.reference
        return StackSpec(
            orchestrator=ComponentSpec(flavor=self.flavor.name, flavor_source=source, name="conformance", config=self.config),
            artifact_store=self.artifact_store_uri,
            run_store=self.run_store_url,
            artifact_store_options=self.artifact_store_options,
        )

    def run_store(self) -> RunStore:
        return RunStore(self.run_store_url)

    def artifact_store(self) -> ArtifactStore:
        return open_artifact_store(self.artifact_store_uri, self.artifact_store_options)

    def check_stores(self) -> None:
        """The stores must work before a flavor can be judged: if they do not, that is an
        environment fault (outcome *error*), not the flavor's."""
        try:
            self.run_store().close()
            self.artifact_store().list("snapshots/")
        except Exception as exc:
            # from None: the chained driver traceback would show the connection parameters.
            raise HarnessError(f"the conformance stores are not usable ({redact(str(exc))}); "
                               "fix --conformance-run-store / --conformance-artifact-store") from None

    # -- running -----------------------------------------------------------------------------

    def leftovers(self, obs: RunObservation, grace: float = 1.5) -> list[str]:
        """What still runs or exists of a run that ended: the flavor's own account
        (``leftover_resources``) and, for steps that ran as processes here, the OS's. A backend
        gets ``grace`` seconds to finish tearing down; anything left after that is left behind."""
        orchestrator = self.orchestrator()
        deadline = time.monotonic() + grace
        while True:
            # None: the flavor cannot tell (SPEC CLEAN-1); the OS's account still counts.
            found = (orchestrator.leftover_resources(obs.snapshot, obs.run.orchestrator_run_id) or []) + live_step_processes(obs)
            if not found or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        # A step that had not reached its probe when the run ended leaves no pid to look for;
        # if it runs on, it shows up by starting after the end.
        seen = {(r["step"], r["attempt"]) for records in obs.starts.values() for r in records}
        for key in self.artifact_store().list(f"probes/{obs.snapshot.snapshot_id}/{obs.run.id}/"):
            step, attempt = key.rsplit("/", 2)[-2], key.rsplit("/", 1)[-1].split(".", 1)[0]
            if key.endswith(".start.json") and (step, int(attempt)) not in seen:
                found.append(f"step {step!r} attempt {attempt} began executing after the run ended")
        return sorted(set(found))

    def still_running(self, obs: RunObservation) -> list[str]:
        # A flavor's leftover_resources() does not say which of its resources still run:
        # everything it still holds counts (unchanged from before there were drivers).
        return self.leftovers(obs)

    def ask_fresh_process(self, method: str, *args: Any) -> Any:
        """``orchestrator.<method>(*args)`` answered by a new Python process that builds the
        orchestrator from the flavor and config alone (:mod:`orcakit.conformance.fresh`)."""
        answer = self._fresh({"reference": self.reference, "config": self.config, "method": method, "args": list(args)})
        if "error" in answer:
            raise violation("CAP-2", f"{method}() raised in a fresh process", error=answer["error"])
        return answer["answer"]

    def _fresh(self, request: dict[str, Any]) -> dict[str, Any]:
        """The JSON answer of ``python -m orcakit.conformance.fresh`` to ``request`` (on stdin:
        the config may hold secrets)."""
        try:
            done = subprocess.run([sys.executable, "-m", "orcakit.conformance.fresh"], input=json.dumps(request),
                                  capture_output=True, text=True, timeout=self.timeout)
            return json.loads(done.stdout.strip().splitlines()[-1])
        except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as exc:
            stderr = redact(done.stderr[-1000:]) if "done" in locals() else ""
            raise HarnessError(f"a fresh process could not be asked {request['method']}(): {exc}; stderr: {stderr}") from exc

    def compile_dag(self, dag: dict, *, environment: dict[str, str] | None = None, mode: ExecutionMode | None = None,
                    name: str | None = None) -> PipelineSnapshot:
        return compile_probe_dag(self.stack(), dag, environment=environment, mode=mode, name=name)

    def compile_dynamic(self, width: int, env_keys: list[str]) -> PipelineSnapshot:
        return self.compile_dynamic_with_environment(width, env_keys)

    def compile_dynamic_with_environment(self, width: int, env_keys: list[str], environment: dict[str, str] | None = None,
                                         child_environment: dict[str, str] | None = None) -> PipelineSnapshot:
        """The dynamic probe pipeline with pipeline-level ``environment`` and step-level
        ``child_environment`` on the steps it adds at run time."""
        options: dict[str, Any] = {"name": f"conformance_dyn_{uuid.uuid4().hex[:8]}"}
        if environment:
            options["environment"] = environment
        return dynamic_probe_dag.with_options(**options).compile(self.stack(), width, env_keys, child_environment)

    def run(self, snapshot: PipelineSnapshot, *, requirement: str = "CAP-2", during=None, only_this_run: bool = False) -> RunObservation:
        """Submit ``snapshot``, wait at most ``timeout`` seconds, and observe the result.

        While the run is under way, the run store is polled and every status each record went
        through is kept (``RunObservation.history``). ``during(watch)`` runs in the calling
        thread while the run is under way (e.g. to stop it)."""
        self.check_stores()
        started = time.monotonic()
        outcome: dict[str, Any] = {}
        watch = StatusWatch(self.run_store_url, snapshot.snapshot_id)
        watch.start()

        def target() -> None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    outcome["run"] = run_snapshot(snapshot, wait=True)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
                    outcome["error"] = exc
                outcome["warnings"] = list(caught)

        supervise(target, watch=watch, during=during, started=started, timeout=self.timeout, requirement=requirement,
                  pipeline_name=snapshot.pipeline_name)
        if "error" in outcome:
            raise outcome["error"]
        observation = self.observe(snapshot, outcome["run"], time.monotonic() - started, outcome.get("warnings", []), only_this_run)
        observation.history = watch.history
        observation.run_id_env_var = self.run_id_env_var
        found = Findings()
        for broken in attempt_accounting(observation):
            found.add(broken)
        found.raise_any()
        return observation

    def observe(self, snapshot: PipelineSnapshot, run: RunRecord, duration: float, caught: list | None = None,
                only_this_run: bool = False) -> RunObservation:
        """What the run left behind. Probe records of *every* run of the snapshot are included
        unless ``only_this_run``: for a single submission, a step that attached to another run
        (a broken run ID) must still be seen."""
        store = self.run_store()
        try:
            artifacts = self.artifact_store()
            starts: dict[str, list[dict]] = {}
            ends: dict[str, list[dict]] = {}
            prefix = f"probes/{snapshot.snapshot_id}/" + (f"{run.id}/" if only_this_run else "")
            for key in artifacts.list(prefix):
                record = json.loads(artifacts.get(key))
                target = starts if key.endswith(".start.json") else ends
                target.setdefault(record["step"], []).append(record)
            for records in (*starts.values(), *ends.values()):
                records.sort(key=lambda r: r["attempt"])
            steps = store.steps(run.id)
            outputs = {}
            from orcakit.reference import dematerialize

            for name, step in steps.items():
                if step.outputs.get("output"):
                    key = f"runs/{run.id}/{name}/output"
                    outputs[name] = dematerialize(artifacts.get(key)) if artifacts.exists(key) else None
            return RunObservation(
                snapshot=snapshot,
                run=store.get_run(run.id),
                runs_for_snapshot=store.list_runs(limit=1000, snapshot_id=snapshot.snapshot_id),
                steps=steps,
                attempts=list(store.attempts(run.id)),
                starts=starts,
                ends=ends,
                outputs=outputs,
                duration=duration,
                warnings=list(caught or []),
            )
        except FlavorViolation:
            raise
        except Exception as exc:
            raise HarnessError(f"could not read the run's records: {exc}") from exc
        finally:
            store.close()


def attempt_accounting(obs: RunObservation) -> list[FlavorViolation]:
    """Every step of every run, whatever the check is about: attempts numbered 1, 2, ... with
    no more of them than the step's retry config allows (one without a config: RETRY-1, retries
    nobody asked for), and no attempt after one that completed (ORDER-2: a completed step is
    never executed again)."""
    found: list[FlavorViolation] = []
    if len(obs.runs_for_snapshot) != 1:
        # Several runs of the snapshot (several submissions, or steps that attached to runs of
        # their own): attempts cannot be told apart by run; the run-ID checks say what broke.
        return found
    for name, records in sorted(obs.starts.items()):
        spec = obs.snapshot.steps.get(name) if obs.snapshot.steps else None
        allowed = spec.total_attempts if spec is not None else 1
        ended = {record["attempt"]: record["time"] for record in obs.ends.get(name, [])}
        attempts = sorted(record["attempt"] for record in records)
        # An execution that started after (or while) an earlier attempt completed is a duplicate
        # execution (ORDER-2: a launched-twice join, a re-run completed step), not a retry.
        duplicates = [attempt for attempt in attempts if any(done < attempt for done in ended)]
        if duplicates:
            found.append(violation("ORDER-2", f"step {name!r} was executed {len(attempts)} times; attempt(s) {duplicates} "
                                   f"ran although attempt {min(ended)} completed", attempts=attempts,
                                   starts=[round(record["time"], 3) for record in records], completed=sorted(ended)))
        tries = [attempt for attempt in attempts if attempt not in duplicates]
        if len(tries) > allowed:
            retry = spec.retry.model_dump() if spec is not None and spec.retry is not None else None
            found.append(violation("RETRY-1", f"step {name!r} was attempted {len(tries)} times; its retry config allows "
                                   f"{allowed}", attempts=tries, retry=retry or "none (a step without a retry config is "
                                   "attempted exactly once)"))
    return found


def compile_probe_dag(stack: StackSpec, dag: dict, *, environment: dict[str, str] | None = None,
                      mode: ExecutionMode | None = None, name: str | None = None) -> PipelineSnapshot:
    """A probe DAG description compiled for ``stack`` (a fresh pipeline name unless given)."""
    options: dict[str, Any] = {"name": name or f"conformance_{uuid.uuid4().hex[:8]}"}
    if environment:
        options["environment"] = environment
    if mode is not None:
        options["execution_mode"] = mode
    return probe_dag.with_options(**options).compile(stack, dag)


#: A run that keeps changing status but never ends is stopped after this many timeouts.
RUNAWAY_FACTOR = 5


def supervise(target, *, watch, during, started: float, timeout: float, requirement: str, pipeline_name: str,
              on_hang=None) -> None:
    """Run ``target`` (which submits a run and waits for it) in a thread while ``watch`` follows
    the statuses and ``during(watch)`` acts on the run. A run is hung when it made no progress
    (no run or step status changed) for ``timeout`` seconds — as Kubernetes judges a Deployment
    by its progress deadline, not its age: on a loaded machine a correct backend is slower at
    every step but never stalls, while a hung one stalls at any load. A run that keeps
    progressing without ever ending counts as hung after ``RUNAWAY_FACTOR`` timeouts. ``on_hang``
    cleans up first."""
    thread = threading.Thread(target=target, daemon=True, name="conformance-run")
    thread.start()
    try:
        if during is not None:
            during(watch)
        while thread.is_alive():
            now = time.monotonic()
            stalled_at = max(started, watch.last_progress) + timeout
            deadline = min(stalled_at, started + RUNAWAY_FACTOR * timeout)
            if now >= deadline:
                break
            thread.join(min(deadline - now, 1.0))
    finally:
        watch.stop()
    if thread.is_alive():
        if on_hang is not None:
            on_hang()
        if time.monotonic() - started >= RUNAWAY_FACTOR * timeout:
            what = (f"the run of pipeline {pipeline_name!r} kept changing status but did not finish within "
                    f"{RUNAWAY_FACTOR * timeout:.0f}s ({RUNAWAY_FACTOR} x --conformance-timeout)")
        else:
            what = (f"the run of pipeline {pipeline_name!r} made no progress for {timeout:.0f}s "
                    "(no run or step status changed; --conformance-timeout)")
        raise violation(requirement, what, statuses={key: seen[-1] for key, seen in watch.history.items()},
                        why="a flavor must end every run in a terminal status and never hang (STATUS-2, CAP-2)")


def live_step_processes(obs: RunObservation) -> list[str]:
    """Step processes of the run still alive on this machine, as the OS sees them: a probe that
    ran here (same host and PID namespace) recorded its pid and when that process started, so
    a pid the kernel has since given to another process is not mistaken for it. (A forked step
    cannot be found by its environment: /proc shows the environment a process was exec-ed with.)"""
    alive = []
    for records in obs.starts.values():
        for record in records:
            if (record["host"] != socket.gethostname() or record.get("pid_started") is None
                    or record.get("pid_namespace") != pid_namespace()):
                continue  # not a process this harness can see by its pid
            if process_start_ticks(record["pid"]) == record["pid_started"] and not _zombie(record["pid"]):
                alive.append(f"process {record['pid']} (step {record['step']!r}, attempt {record['attempt']})")
    return alive


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


class StatusWatch:
    """Polls the run store while a run is under way and keeps the sequence of statuses each
    record went through (STATUS-1 is about transitions, which only the way there shows)."""

    def __init__(self, url: str, snapshot_id: str, interval: float = 0.03) -> None:
        self.url, self.snapshot_id, self.interval = url, snapshot_id, interval
        self.history: dict[str, list[str]] = {}
        #: time.monotonic() of the last status change seen (0: none yet); supervise() reads it.
        self.last_progress = 0.0
        self.run_record: RunRecord | None = None
        self._store: RunStore | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True, name="conformance-watch")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sample()  # the final state, whatever the poll interval missed
        if self._store is not None:
            self._store.close()

    def _note(self, key: str, status: str) -> None:
        seen = self.history.setdefault(key, [])
        if not seen or seen[-1] != status:
            seen.append(status)
            self.last_progress = time.monotonic()

    def _sample(self) -> None:
        try:
            if self._store is None:
                self._store = RunStore(self.url, create_tables=False)
            runs = self._store.list_runs(limit=5, snapshot_id=self.snapshot_id)
            if runs:
                self.run_record = runs[-1]
                self._note("run", runs[-1].status.value)
                for name, step in self._store.steps(runs[-1].id).items():
                    self._note(name, step.status.value)
        except Exception:  # the store may not exist yet; sampling is best effort
            pass

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()


def secret_config_values(*sources: Any) -> list[str]:
    """The secret-looking values of configs (by key or by look, :func:`orcakit.redaction.redact`)
    and any secrets given as plain strings, longest first."""
    found: set[str] = set()

    def collect(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                collect(v, str(k))
        elif isinstance(value, (list, tuple)):
            for v in value:
                collect(v, key)
        elif isinstance(value, str) and value and redact(value, key) != value:
            found.add(value)

    for source in sources:
        if isinstance(source, str):
            found.add(source)
        else:
            collect(source)
    return sorted(found, key=len, reverse=True)


def sql_rows(url: str):
    """``(where, text)`` for every row of every table of a SQL database (SEC-1 searches them)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        metadata = sqlalchemy.MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            for table in metadata.sorted_tables:
                for row in connection.execute(table.select()):
                    yield f"run-store table {table.name}", " ".join(str(value) for value in row)
    finally:
        engine.dispose()


def chain(n: int, **spec: Any) -> dict:
    """A DAG description: ``n`` probes in a line."""
    return {"nodes": [{"name": f"s{i}", "upstream": [f"s{i - 1}"] if i else [], "spec": dict(spec)} for i in range(n)]}
