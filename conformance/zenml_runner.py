"""The ZenML side of the ZenML driver: ``python -m orcakit.conformance.zenml_runner ACTION``.

Everything that imports ZenML to *do* something runs here, in a process of its own, with the
session's throwaway ZenML config (``ZENML_CONFIG_PATH``) and analytics off, both set by the
driver in this process's environment:

- ``setup``: registers the orchestrator flavor under test (a ZenML flavor name, or a flavor
  class by source), creates a stack around it and activates it; prints what the suite needs to
  know of it (version, run-ID variable, capabilities derived from the orchestrator).
- ``run``: builds one ZenML pipeline of probe steps from a probe DAG and runs it on that stack.
  ZenML's local orchestrator runs every step inside the calling process, so a probe that kills
  itself, or a step that never returns, must never be the suite's own process.

Requests come as JSON on stdin, answers as one JSON line on stdout (the last line). This module
is also the step code: inside a ``local_docker`` step container it is imported for
:func:`zenml_probe` only (it needs ZenML, which that image has, and the cheap probe helpers).
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
from typing import Any, Optional

from zenml import get_step_context, pipeline, step
from zenml.client import Client

from orcakit.conformance.probes import probe_key, run_probe

#: Probe records live under this folder of the stack's artifact store.
PROBE_FOLDER = "orcakit-probes"
#: Upstream inputs a probe step can take (ZenML steps have a fixed signature): the widest fan-in
#: the suite draws is 6.
MAX_INPUTS = 8
STACK = "orcakit-conformance"


def _artifact_store():
    return Client().active_stack.artifact_store


def put(key: str, data: bytes) -> None:
    store = _artifact_store()
    path = f"{store.path}/{PROBE_FOLDER}/{key}"
    store.makedirs(path.rsplit("/", 1)[0])
    partial = f"{path}.{uuid.uuid4().hex}.partial"
    with store.open(partial, "wb") as handle:
        handle.write(data)
    store.rename(partial, path, overwrite=True)


def probe_exists(prefix: str, suffix: str) -> bool:
    store = _artifact_store()
    folder = f"{store.path}/{PROBE_FOLDER}/{prefix}"
    return store.exists(folder) and any(str(name).endswith(suffix) for name in store.listdir(folder))


@step(enable_cache=False)
def zenml_probe(spec: dict, in_0: Optional[dict] = None, in_1: Optional[dict] = None, in_2: Optional[dict] = None,
                in_3: Optional[dict] = None, in_4: Optional[dict] = None, in_5: Optional[dict] = None,
                in_6: Optional[dict] = None, in_7: Optional[dict] = None) -> dict:
    """:func:`orcakit.conformance.probes.probe`, as a ZenML step: the same record, taken with
    ZenML's own means (its step context, the active stack's orchestrator and artifact store)."""
    context = get_step_context()
    name = context.step_name
    run_uuid = str(context.pipeline_run.id)
    attempt = int(context.step_run.version)
    snapshot_id = spec["snapshot_id"]
    received = [in_0, in_1, in_2, in_3, in_4, in_5, in_6, in_7]
    upstream = list(spec.get("upstream", []))
    try:
        run_id: Any = Client().active_stack.orchestrator.get_orchestrator_run_id()
    except Exception as exc:  # noqa: BLE001 - what the step saw is the observation
        run_id = f"<get_orchestrator_run_id() raised {type(exc).__name__}: {exc}>"
    return run_probe(
        spec, step=name, attempt=attempt, run_uuid=run_uuid, run_id=run_id,
        context_run_id=context.pipeline_run.orchestrator_run_id, run_id_env_var=spec.get("run_id_env_var"),
        inputs={f"in_{up}": (value or {}).get("token") for up, value in zip(upstream, received)},
        ended=lambda up: probe_exists(f"{snapshot_id}/{run_uuid}/{up}/", ".end.json"),
        put=lambda phase, data: put(probe_key(snapshot_id, run_uuid, name, attempt, phase).removeprefix("probes/"), data),
    )


def _step_options(node: dict) -> dict:
    from zenml.config import ResourceSettings, StepRetryConfig

    options: dict[str, Any] = {}
    if node.get("resources"):
        options["settings"] = {"resources": ResourceSettings(**node["resources"])}
    if node.get("retry"):
        options["retry"] = StepRetryConfig(**node["retry"])
    if node.get("environment"):
        options["environment"] = dict(node["environment"])
    return options


def probe_pipeline(dag: dict, common: dict) -> None:
    """A ZenML pipeline of probes from a probe DAG (``harness.chain``/``strategies.dags``
    format, compiled by the driver): one probe step per node, invoked under the node's name,
    fed by its upstream steps' outputs (data edges give ZenML the upstream edges)."""
    outputs: dict[str, Any] = {}
    for node in dag["nodes"]:
        upstream = list(node.get("upstream", []))
        if len(upstream) > MAX_INPUTS:
            raise ValueError(f"a probe step takes at most {MAX_INPUTS} upstream steps, {node['name']!r} has {len(upstream)}")
        spec = {**node.get("spec", {}), **common, "upstream": upstream}
        options = _step_options(node)
        task = zenml_probe.with_options(**options) if options else zenml_probe
        inputs = {f"in_{i}": outputs[up] for i, up in enumerate(upstream)}
        outputs[node["name"]] = task(spec, id=node["name"], **inputs)


