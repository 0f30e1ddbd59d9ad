"""The ZenML driver: ``pytest --flavor=zenml:<flavor>`` certifies a ZenML orchestrator flavor
as it is, ZenML's own (``local``, ``local_docker``) or a custom one
(``zenml:mypkg.flavors:MyOrchestratorFlavor``).

The checks are the same as for orcakit flavors (:class:`~orcakit.conformance.driver.Driver`):
this driver turns each probe DAG into a ZenML pipeline of probe steps
(:mod:`orcakit.conformance.zenml_runner`: per-step ``ResourceSettings``, ``StepRetryConfig``,
environment, upstream edges), runs it on a stack whose orchestrator is the flavor under test, in
a process of its own, and reads back what happened: the probe records through the stack's
artifact store, the run, its step runs and their attempts through ZenML's client, translated
into orcakit's records. Each session has a throwaway ZenML config and store
(``ZENML_CONFIG_PATH`` in a temp folder) with analytics off.

Where ZenML and orcakit do not say the same thing, the translation is a judgement; every one is
listed in :data:`MAPPING` and in the report (``flavor.mapping_notes``).
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

from orcakit import (
    Capabilities,
    ComponentSpec,
    ConfigurationError,
    ExecutionMode,
    ExecutionStatus,
    FlavorNotFoundError,
    PipelineSnapshot,
    ResourcesIgnoredWarning,
    StackSpec,
    UnsupportedFeatureError,
)
from orcakit.redaction import REDACTED, redact
from orcakit.reference import AttemptRecord, RunRecord, StepRecord

from .driver import Driver
from .harness import HarnessError, compile_probe_dag, RunObservation, StatusWatch, live_step_processes, supervise, secret_config_values, sql_rows
from .probes import dynamic_probe_dag

#: The image ``local_docker`` (any containerized ZenML orchestrator) runs steps in: ZenML, the
#: ZenML local extras and orcakit, built offline by scripts/testenv/ensure-zenml-image.sh.
IMAGE_VARIABLE = "ORCAKIT_ZENML_IMAGE"
DEFAULT_IMAGE = "orcakit-zenml:latest"
#: ZenML's kubernetes orchestrator runs its orchestrator pod and step pods in this image: the one
#: above with the kubernetes client ZenML pins (scripts/testenv/ensure-zenml-kubernetes-image.sh).
KUBERNETES_IMAGE_VARIABLE = "ORCAKIT_ZENML_KUBERNETES_IMAGE"
DEFAULT_KUBERNETES_IMAGE = "orcakit-zenml-kubernetes:latest"
#: The container registry a containerized orchestrator's stack gets (ZenML's kubernetes
#: orchestrator requires one); scripts/testenv/ensure-registry.sh serves one on loopback.
REGISTRY_VARIABLE = "ORCAKIT_ZENML_REGISTRY"
DEFAULT_REGISTRY = "127.0.0.1:5000"
#: The namespace of the local Kubernetes API environment a zenml:kubernetes session starts.
KUBEAPI_NAMESPACE = "zenml-conformance"
#: ZenML's limit on an artifact's name (ArtifactRequest.name).
ARTIFACT_NAME_LIMIT = 255
EXTRA_HINT = "pip install 'orcakit[zenml]' (ZenML 0.98, with its local extras)"

#: ZenML status -> orcakit status. RETRIED (an attempt that failed and was followed by another)
#: has no orcakit name: as an attempt it is FAILED; PAUSED/RESUMING (dynamic pipelines waiting
#: on a human) are RUNNING for orcakit's purposes.
STATUS = {
    "initializing": "initializing", "provisioning": "provisioning", "queued": "queued", "running": "running",
    "completed": "completed", "cached": "cached", "skipped": "skipped", "failed": "failed", "retrying": "retrying",
    "retried": "failed", "stopping": "stopping", "stopped": "stopped", "cancelling": "cancelling",
    "cancelled": "cancelled", "paused": "running", "resuming": "running",
}

#: The judgements this driver makes, as the report states them.
MAPPING = [
    "ZenML statuses are mapped by name onto orcakit's; a RETRIED step run (an attempt that failed and was retried) "
    "counts as a FAILED attempt, PAUSED/RESUMING as RUNNING.",
    "Each ZenML step run of one step name is one attempt, numbered by its version (1, 2, ...).",
    "A step of the pipeline for which the finished run has no step run at all, and whose probe never executed, "
    "is counted SKIPPED: ZenML's local orchestrators skip a step by not launching it, and record nothing.",
    "Resources: ZenML declares no resource support. ZenML's LocalOrchestrator and LocalDockerOrchestrator (and "
    "subclasses), and KubernetesOrchestrator, are read as WARNED for cpu, memory and gpu (they log 'ignoring resource "
    "configuration' per step); "
    "any other orchestrator is held to ENFORCED, as ZenML's custom-orchestrator guide asks it to respect "
    "ResourceSettings. A ZenML warning log line that says resources are ignored counts as orcakit's "
    "ResourcesIgnoredWarning.",
    "parallel_steps is false for ZenML's local orchestrators (they run steps one after another by design) and true "
    "for any other orchestrator; schedules, dynamic pipelines, native retries, execution modes, stop_run and "
    "fetch_status come from the orchestrator's own properties (is_schedulable, supports_dynamic_pipelines, "
    "handles_step_retries, supported_execution_modes, and whether _stop_run/fetch_status are implemented).",
    "A schedulable ZenML orchestrator is read as taking cron, interval and run-once schedules, but ZenML's "
    "KubernetesOrchestrator (and subclasses) as taking cron only: it makes a CronJob and refuses any other schedule "
    "when submitted.",
    "zenml:kubernetes without a kubernetes_context of the user's runs against orcakit's local Kubernetes API "
    "environment, started for the session (kubeconfig context orcakit-kubeapi, namespace zenml-conformance, "
    "local: true so that ZenML mounts its local stores into the pods; pods are Docker containers on the host network).",
    "ENV-1 is checked only for an orchestrator that declares a run-ID variable: an attribute run_id_env_var, or an "
    "ENV_*RUN_ID constant of its module that get_orchestrator_run_id() reads (local_docker: "
    "ZENML_DOCKER_ORCHESTRATOR_RUN_ID; local has none, its run ID lives in the orchestrator object).",
    "The run ID a step sees is Client().active_stack.orchestrator.get_orchestrator_run_id() called inside the step; "
    "the run record's orchestrator_run_id is ZenML's PipelineRun.orchestrator_run_id.",
    "A submission ZenML refuses before any run exists counts as a typed refusal (UnsupportedFeatureError) when its "
    "error names the feature asked for (schedule, dynamic pipeline, resources); any other error before a run exists "
    "is the flavor failing to submit.",
    "ZenML's StepRetryConfig takes whole seconds and at least one retry: retry cases with fractional delays or "
    "backoffs are not drawn for ZenML flavors, max_retries=0 is sent as no retry config.",
    "ZenML names each step output '<pipeline>::<step>::output' in a 255-character field, so a pipeline and a step "
    "name may have 245 characters together: RUNID-3's long-name cases are cut to that (the longer name first), a "
    "limit of ZenML's core rather than of the orchestrator.",
    "ENV-4 (definition-time refusal of unportable environment) is not exercised: the driver defines probe pipelines "
    "with orcakit's authoring API, so ZenML's own definition-time checks are not what would be tested.",
]


#: The key of the session's ZenML secret (every run references it; SEC-1 hunts its value).
SECRET_KEY = "CK_ZENML_SECRET_TOKEN"
#: Tables of ZenML's store whose rows the orchestrator writes (run metadata: what it returns from
#: submit_pipeline or get_*_metadata); every other row is ZenML's core's.
ORCHESTRATOR_TABLES = frozenset({"run_metadata", "run_metadata_resource"})


def _authored_environment(snapshot: PipelineSnapshot, step: str) -> dict[str, str]:
    """What the pipeline author wrote for ``step``: the pipeline's environment, the step's over it."""
    return {**snapshot.environment, **snapshot.steps[step].environment}


def _all_authored(snapshot: PipelineSnapshot) -> dict[str, str]:
    found = dict(snapshot.environment)
    for spec in snapshot.steps.values():
        found.update(spec.environment)
    return found


def _authored_keys(snapshot: PipelineSnapshot) -> set[str]:
    keys = set(snapshot.environment)
    for spec in snapshot.steps.values():
        keys.update(spec.environment)
    keys.update(snapshot.pipeline_parameters.get("env_keys", []) if snapshot.dynamic else [])
    return keys


def _container_specs(obs: RunObservation):
    """``docker inspect`` of every step container of the run that still exists. The environment
    ZenML handed the orchestrator as plain values is the container's environment by design (the
    channel the guide names), so those entries are left out; anything else in the spec (a ZenML
    secret's value above all: ZenML resolves secrets inside the step, never hands them over) is
    the orchestrator's writing."""
    ids = sorted({record["container"] for records in obs.starts.values() for record in records if record.get("container")})
    handed = {f"{key}={value}" for step in (obs.handed.get("steps") or {}).values()
              for key, value in step["environment"].items() if value is not None}
    for cid in ids:
        done = subprocess.run(["docker", "inspect", cid], capture_output=True, text=True)
        if done.returncode != 0:
            continue
        try:
            specs = json.loads(done.stdout)
            for spec in specs:
                config = spec.get("Config") or {}
                config["Env"] = [entry for entry in config.get("Env") or [] if entry not in handed]
            text = json.dumps(specs)
        except ValueError:
            text = done.stdout
        yield f"docker inspect {cid[:12]}", text


def _status(value: Any) -> ExecutionStatus:
    return ExecutionStatus(STATUS[str(getattr(value, "value", value))])


class ZenMLRunError(RuntimeError):
    """ZenML failed to submit a run, before any run existed, for a reason that is not a typed
    refusal of a feature: the flavor's failure to answer (blames the check's requirement)."""


class ZenMLDriver(Driver):
    """The ZenML driver (see the module docstring)."""

    kind = "zenml"
    defines_pipelines = False

    def __init__(self, reference: str, flavor: str, config: dict[str, Any], workdir: Path, facts: dict[str, Any],
                 timeout: float) -> None:
        self.reference = reference
        self.zenml_flavor = flavor
        self.config = config
        self.workdir = workdir
        self.facts = facts
        self.timeout = timeout
        self.run_store_url = facts["store_url"]
        self.artifact_store_uri = facts["artifact_store"]
        self.image = None
        if facts["containerized"]:
            self.image = (os.environ.get(KUBERNETES_IMAGE_VARIABLE, DEFAULT_KUBERNETES_IMAGE) if flavor == "kubernetes"
                          else os.environ.get(IMAGE_VARIABLE, DEFAULT_IMAGE))
        #: Framework findings of the runs since the plugin last took them (one check at a time
        #: per process: the plugin takes them after each check, so none outlives its check).
        self._findings: list[dict[str, Any]] = []

    def __repr__(self) -> str:
        return f"ZenMLDriver({self.reference!r})"

    # -- opening a session -----------------------------------------------------------------------

    @classmethod
    def open(cls, reference: str, *, config_file: str | None = None, options: tuple[str, ...] | list[str] = (),
             run_store_url: str | None = None, artifact_store_uri: str | None = None, timeout: float = 180.0) -> "ZenMLDriver":
        """A session on ``zenml:<flavor>``: a fresh ZenML config and store, the flavor's
        orchestrator configured from ``--flavor-config``/``--flavor-option``, a stack around it."""
        try:
            import zenml  # noqa: F401 - only to know it is there
        except ImportError:
            raise ConfigurationError("--flavor=zenml:... needs ZenML, which is not installed",
                                     fix=f"install the extra: {EXTRA_HINT}") from None
        if run_store_url or artifact_store_uri:
            raise ConfigurationError(
                "--conformance-run-store/--conformance-artifact-store do not apply to zenml: flavors",
                fix="drop them: the ZenML driver keeps runs in a throwaway ZenML store and the stack's artifact store")
        flavor = reference.removeprefix("zenml:")
        if not flavor:
            raise FlavorNotFoundError("--flavor=zenml: names no flavor", fix="e.g. --flavor=zenml:local")
        config = cls._config(config_file, options)
        workdir = Path(tempfile.mkdtemp(prefix="orcakit-zenml-"))
        os.environ.update(zenml_environment(workdir))  # this process reads the same store
        from zenml.utils import source_utils

        # ZenML derives its source root from __main__'s file, which a pytest-xdist worker lacks
        # ("Unable to determine source root" on every read of a run); the probe steps' sources
        # are installed modules, so the session's folder serves.
        source_utils.set_custom_source_root(str(workdir))
        import logging

        # Re-reading a run that changes under us is what the driver does; ZenML warns each time.
        logging.getLogger("zenml.models.v2.base.base").setLevel(logging.ERROR)
        # A ZenML secret every run references (pipeline ``secrets=[...]``, as ZenML's docs show):
        # its value reaches each step through ZenML's own mechanism, and SEC-1 holds the
        # orchestrator to never writing it in plain text (secret_values() includes it).
        secret = {"name": f"orcakit-conformance-{uuid.uuid4().hex[:8]}", "key": SECRET_KEY,
                  "value": f"orcakit-canary-{uuid.uuid4().hex}"}
        if flavor == "kubernetes":
            config = _kubernetes_session(workdir, config)
        request: dict[str, Any] = {"config": config, "secret": secret,
                                   "container_registry": os.environ.get(REGISTRY_VARIABLE, DEFAULT_REGISTRY)}
        if ":" in flavor:  # module:Class of a flavor class, ZenML's source is module.Class
            module, _, qualname = flavor.partition(":")
            request["source"] = f"{module}.{qualname}"
            request["flavor"] = None
        else:
            request["flavor"] = flavor
        # The session's first worker makes the stack and then serves runs (already warm).
        worker = _Worker(workdir)
        asked = worker.ask({**request, "__action__": "setup"})
        if asked["answer"] is None:
            worker.kill()
            raise HarnessError(f"the ZenML setup process gave no answer; its stderr ends with:\n{redact(asked['err'][-3000:])}")
        answer = asked["answer"]
        error = answer.get("error")
        if error:
            worker.kill()
        if error and error["type"] == "unknown-flavor":
            raise FlavorNotFoundError(
                f"{error['message']}; this ZenML has: {', '.join(error['available'])}",
                fix="use one of those names, or zenml:module:FlavorClass for a flavor of your own")
        if error:
            raise ConfigurationError(f"zenml:{flavor}: {error['message']}",
                                     fix="check --flavor-option/--flavor-config against the ZenML orchestrator's config")
        driver = cls(f"zenml:{flavor}", answer["flavor"], config, workdir, {**answer, "secret": secret}, timeout)
        driver._give_back(worker)
        return driver

    @staticmethod
    def _config(config_file: str | None, options) -> dict[str, Any]:
        """``--flavor-config`` overlaid with ``--flavor-option``; values are read as YAML
        scalars (``true``, ``3``, ``a``) and checked by ZenML's own config class in setup."""
        import yaml

        from orcakit.options import split_flavor_options

        values: dict[str, Any] = {}
        if config_file:
            loaded = yaml.safe_load(Path(config_file).read_text()) or {}
            if not isinstance(loaded, dict):
                raise ConfigurationError(f"{config_file} does not hold a mapping of config values")
            values.update(loaded)
        for key, raw in split_flavor_options(options).items():
            values[key] = yaml.safe_load(raw) if raw else raw
        return values

    # -- what the flavor is --------------------------------------------------------------------

    @property
    def name(self) -> str:
        return f"zenml:{self.zenml_flavor}"

    @property
    def version(self) -> str:
        return f"zenml {self.facts['zenml_version']} ({self.facts['orchestrator_class']})"

    @property
    def run_id_env_var(self) -> str | None:
        return self.facts["run_id_env_var"]

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(**self.facts["capabilities"])

    @property
    def declared_capabilities(self) -> Capabilities:
        # ZenML flavors declare nothing of their own; the manifest is derived from the
        # orchestrator's properties, which the setup read from the configured orchestrator.
        return self.capabilities

    def check_declaration(self) -> None:
        return None  # ZenML checked the flavor and config when the stack was created

    def mapping_notes(self) -> list[str]:
        return list(MAPPING)

    def not_applicable(self) -> dict[str, str]:
        if self.run_id_env_var is None:
            return {"ENV-1": f"{self.facts['orchestrator_class']} declares no run-ID environment variable "
                             "(ZenML does not require one; its run ID is what get_orchestrator_run_id() returns)"}
        return {}

    def config_field(self, name: str) -> bool:
        return name in self.facts["config_fields"]

    def with_config(self, **changes: Any) -> "ZenMLDriver":
        raise HarnessError("the ZenML driver runs one orchestrator config per session; "
                           "run another session with --flavor-option for another config")

    def secret_values(self) -> list[str]:
        return secret_config_values(self.config, self.facts["secret"]["value"])

    def handed_environment(self, obs: RunObservation, step: str, authored: dict[str, str | None]) -> dict[str, str | None]:
        """What ZenML handed the orchestrator for ``step`` (recorded at its entry by the runner):
        the expectation for the step's environment. Without a record (the orchestrator was never
        entered) the author's values stand."""
        handed = (getattr(obs, "handed", None) or {}).get("steps", {}).get(step)
        if handed is None:
            return authored
        environment = handed["environment"]
        return {key: environment[key] if key in environment else value for key, value in authored.items()}

    def take_framework_findings(self) -> list[dict[str, Any]]:
        taken, self._findings = self._findings, []
        return taken

    # -- running -------------------------------------------------------------------------------

    def stack(self) -> StackSpec:
        """The snapshot's stack: a description only (the ZenML stack is what runs)."""
        return StackSpec(orchestrator=ComponentSpec(flavor=self.name, name="orcakit-conformance", config=self.config),
                         artifact_store=self.artifact_store_uri, run_store=self.run_store_url)

    def compile_dag(self, dag: dict, *, environment: dict[str, str] | None = None, mode: ExecutionMode | None = None,
                    name: str | None = None) -> PipelineSnapshot:
        snapshot = compile_probe_dag(self.stack(), dag, environment=environment, mode=mode, name=name)
        # The DAG description travels with the snapshot: the runner builds the ZenML pipeline from it.
        return snapshot.model_copy(update={"pipeline_parameters": {"dag": dag}})

    def compile_dynamic(self, width: int, env_keys: list[str]) -> PipelineSnapshot:
        return dynamic_probe_dag.with_options(name=f"conformance_dyn_{uuid.uuid4().hex[:8]}").compile(self.stack(), width, env_keys)

    def _request(self, snapshot: PipelineSnapshot, run_name: str) -> dict[str, Any]:
        request: dict[str, Any] = {
            "snapshot_id": snapshot.snapshot_id, "name": snapshot.pipeline_name, "run_name": run_name,
            "environment": dict(snapshot.environment), "mode": snapshot.execution_mode.value,
            "run_id_env_var": self.run_id_env_var, "image": self.image,
            "secrets": [self.facts["secret"]["name"]], "watch_keys": sorted(_authored_keys(snapshot)),
        }
        if snapshot.schedule is not None:
            request["schedule"] = snapshot.schedule.model_dump(mode="json", exclude_none=True)
        if snapshot.dynamic:
            request.update(kind="dynamic", width=snapshot.pipeline_parameters["width"],
                           env_keys=snapshot.pipeline_parameters["env_keys"])
            return request
        nodes = []
        for node in snapshot.pipeline_parameters["dag"]["nodes"]:
            spec = snapshot.steps[node["name"]]
            resources = spec.resources.model_dump(exclude_none=True, exclude_defaults=True)
            retry = None
            if spec.retry is not None and spec.retry.max_retries > 0:
                retry = {"max_retries": spec.retry.max_retries, "delay": int(spec.retry.delay), "backoff": int(spec.retry.backoff)}
            probe = dict(node.get("spec", {}))
            # every probe also records the session secret's variable (SEC-1 makes sure it arrived)
            probe["env_keys"] = [*probe.get("env_keys", []), SECRET_KEY]
            nodes.append({"name": node["name"], "upstream": list(spec.upstream), "spec": probe,
                          "resources": resources, "retry": retry, "environment": dict(spec.environment)})
        request.update(kind="static", dag={"nodes": nodes})
        return request

    def expresses_retry(self, retry: Any) -> bool:
        """Whether ZenML's StepRetryConfig can say ``retry`` (whole seconds only)."""
        return float(retry.delay).is_integer() and float(retry.backoff).is_integer()

    def run(self, snapshot: PipelineSnapshot, *, requirement: str = "CAP-2", during=None,
            only_this_run: bool = False) -> RunObservation:
        run_name = f"orcakit-{snapshot.snapshot_id}-{uuid.uuid4().hex[:8]}"
        request = self._request(snapshot, run_name)
        started = time.monotonic()
        watch = ZenMLStatusWatch(run_name)
        watch.start()
        worker = self._take_worker()
        result: dict[str, Any] = {}

        def talk() -> None:
            result.update(worker.ask(request))

        supervise(talk, watch=watch, during=during, started=started, timeout=self.timeout, requirement=requirement,
                  pipeline_name=snapshot.pipeline_name, on_hang=worker.kill)
        if worker.alive():
            self._give_back(worker)
        if result.get("answer") is None:
            # The worker died (a step that kills itself kills it: ZenML's local orchestrator
            # runs steps inside it). The run is observed as ZenML recorded it.
            code = worker.returncode()
            answer = {"run": self._run_named(run_name), "error": None, "warnings": []}
            if answer["run"] is None:
                raise ZenMLRunError(f"the ZenML run process died (exit {code}) before a run existed\n"
                                    f"{redact(result.get('err', '')[-3000:])}")
        else:
            answer = result["answer"]
        if answer["run"] is None:
            raise self._refusal(snapshot, answer.get("error") or {}, result.get("err", ""))
        raised = (answer.get("handed") or {}).get("raised")
        if raised and not self._step_runs(answer["run"]):
            # The orchestrator refused at its entry, before any step: its answer, although ZenML
            # had already made a placeholder run (which stays, failed, with no step).
            refusal = self._refusal(snapshot, raised, result.get("err", ""))
            if isinstance(refusal, UnsupportedFeatureError):
                raise refusal
        caught = [warnings.WarningMessage(ResourcesIgnoredWarning(text), ResourcesIgnoredWarning, "zenml", 0)
                  for text in answer["warnings"] if "resource" in text.lower() and "ignor" in text.lower()]
        observation = self.observe(snapshot, answer["run"], time.monotonic() - started, caught, only_this_run)
        observation.history = watch.history
        # Stage 2 (what the orchestrator was handed) and what the orchestrator process printed
        # (ZenML's local orchestrators run steps in it: it is also their step output).
        observation.handed = answer.get("handed") or {}
        # (the runner's answer line, which carries the handed values, is the suite's, not the orchestrator's)
        observation.orchestrator_log = (result.get("out") or "") + "\n" + (result.get("err") or "")
        self._findings += self._stage_findings(snapshot, observation.handed)
        return observation

    def _stage_findings(self, snapshot: PipelineSnapshot, handed: dict) -> list[dict[str, Any]]:
        """What ZenML did between the pipeline author (stage 1) and the orchestrator's entry
        (stage 2), derived by comparing the two: values it changed, and secret-looking values it
        keeps in plain text in its own store. Evidence names the key and both values (secret-
        looking values redacted)."""
        findings: list[dict[str, Any]] = []
        framework = f"ZenML {self.facts['zenml_version']}"
        for step, record in (handed.get("steps") or {}).items():
            if step not in snapshot.steps:
                continue
            authored = _authored_environment(snapshot, step)
            for key, written in authored.items():
                seen = record["environment"].get(key)
                if seen != written:
                    findings.append({
                        "framework": framework, "stage": "pipeline author -> orchestrator's entry",
                        "what": "an environment value the pipeline author wrote is not the value ZenML hands the "
                                "orchestrator (ZenML changes it while compiling the pipeline, before any orchestrator "
                                "code runs)",
                        "requirements": "ENV-2" if key in snapshot.environment and key not in snapshot.steps[step].environment else "ENV-3",
                        "evidence": {"step": step, "variable": key, "written": repr(redact(written, key)),
                                     "handed": repr(redact(seen, key))},
                    })
        secrets = {key: value for key, value in _all_authored(snapshot).items()
                   if isinstance(value, str) and len(value) >= 8 and redact(value, key) != value}
        if secrets:
            tables: dict[str, set[str]] = {}
            for where, text in sql_rows(self.run_store_url):
                table = where.rsplit(" ", 1)[-1]
                if table in ORCHESTRATOR_TABLES:
                    continue  # written_by holds the orchestrator to these
                for key, value in secrets.items():
                    if value in text:
                        tables.setdefault(key, set()).add(table)
            for key, where in sorted(tables.items()):
                findings.append({
                    "framework": framework, "stage": "pipeline author -> framework store",
                    "what": "a secret-looking environment value is kept in plain text in ZenML's own store (written by "
                            "ZenML's core when it stores the pipeline snapshot, before the orchestrator's entry; ZenML's "
                            "answer is a secret referenced with secrets=[...])",
                    "requirements": "SEC-1",
                    "evidence": {"variable": key, "written": REDACTED, "stored in": ", ".join(f"ZenML store table {t}" for t in sorted(where))},
                })
        return findings

    # -- the session's ZenML workers -------------------------------------------------------------

    def _take_worker(self) -> "_Worker":
        """An idle worker of this session, or a new one (runs side by side get one each)."""
        with _POOL_LOCK:
            idle = self.__dict__.setdefault("_idle", [])
            while idle:
                worker = idle.pop()
                if worker.alive():
                    return worker
        return _Worker(self.workdir)

    def _give_back(self, worker: "_Worker") -> None:
        with _POOL_LOCK:
            self.__dict__.setdefault("_idle", []).append(worker)

    def worker_pids(self) -> set[int]:
        return {worker.pid for worker in _WORKERS if worker.alive()}

    @staticmethod
    def _step_runs(run_uuid: str) -> int:
        from zenml.client import Client

        return Client().list_run_steps(pipeline_run_id=run_uuid, size=1).total

    @staticmethod
    def _run_named(run_name: str) -> str | None:
        from zenml.client import Client

        runs = Client().list_pipeline_runs(name=run_name).items
        return str(runs[0].id) if runs else None

    def longest_names(self, pipeline_length: int, step_length: int) -> tuple[int, int]:
        """ZenML names each output artifact ``<pipeline>::<step>::output`` in a 255-character
        field: both names together get 245 characters (a limit of ZenML's core)."""
        budget = ARTIFACT_NAME_LIMIT - len("::") - len("::output")
        if pipeline_length + step_length <= budget:
            return pipeline_length, step_length
        step = max(1, min(step_length, budget - min(pipeline_length, budget // 2)))
        return budget - step, step

    def _refusal(self, snapshot: PipelineSnapshot, error: dict, stderr: str) -> Exception:
        message = error.get("message", "")
        text = message.lower()
        what = f"ZenML refused the submission: {error.get('type')}: {message}"
        if snapshot.schedule is not None and "schedul" in text:
            return UnsupportedFeatureError(what, feature="schedule")
        if snapshot.dynamic and "dynamic" in text:
            return UnsupportedFeatureError(what, feature="dynamic_pipelines")
        for kind, words in (("gpu", ("gpu",)), ("memory", ("memory",)), ("cpu", ("cpu",))):
            if any(word in text for word in words) and "resource" in text:
                return UnsupportedFeatureError(what, feature=f"resources.{kind}")
        if self.image and any(word in text for word in ("no such image", "imagenotfound", "docker error", "registry")):
            return HarnessError(f"the step image {self.image} is missing ({message[:300]}); "
                                "build it with scripts/testenv/ensure-zenml-image.sh")
        return ZenMLRunError(f"{what}\n{redact(stderr[-3000:])}")

    # -- reading back ----------------------------------------------------------------------------

    def observe(self, snapshot: PipelineSnapshot, run_uuid: str, duration: float, caught: list, only_this_run: bool) -> RunObservation:
        try:
            from zenml.client import Client
            from zenml.utils.pagination_utils import depaginate

            client = Client()
            run = client.get_pipeline_run(run_uuid)
            step_runs = depaginate(client.list_run_steps, pipeline_run_id=run.id)
            starts, ends = self._probe_records(snapshot.snapshot_id, run_uuid if only_this_run else None)
            by_name: dict[str, list] = {}
            for step_run in step_runs:
                by_name.setdefault(step_run.name, []).append(step_run)
            steps: dict[str, StepRecord] = {}
            attempts: list[AttemptRecord] = []
            outputs: dict[str, Any] = {}
            for name, versions in by_name.items():
                versions.sort(key=lambda s: s.version)
                last = versions[-1]
                steps[name] = StepRecord(step_name=name, status=_status(last.status), attempts=len(versions),
                                         started_at=versions[0].start_time, ended_at=last.end_time, reason=_reason(last),
                                         outputs={"output": "zenml"} if last.outputs.get("output") else {})
                for version in versions:
                    attempts.append(AttemptRecord(step_name=name, attempt=version.version, status=_status(version.status),
                                                  started_at=version.start_time or version.created, ended_at=version.end_time,
                                                  reason=_reason(version), host="zenml"))
                if last.outputs.get("output"):
                    try:
                        outputs[name] = last.outputs["output"][0].load()
                    except Exception:  # noqa: BLE001 - unreadable output: ART-1 says so
                        outputs[name] = None
            record = self._run_record(snapshot, run)
            if record.status.is_finished:
                for name in snapshot.steps:
                    if name not in steps and not starts.get(name):
                        steps[name] = StepRecord(step_name=name, status=ExecutionStatus.SKIPPED, attempts=0, started_at=None,
                                                 ended_at=None, reason="no ZenML step run: the orchestrator did not launch it",
                                                 outputs={})
            return RunObservation(snapshot=snapshot, run=record, runs_for_snapshot=self.runs_of(snapshot.snapshot_id),
                                  steps=steps, attempts=attempts, starts=starts, ends=ends, outputs=outputs,
                                  duration=duration, warnings=caught, run_id_env_var=self.run_id_env_var)
        except Exception as exc:
            raise HarnessError(f"could not read the ZenML run's records: {type(exc).__name__}: {exc}") from exc

    def _run_record(self, snapshot: PipelineSnapshot, run: Any) -> RunRecord:
        return RunRecord(id=str(run.id), snapshot_id=snapshot.snapshot_id, orchestrator_run_id=run.orchestrator_run_id,
                         pipeline_name=snapshot.pipeline_name, orchestrator=self.name, status=_status(run.status),
                         created_at=run.created, started_at=run.start_time, ended_at=run.end_time, reason=_reason(run),
                         metadata={"zenml_run": run.name})

    def runs_of(self, snapshot_id: str) -> list[RunRecord]:
        from zenml.client import Client
        from zenml.utils.pagination_utils import depaginate

        runs = depaginate(Client().list_pipeline_runs, name=f"startswith:orcakit-{snapshot_id}-")
        runs.sort(key=lambda r: r.created)
        placeholder = PipelineSnapshot(snapshot_id=snapshot_id, pipeline_name="?", stack=self.stack())
        return [self._run_record(placeholder, run) for run in runs]

    def _probe_root(self) -> Any:
        from zenml.client import Client

        from .zenml_runner import PROBE_FOLDER

        store = Client().active_stack.artifact_store
        return store, f"{store.path}/{PROBE_FOLDER}"

    def probes_of(self, snapshot_id: str) -> list[str]:
        store, root = self._probe_root()
        top = f"{root}/{snapshot_id}"
        if not store.exists(top):
            return []
        keys = []
        for folder, _, files in store.walk(top):
            for file in files:
                path = f"{folder}/{file}" if isinstance(folder, str) else f"{folder.decode()}/{file.decode()}"
                if path.endswith(".json"):
                    keys.append("probes/" + path[len(root) + 1:])
        return sorted(keys)

    def _probe_records(self, snapshot_id: str, run_uuid: str | None) -> tuple[dict, dict]:
        store, root = self._probe_root()
        starts: dict[str, list[dict]] = {}
        ends: dict[str, list[dict]] = {}
        for key in self.probes_of(snapshot_id):
            if run_uuid is not None and f"/{run_uuid}/" not in key:
                continue
            with store.open(f"{root}/{key.removeprefix('probes/')}", "rb") as handle:
                record = json.loads(handle.read())
            (starts if key.endswith(".start.json") else ends).setdefault(record["step"], []).append(record)
        for records in (*starts.values(), *ends.values()):
            records.sort(key=lambda r: r["attempt"])
        return starts, ends

    def anything_ran(self, snapshot_id: str) -> bool:
        if self.probes_of(snapshot_id):
            return True
        from zenml.client import Client

        client = Client()
        return any(client.list_run_steps(pipeline_run_id=run.id, size=1).total for run in self.runs_of(snapshot_id))

    def partial_artifacts(self) -> list[str]:
        store, _ = self._probe_root()
        found = []
        for folder, _, files in store.walk(store.path):
            found += [f"{folder}/{file}" for file in files if str(file).endswith(".partial")]
        return found

    def still_running(self, obs: RunObservation) -> list[str]:
        return self._remaining(obs, 1.5, running_only=True)

    def leftovers(self, obs: RunObservation, grace: float = 1.5) -> list[str]:
        return self._remaining(obs, grace, running_only=False)

    def _remaining(self, obs: RunObservation, grace: float, running_only: bool) -> list[str]:
        """Step processes of the run still alive here, step containers that still exist (in any
        state: a container ZenML created for a step and did not remove is left behind; only
        running ones with ``running_only``), and probes that began after the run ended."""
        deadline = time.monotonic() + grace
        # A step ZenML's local orchestrator runs inside the calling process (here one of the
        # session's long-lived workers) has that process's pid: the caller living on is not a
        # step left running.
        workers = {f"process {pid} " for pid in self.worker_pids()}
        while True:
            found = [p for p in live_step_processes(obs) if not any(p.startswith(w) for w in workers)]
            found += _step_containers(obs, running_only)
            if not found or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        seen = {(r["step"], r["attempt"]) for records in obs.starts.values() for r in records}
        for key in self.probes_of(obs.snapshot.snapshot_id):
            if f"/{obs.run.id}/" not in key:
                continue
            step, attempt = key.rsplit("/", 2)[-2], key.rsplit("/", 1)[-1].split(".", 1)[0]
            if key.endswith(".start.json") and (step, int(attempt)) not in seen:
                found.append(f"step {step!r} attempt {attempt} began executing after the run ended")
        return sorted(set(found))

    def written_by(self, obs: RunObservation):
        """What the orchestrator creates or writes (SEC-1 for ZenML is the orchestrator's part):
        every file of the stack's artifact store but the probes' own records (artifacts, step
        logs: ZenML keeps them there), the run metadata rows of ZenML's store (what an
        orchestrator adds), the orchestrator process's output, and the specs of the step
        containers it created (``docker inspect``). The rest of ZenML's store is written by
        ZenML's core before the orchestrator's entry: plain text there is a framework finding."""
        from .zenml_runner import PROBE_FOLDER

        secret = self.facts["secret"]
        if not any(record["env"].get(SECRET_KEY) == secret["value"] for records in obs.starts.values() for record in records):
            raise HarnessError(f"the ZenML secret {secret['name']!r} the pipeline references (secrets=[...]) did not reach "
                               f"any step as {SECRET_KEY}: SEC-1 cannot tell whether the orchestrator would write it")
        store, _ = self._probe_root()
        for folder, _, files in store.walk(store.path):
            folder = folder if isinstance(folder, str) else folder.decode()
            if f"/{PROBE_FOLDER}" in folder:
                continue
            for file in files:
                path = f"{folder}/{file if isinstance(file, str) else file.decode()}"
                with store.open(path, "rb") as handle:
                    yield f"artifact store {path}", handle.read().decode(errors="replace")
        for where, text in sql_rows(self.run_store_url):
            if where.rsplit(" ", 1)[-1] in ORCHESTRATOR_TABLES:
                yield where, text
        yield "the orchestrator's output (its process's stdout and stderr)", getattr(obs, "orchestrator_log", "")
        yield from _container_specs(obs)

    # -- operations --------------------------------------------------------------------------

    def stop_run(self, orchestrator_run_id: str) -> None:
        from zenml.client import Client
        from zenml.utils import source_utils

        source_utils.set_custom_source_root(str(self.workdir))  # as at the session's start
        client = Client()
        runs = client.list_pipeline_runs(orchestrator_run_id=orchestrator_run_id)
        for run in runs.items:
            client.active_stack.orchestrator.stop_run(run)

    def orchestrator(self):
        raise HarnessError("schedules through the ZenML driver are not implemented yet (SCHED-1 needs the schedule API of "
                           "the ZenML orchestrator); this ZenML orchestrator declares schedules")

    def ask_fresh_process(self, method: str, *args: Any) -> Any:
        raise HarnessError("the ZenML driver does not ask fresh processes yet (SCHED-1)")


class _Worker:
    """A long-lived ``zenml_runner serve`` process: one run at a time, one JSON line each way.
    It is a session of its own (killing it kills the steps it started)."""

    def __init__(self, workdir: Path) -> None:
        import queue
        import threading

        from .zenml_runner import ANSWER_MARK

        self.mark = ANSWER_MARK
        self.process = subprocess.Popen([sys.executable, "-m", "orcakit.conformance.zenml_runner", "serve"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        encoding="utf-8", errors="replace", cwd=workdir, start_new_session=True, bufsize=1)
        self.pid = self.process.pid
        self.lines: "queue.Queue[str | None]" = queue.Queue()
        self.err: list[str] = []
        threading.Thread(target=self._read, args=(self.process.stdout, self.lines.put, True), daemon=True).start()
        threading.Thread(target=self._read, args=(self.process.stderr, self.err.append, False), daemon=True).start()
        _WORKERS.add(self)

    @staticmethod
    def _read(stream, put, say_end: bool) -> None:
        for line in stream:
            put(line)
        if say_end:
            put(None)  # the worker ended: whoever waits for an answer stops waiting

    def alive(self) -> bool:
        return self.process.poll() is None

    def returncode(self) -> int | None:
        return self.process.poll()

    def ask(self, request: dict) -> dict:
        """Send ``request``; ``{"answer": ..., "out": ..., "err": ...}`` (no answer: it died)."""
        start = len(self.err)
        out: list[str] = []
        answer = None
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except OSError:
            return {"answer": None, "out": "", "err": "".join(self.err[start:])}
        while True:
            line = self.lines.get()
            if line is None:
                self.lines.put(None)  # keep saying "ended" to later readers
                break
            if line.startswith(self.mark):
                answer = json.loads(line[len(self.mark):])
                break
            out.append(line)
        if answer is None:
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                pass
        return {"answer": answer, "out": "".join(out), "err": "".join(self.err[start:])}

    def kill(self) -> None:
        _kill(self.process)
        _WORKERS.discard(self)


#: Every worker of this process's sessions: each is a session of its own (so that killing a run
#: kills its steps), so an interrupted suite must end them itself.
_WORKERS: set[_Worker] = set()
_POOL_LOCK = __import__("threading").Lock()


@atexit.register
def _end_live_runs() -> None:
    for worker in list(_WORKERS):
        worker.kill()


#: The local Kubernetes API environments (``orcakit kubeapi`` processes) of this process's sessions.
_KUBEAPIS: list[subprocess.Popen] = []


@atexit.register
def _stop_kubeapis() -> None:
    for process in _KUBEAPIS:
        # SIGTERM: the environment stops its pods and removes their containers as it ends
        try:
            process.terminate()
            process.wait(60)
        except (OSError, subprocess.TimeoutExpired):
            _kill(process)


def _end_with_parent() -> None:
    """In the environment's process before it starts: SIGTERM it when the session's process dies
    without its atexit (a killed xdist worker), so that it stops its pods rather than living on."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: atexit alone ends it


def _kubernetes_session(workdir: Path, config: dict[str, Any]) -> dict[str, Any]:
    """``zenml:kubernetes`` as a user's stack has it: a kubeconfig context and a namespace. Without
    a ``kubernetes_context`` (or ``incluster``) of the user's, the session starts the local
    Kubernetes API environment (``orcakit kubeapi``: pods run as Docker containers on the host
    network) and points ZenML at it: its kubeconfig as ``KUBECONFIG``, its context and a
    namespace of the session's, and ``local: true`` (ZenML mounts its local stores, the SQLite
    store and the local artifact store, into every pod as a hostPath volume; the environment's node
    is this machine)."""
    if config.get("kubernetes_context") or config.get("incluster"):
        return config
    kubeconfig = workdir / "kubeconfig"
    process = subprocess.Popen([sys.executable, "-m", "orcakit.kubeapi", "--port", "0", "--kubeconfig", str(kubeconfig),
                                "--namespace", KUBEAPI_NAMESPACE], stdout=subprocess.PIPE, stderr=open(workdir / "kubeapi.log", "w"),
                               text=True, start_new_session=True, preexec_fn=_end_with_parent)
    _KUBEAPIS.append(process)
    url = process.stdout.readline().strip()  # the URL once it serves (EOF if it could not start)
    if not url:
        process.wait(30)
        raise HarnessError("zenml:kubernetes: the local Kubernetes API environment (orcakit kubeapi) did not start:\n"
                           + (workdir / "kubeapi.log").read_text()[-2000:]
                           + "\n(it runs pods in Docker: is an engine up? scripts/testenv/ensure-docker.sh)")
    os.environ["KUBECONFIG"] = str(kubeconfig)
    return {"kubernetes_context": "orcakit-kubeapi", "kubernetes_namespace": KUBEAPI_NAMESPACE, "local": True, **config}


def zenml_environment(workdir: Path) -> dict[str, str]:
    """The session's ZenML: its own config and store, no analytics, no prompts, quiet logs."""
    return {
        "ZENML_CONFIG_PATH": str(workdir / "zenml"),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "ZENML_ENABLE_REPO_INIT_WARNINGS": "false",
        "ZENML_LOGGING_VERBOSITY": "WARN",
        "ZENML_AUTO_OPEN_DASHBOARD": "false",
        "AUTO_OPEN_DASHBOARD": "false",
        "ZENML_ENABLE_RICH_TRACEBACK": "false",
    }


def _call(action: str, request: dict, workdir: Path, timeout: float) -> dict:
    try:
        done = subprocess.run([sys.executable, "-m", "orcakit.conformance.zenml_runner", action], input=json.dumps(request),
                              capture_output=True, text=True, timeout=timeout, cwd=workdir)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HarnessError(f"the ZenML {action} process failed: {exc}") from None
    return _answer(done.stdout, done.stderr, action)


def _answer(stdout: str, stderr: str, action: str) -> dict:
    lines = [line for line in (stdout or "").splitlines() if line.startswith("{")]
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        raise HarnessError(f"the ZenML {action} process gave no answer; its stderr ends with:\n{redact((stderr or '')[-3000:])}") from None


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    except (OSError, subprocess.TimeoutExpired):
        pass


def _reason(model: Any) -> str | None:
    try:
        info = model.exception_info
    except Exception:  # noqa: BLE001 - not hydrated / not recorded
        info = None
    if info is not None:
        return info.message[:2000] if getattr(info, "message", None) else str(info)[:2000]
    status = str(getattr(model.status, "value", model.status))
    if status == "failed":
        return "failed (ZenML recorded no exception)"
    return None


def _step_containers(obs: RunObservation, running_only: bool = False) -> list[str]:
    ids = {(record["container"], record["step"]) for records in obs.starts.values() for record in records if record.get("container")}
    if not ids:
        return []
    try:
        import docker
    except ImportError:
        return [f"container {cid[:12]} (step {step!r}) cannot be looked up: the docker package is missing" for cid, step in ids]
    client = docker.from_env()
    found = []
    try:
        for cid, step in sorted(ids):
            try:
                container = client.containers.get(cid)
            except docker.errors.NotFound:
                continue
            if running_only and container.status not in ("running", "restarting", "paused"):
                continue
            found.append(f"container {cid[:12]} (step {step!r}) still exists ({container.status})")
    finally:
        client.close()
    return found


class ZenMLStatusWatch(StatusWatch):
    """Follows a ZenML run's statuses while it is under way (STATUS-1 is about transitions)."""

    def __init__(self, run_name: str, interval: float = 0.25) -> None:
        super().__init__(url="", snapshot_id="", interval=interval)
        self.run_name = run_name

    def _sample(self) -> None:
        try:
            from zenml.client import Client
            from zenml.utils.pagination_utils import depaginate

            client = Client()
            runs = client.list_pipeline_runs(name=self.run_name).items
            if not runs:
                return
            run = runs[0]
            self.run_record = _WatchedRun(run.orchestrator_run_id)
            self._note("run", _status(run.status).value)
            latest: dict[str, Any] = {}
            for step_run in depaginate(client.list_run_steps, pipeline_run_id=run.id):
                if step_run.name not in latest or step_run.version > latest[step_run.name].version:
                    latest[step_run.name] = step_run
            for name, step_run in latest.items():
                self._note(name, _status(step_run.status).value)
        except Exception:  # noqa: BLE001 - the run may not exist yet; sampling is best effort
            pass


class _WatchedRun:
    def __init__(self, orchestrator_run_id: str | None) -> None:
        self.orchestrator_run_id = orchestrator_run_id