def dynamic_probe_pipeline(width: int, common: dict) -> None:
    """:func:`orcakit.conformance.probes.dynamic_probe_dag` in ZenML: root, ``width`` children
    decided at run time, a join."""
    root = zenml_probe({**common, "upstream": []}, id="root")
    children = [zenml_probe({**common, "upstream": ["root"]}, in_0=root, id=f"child_{i}") for i in range(width)]
    zenml_probe({**common, "upstream": [f"child_{i}" for i in range(width)]},
                id="join", **{f"in_{i}": child for i, child in enumerate(children)})


class _Warnings(logging.Handler):
    """Keeps ZenML's warnings (what a flavor says when it ignores a request)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(record.getMessage())
        except Exception:  # noqa: BLE001 - a bad log call is not ours to fail on
            pass


#: The run under way in this process (a worker serves one request at a time): where the
#: orchestrator's entry, patched once per class, writes what it was handed.
_CURRENT: dict[str, Any] = {"handed": {}, "keys": []}


def record_entry(handed: dict, keys: list[str]) -> None:
    """Record, at the orchestrator's entry, what ZenML hands it (stage 2 of a run): for each step,
    the environment (only the ``keys`` the pipeline author wrote, present or absent: ZenML's own
    variables may carry tokens), the secrets referenced by name and the resource settings. The
    checks judge the orchestrator against this, not against what the author wrote: what ZenML
    changed on the way in (placeholder substitution on compile) is ZenML's, not the orchestrator's.

    The entry is ``submit_pipeline`` (ZenML's ``run()`` builds each step's environment before it),
    the deprecated ``prepare_or_run_pipeline`` for an orchestrator that still implements only that
    (its steps' environment is what ``run()`` would have built), or ``submit_dynamic_pipeline``."""
    from zenml.orchestrators import BaseOrchestrator

    _CURRENT["handed"] = handed
    _CURRENT["keys"] = keys
    cls = type(Client().active_stack.orchestrator)
    if cls.__dict__.get("_orcakit_entry_recorded"):
        return  # a long-lived worker patched it for an earlier run; the record goes to _CURRENT
    cls._orcakit_entry_recorded = True

    def entered(entry: str, call):
        """Call the orchestrator's entry; keep what it raised (a refusal at its entry, before any
        step, is the orchestrator's typed answer, whatever ZenML does with the placeholder run)."""
        try:
            return call()
        except BaseException as exc:
            _CURRENT["handed"]["raised"] = {"type": f"{type(exc).__module__}.{type(exc).__name__}", "message": str(exc)[-4000:]}
            raise

    def note(entry: str, snapshot: Any, stack: Any, base: dict, step_environments: dict | None) -> None:
        from zenml.utils.env_utils import get_runtime_environment

        steps = {}
        keys = _CURRENT["keys"]
        for invocation, step_configuration in snapshot.step_configurations.items():
            config = step_configuration.config
            environment = (step_environments or {}).get(invocation)
            if environment is None:
                environment = {**base, **get_runtime_environment(config=config, stack=stack)}
            steps[invocation] = {
                "environment": {key: environment.get(key) for key in keys},
                "secrets": [str(secret) for secret in config.secrets],
                "resources": config.resource_settings.model_dump(mode="json", exclude_none=True),
            }
        _CURRENT["handed"].update(entry=entry, base={key: base.get(key) for key in keys}, steps=steps,
                      pipeline_secrets=[str(s) for s in snapshot.pipeline_configuration.secrets])

    if cls.submit_pipeline is not BaseOrchestrator.submit_pipeline:
        original = cls.submit_pipeline

        def submit_pipeline(self, snapshot, stack, base_environment, step_environments, placeholder_run=None):
            note("submit_pipeline", snapshot, stack, base_environment, step_environments)
            return entered("submit_pipeline", lambda: original(self, snapshot, stack, base_environment, step_environments,
                                                               placeholder_run=placeholder_run))

        cls.submit_pipeline = submit_pipeline
    elif cls.prepare_or_run_pipeline is not BaseOrchestrator.prepare_or_run_pipeline:
        original_prepare = cls.prepare_or_run_pipeline

        def prepare_or_run_pipeline(self, deployment, stack, environment, placeholder_run=None):
            note("prepare_or_run_pipeline", deployment, stack, environment, None)
            return entered("prepare_or_run_pipeline", lambda: original_prepare(self, deployment, stack, environment,
                                                                                placeholder_run=placeholder_run))

        cls.prepare_or_run_pipeline = prepare_or_run_pipeline
    if cls.submit_dynamic_pipeline is not BaseOrchestrator.submit_dynamic_pipeline:
        original_dynamic = cls.submit_dynamic_pipeline

        def submit_dynamic_pipeline(self, snapshot, stack, environment, placeholder_run=None):
            note("submit_dynamic_pipeline", snapshot, stack, environment, None)
            return entered("submit_dynamic_pipeline", lambda: original_dynamic(self, snapshot, stack, environment,
                                                                                placeholder_run=placeholder_run))

        cls.submit_dynamic_pipeline = submit_dynamic_pipeline


def run(request: dict) -> dict:
    handed: dict = {}
    record_entry(handed, request.get("watch_keys", []))
    caught = _Warnings()
    loggers = [logging.getLogger()] + ([] if logging.getLogger("zenml").propagate else [logging.getLogger("zenml")])
    for logger in loggers:
        logger.addHandler(caught)
    try:
        return _run(request, handed, caught)
    finally:
        for logger in loggers:
            logger.removeHandler(caught)


def _run(request: dict, handed: dict, caught: "_Warnings") -> dict:
    from zenml.config import DockerSettings
    from zenml.enums import ExecutionMode

    common = {"snapshot_id": request["snapshot_id"], "run_id_env_var": request.get("run_id_env_var")}
    options: dict[str, Any] = {"run_name": request["run_name"]}
    if request.get("environment"):
        options["environment"] = request["environment"]
    if request.get("mode"):
        options["execution_mode"] = ExecutionMode(request["mode"])
    if request.get("image"):
        options["settings"] = {"docker": DockerSettings(parent_image=request["image"], skip_build=True,
                                                        install_stack_requirements=False)}
    if request.get("secrets"):
        options["secrets"] = list(request["secrets"])
    if request.get("schedule"):
        from zenml.config.schedule import Schedule

        options["schedule"] = Schedule(**request["schedule"])
    error = None
    try:
        # A pipeline of the snapshot's name (ZenML takes the name from the definition).
        if request["kind"] == "dynamic":
            definition = pipeline(name=request["name"], dynamic=True, enable_cache=False)(dynamic_probe_pipeline)
            definition.with_options(**options)(width=request["width"], common={**common, "env_keys": request.get("env_keys", [])})
        else:
            definition = pipeline(name=request["name"], enable_cache=False)(probe_pipeline)
            definition.with_options(**options)(dag=request["dag"], common=common)
    except BaseException as exc:  # noqa: BLE001 - a failed run raises here; the records tell
        error = {"type": f"{type(exc).__module__}.{type(exc).__name__}", "message": str(exc)[-4000:]}
    run_uuid = None
    try:
        run_uuid = str(Client().get_pipeline_run(request["run_name"]).id)
    except Exception:  # noqa: BLE001 - refused before a run existed
        pass
    return {"run": run_uuid, "error": error, "warnings": caught.messages, "handed": handed}


# -- setup ------------------------------------------------------------------------------------


def _declared_run_id_variable(orchestrator: Any) -> str | None:
    """The orchestrator's run-ID environment variable, where it declares one: an attribute
    ``run_id_env_var`` (the orcakit convention), or a module constant ``ENV_*RUN_ID`` of the
    orchestrator's module that its class reads (ZenML's own naming, e.g. local_docker's
    ``ENV_ZENML_DOCKER_ORCHESTRATOR_RUN_ID``)."""
    declared = getattr(orchestrator, "run_id_env_var", None)
    if isinstance(declared, str) and declared:
        return declared
    import inspect

    for cls in type(orchestrator).__mro__:
        module = sys.modules.get(cls.__module__)
        if module is None or cls.__module__.startswith("zenml.orchestrators.base"):
            continue
        try:
            source = inspect.getsource(cls.get_orchestrator_run_id)
        except (OSError, TypeError, AttributeError):
            continue
        for key, value in vars(module).items():
            if key.startswith("ENV_") and key.endswith("RUN_ID") and isinstance(value, str) and key in source:
                return value
    return None


def _schedule_kinds(orchestrator: Any) -> list[str]:
    """The schedule kinds a schedulable orchestrator takes: all three, but for ZenML's
    KubernetesOrchestrator (and subclasses), which makes CronJobs and refuses any other schedule
    at submission ("only supports scheduling via CRON jobs", kubernetes_orchestrator.py)."""
    if not orchestrator.config.is_schedulable:
        return []
    if any(f"{cls.__module__}.{cls.__qualname__}" == KUBERNETES_ORCHESTRATOR for cls in type(orchestrator).__mro__):
        return ["cron"]
    return ["cron", "interval", "run_once"]


KUBERNETES_ORCHESTRATOR = "zenml.integrations.kubernetes.orchestrators.kubernetes_orchestrator.KubernetesOrchestrator"


def _capabilities(orchestrator: Any) -> dict:
    """orcakit's capability manifest, derived from what the ZenML orchestrator says of itself
    (see the driver's MAPPING for which parts are judgements)."""
    from zenml.orchestrators import BaseOrchestrator
    from zenml.orchestrators.local.local_orchestrator import LocalOrchestrator
    from zenml.orchestrators.local_docker.local_docker_orchestrator import LocalDockerOrchestrator

    sequential = isinstance(orchestrator, (LocalOrchestrator, LocalDockerOrchestrator))
    # ZenML's local orchestrators log "ignoring resource configuration" per step: WARNED.
    # Any other orchestrator is held to what the custom-orchestrator guide asks: respect them.
    # ZenML 0.98's KubernetesOrchestrator too: "Specifying step resources is not yet supported for
    # the Kubernetes orchestrator, ignoring resource configuration for step ..." (checked by hand:
    # its step pods get only a default 400Mi memory request, no limits).
    kubernetes = any(f"{c.__module__}.{c.__qualname__}" == KUBERNETES_ORCHESTRATOR for c in type(orchestrator).__mro__)
    resources = "warned" if sequential or kubernetes else "enforced"
    cls = type(orchestrator)
    # An orchestrator may say what it does with ResourceSettings (ZenML has no declaration for
    # it): orcakit_resource_support = {"cpu": "rejected"|"warned"|"enforced", ...}.
    declared = {kind: resources for kind in ("cpu", "memory", "gpu")}
    declared.update(getattr(orchestrator, "orcakit_resource_support", None) or {})
    return {
        **declared,
        "schedules": _schedule_kinds(orchestrator),
        "dynamic_pipelines": bool(orchestrator.supports_dynamic_pipelines),
        "native_retries": bool(orchestrator.config.handles_step_retries),
        "parallel_steps": not sequential,
        "stop_run": cls._stop_run is not BaseOrchestrator._stop_run,
        "fetch_status": cls.fetch_status is not BaseOrchestrator.fetch_status,
        "execution_modes": sorted(mode.value for mode in orchestrator.supported_execution_modes),
    }


def setup(request: dict) -> dict:
    """Register the flavor (when given by source), create the orchestrator and the stack, and
    describe them."""
    import zenml
    from zenml.enums import StackComponentType

    client = Client()
    flavor = request["flavor"]
    if request.get("source"):
        from zenml.stack.flavor import validate_flavor_source

        _, found = validate_flavor_source(source=request["source"], component_type=StackComponentType.ORCHESTRATOR)
        model = found.to_model(integration="custom", is_custom=True)
        # Keep the import path the user gave: ZenML re-derives a source relative to its source
        # root (the folder of __main__), which names a module of an editable install wrongly.
        model.source = request["source"]
        flavor = client.zen_store.create_flavor(flavor=model).name
    available = sorted({f.name for f in client.get_flavors_by_type(StackComponentType.ORCHESTRATOR)})
    if flavor not in available:
        return {"error": {"type": "unknown-flavor", "message": f"no ZenML orchestrator flavor named {flavor!r}",
                          "available": available}}
    from zenml.orchestrators import ContainerizedOrchestrator
    from zenml.utils import source_utils

    flavor_model = client.get_flavor_by_name_and_type(flavor, StackComponentType.ORCHESTRATOR)
    flavor_class = source_utils.load(flavor_model.source)
    # A containerized orchestrator runs steps in an image: the stack needs an image builder
    # (the driver hands it a prebuilt image with skip_build, so nothing is built or pulled).
    containerized = issubclass(flavor_class().implementation_class, ContainerizedOrchestrator)
    try:
        client.create_stack_component(name=STACK, flavor=flavor, component_type=StackComponentType.ORCHESTRATOR,
                                      configuration=request.get("config", {}))
    except Exception as exc:  # noqa: BLE001 - the config did not validate: the user's to fix
        return {"error": {"type": "bad-config", "message": f"{type(exc).__name__}: {exc}"}}
    components = {StackComponentType.ORCHESTRATOR: STACK,
                  StackComponentType.ARTIFACT_STORE: client.active_stack_model.components[StackComponentType.ARTIFACT_STORE][0].name}
    if containerized:
        client.create_stack_component(name=STACK, flavor="local", component_type=StackComponentType.IMAGE_BUILDER, configuration={})
        components[StackComponentType.IMAGE_BUILDER] = STACK
        from zenml.stack import StackComponent

        validator = StackComponent.from_model(client.get_stack_component(StackComponentType.ORCHESTRATOR, STACK)).validator
        # (StackValidator keeps what it requires privately)
        required = getattr(validator, "_required_components", None) or set()
        if StackComponentType.CONTAINER_REGISTRY in required and request.get("container_registry"):
            # (ZenML's kubernetes orchestrator requires one; steps run in the prebuilt image, so
            # nothing is pushed to it)
            client.create_stack_component(name=STACK, flavor="default", component_type=StackComponentType.CONTAINER_REGISTRY,
                                          configuration={"uri": request["container_registry"]})
            components[StackComponentType.CONTAINER_REGISTRY] = STACK
    client.create_stack(name=STACK, components=components)
    client.activate_stack(STACK)
    if request.get("secret"):
        secret = request["secret"]
        client.create_secret(name=secret["name"], values={secret["key"]: secret["value"]})
    stack = client.active_stack
    orchestrator = stack.orchestrator
    config_fields = sorted(type(orchestrator.config).model_fields)
    return {
        "flavor": flavor,
        "zenml_version": zenml.__version__,
        "orchestrator_class": f"{type(orchestrator).__module__}.{type(orchestrator).__qualname__}",
        "flavor_class": f"{flavor_class.__module__}.{flavor_class.__qualname__}",
        "run_id_env_var": _declared_run_id_variable(orchestrator),
        "capabilities": _capabilities(orchestrator),
        "config": json.loads(orchestrator.config.model_dump_json()),
        "config_fields": config_fields,
        "artifact_store": stack.artifact_store.path,
        "store_url": client.zen_store.config.url,
        "local_stores": str(zenml.config.global_config.GlobalConfiguration().local_stores_path),
        "containerized": containerized,
    }


#: Marks the answer line of a worker (its stdout also carries what steps run in it print).
ANSWER_MARK = "\x1eorcakit-answer "


def serve() -> int:
    """A long-lived worker: one JSON request per line on stdin, one marked answer line per
    request on stdout. It saves each run a Python start, ``import zenml`` and a ZenML client
    (seconds each on a loaded machine). The answers go to a duplicate of the original stdout:
    ZenML redirects sys.stdout while a step runs in this process."""
    import os

    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        action = request.pop("__action__", "run")
        try:
            answer = {"setup": setup, "run": run}[action](request)
        except BaseException as exc:  # noqa: BLE001 - the driver decides; the worker carries on
            answer = {"run": None, "error": {"type": f"{type(exc).__module__}.{type(exc).__name__}",
                                             "message": str(exc)[-4000:]}, "warnings": [], "handed": {}}
        answers.write(ANSWER_MARK + json.dumps(answer, default=str) + "\n")
        answers.flush()
    return 0


def main() -> int:
    action = sys.argv[1]
    if action == "serve":
        return serve()
    request = json.load(sys.stdin)
    answer = {"setup": setup, "run": run}[action](request)
    sys.stdout.write("\n" + json.dumps(answer, default=str) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
