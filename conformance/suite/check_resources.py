"""RES-*: resource requests are enforced as declared, or refused/warned loudly — never ignored."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from orcakit import OrcakitError, ResourceSettings, ResourceSupport, ResourcesIgnoredWarning, UnsupportedFeatureError
from orcakit.capabilities import RESOURCE_KINDS
from orcakit.conformance.harness import violation
from orcakit.conformance.plugin import unsupported
from orcakit.conformance.strategies import cpu_counts, memory_strings

PAGE = 4096


def one_step(resources: dict, **spec) -> dict:
    return {"nodes": [{"name": "probe", "upstream": [], "spec": spec, "resources": resources}]}


def with_resources(requests: list[dict]) -> dict:
    """A DAG with one step per request: a fan-out from the first step and a join, so that roots,
    middle steps and joins all carry their own resources (a flavor that applies only the first
    step's, only a single-step pipeline's, or the pipeline's settings to every step is caught)."""
    names = [f"r{i}" for i in range(len(requests))]
    nodes = []
    for i, (name, request) in enumerate(zip(names, requests)):
        upstream = [] if i == 0 else names[1:-1] if i == len(names) - 1 and len(names) > 2 else [names[0]]
        nodes.append({"name": name, "upstream": upstream, "spec": {}, "resources": request})
    return {"nodes": nodes}


def observed_per_step(fut, requests: list[dict], requirement: str) -> dict[str, dict]:
    dag = with_resources(requests)
    obs = fut.run(fut.compile_dag(dag))
    for node in dag["nodes"]:
        if not obs.executed(node["name"]):
            step = obs.steps.get(node["name"])
            raise violation(requirement, f"step {node['name']!r} requesting {node['resources']} did not run",
                            status=step and step.status.value, reason=step and step.reason)
    return {node["name"]: (node["resources"], obs.starts[node["name"]][0]) for node in dag["nodes"]}


@pytest.mark.requirement("RES-1", "CAP-1")
def test_every_resource_kind_is_declared(capabilities):
    for kind in RESOURCE_KINDS:
        support = capabilities.resource_support(kind)
        if not isinstance(support, ResourceSupport):
            raise violation("RES-1", f"resource kind {kind!r} has no declared support", declared=support)


#: Below one CPU, above one, a fraction that is not a round share, and a whole number.
CPU_EXAMPLE = [0.5, 1.5, 0.333, 2.0]
#: Every memory unit family, decimal next to binary (a flavor that reads MB as MiB is caught).
MEMORY_EXAMPLE = ["300MB", "300MiB", "400000KB", "400000KiB", "1GB", "1GiB"]


@pytest.mark.requirement("RES-2")
@given(cpus=st.lists(cpu_counts, min_size=2, max_size=4))
@example(cpus=CPU_EXAMPLE)
def test_cpu_limit_inside_every_step_equals_its_request(fut, capabilities, cpus):
    if capabilities.cpu is not ResourceSupport.ENFORCED:
        unsupported(f"cpu is {capabilities.cpu.value}, not enforced")
    for name, (request, record) in observed_per_step(fut, [{"cpu_count": cpu} for cpu in cpus], "RES-2").items():
        cpu = request["cpu_count"]
        if record["cpu"] is None or abs(record["cpu"] - cpu) > 0.001 + 1e-9:
            raise violation("RES-2", f"step {name!r} requested cpu_count={cpu} and sees a CPU limit of {record['cpu']}",
                            requests=cpus)


@pytest.mark.requirement("RES-3")
@given(memories=st.lists(memory_strings(), min_size=2, max_size=4))
@example(memories=MEMORY_EXAMPLE)
def test_memory_limit_inside_every_step_equals_its_request(fut, capabilities, memories):
    if capabilities.memory is not ResourceSupport.ENFORCED:
        unsupported(f"memory is {capabilities.memory.value}, not enforced")
    for name, (request, record) in observed_per_step(fut, [{"memory": m} for m in memories], "RES-3").items():
        expected = ResourceSettings(**request).memory_bytes
        seen = record["memory"]
        if seen is None or not (expected - PAGE < seen <= expected):
            raise violation("RES-3", f"step {name!r} requested memory={request['memory']} ({expected} bytes) and sees a limit of {seen}",
                            hint="decimal units are powers of 10 (MB=10^6), binary units powers of 2 (MiB=2^20)", requests=memories)


@pytest.mark.requirement("RES-4")
def test_no_gpu_is_visible_to_steps_that_request_none(fut, capabilities):
    if capabilities.gpu is not ResourceSupport.ENFORCED:
        unsupported(f"gpu is {capabilities.gpu.value}, not enforced")
    for name, (_, record) in observed_per_step(fut, [{"gpu_count": 0}] * 3, "RES-4").items():
        if record["gpus"] != 0:
            raise violation("RES-4", f"step {name!r} requested gpu_count=0 and sees {record['gpus']} GPU(s)")


@pytest.mark.requirement("RES-4")
def test_a_gpu_request_is_made_or_refused(fut, capabilities):
    """gpu_count=1 on one step of three: where the backend has a GPU, that step sees exactly one
    and the others none; where it has none, the flavor refuses the submission before anything
    runs (it cannot enforce the request). Running the step without making the request — no
    device request, no visibility variable — is ignoring it."""
    if capabilities.gpu is not ResourceSupport.ENFORCED:
        unsupported(f"gpu is {capabilities.gpu.value}, not enforced")
    requests = [{"gpu_count": 0}, {"gpu_count": 1}, {"gpu_count": 0}]
    snapshot = fut.compile_dag(with_resources(requests))
    try:
        obs = fut.run(snapshot, requirement="RES-4")
    except OrcakitError as exc:
        if "gpu" not in str(exc).lower():
            raise violation("RES-4", "a gpu_count=1 request was refused with an error that does not name the GPU request", error=str(exc))
        if fut.probes_of(snapshot.snapshot_id):
            raise violation("RES-4", "a step ran although the GPU request was refused")
        return
    for name, want in (("r0", 0), ("r1", 1), ("r2", 0)):
        if not obs.executed(name):
            raise violation("RES-4", f"step {name!r} did not run", status=obs.run.status.value, reason=obs.run.reason)
        seen = obs.starts[name][0]["gpus"]
        if seen != want:
            raise violation("RES-4", f"step {name!r} requested gpu_count={want} and sees {seen} GPU(s); a flavor that "
                            "cannot give the step its GPU must refuse the submission, not run it without one")


@pytest.mark.requirement("RES-5", "CAP-2")
@pytest.mark.parametrize("kind", RESOURCE_KINDS)
def test_unsupported_resource_kind_is_refused_or_warned(fut, capabilities, kind):
    support = capabilities.resource_support(kind)
    if support is ResourceSupport.ENFORCED:
        unsupported(f"{kind} is enforced (see RES-2..4)")
    request = {"cpu": {"cpu_count": 1.0}, "memory": {"memory": "256MiB"}, "gpu": {"gpu_count": 1}}[kind]
    snapshot = fut.compile_dag(one_step(request))
    if support is ResourceSupport.REJECTED:
        try:
            obs = fut.run(snapshot, requirement="RES-5")
        except UnsupportedFeatureError as exc:
            if exc.feature != f"resources.{kind}":
                raise violation("RES-5", f"refused with feature {exc.feature!r}, expected 'resources.{kind}'")
            if fut.anything_ran(snapshot.snapshot_id):
                raise violation("RES-5", f"a step ran although its {kind} request was refused")
            return
        raise violation("RES-5", f"{kind} is declared REJECTED but a step requesting it was accepted",
                        status=obs.run.status.value, executed=obs.executed("probe"))
    obs = fut.run(snapshot, requirement="RES-5")
    if not any(issubclass(w.category, ResourcesIgnoredWarning) for w in obs.warnings):
        raise violation("RES-5", f"{kind} is declared WARNED but no ResourcesIgnoredWarning was issued")


@pytest.mark.requirement("RES-6")
@pytest.mark.parametrize(
    "values",
    [{"memory": "8G"}, {"memory": "1.5GB"}, {"memory": "8gb"}, {"memory": "GB"}, {"cpu_count": 0}, {"cpu_count": -1},
     {"cpu_count": float("nan")}, {"gpu_count": -1}, {"gpu_count": 1.5}],
    ids=lambda v: next(f"{k}={v[k]}" for k in v),
)
def test_invalid_resource_settings_are_refused(values):
    try:
        ResourceSettings(**values)
    except ValueError as exc:
        field = next(iter(values))
        if field not in str(exc):
            raise violation("RES-6", "the error does not name the field", error=str(exc))
        return
    raise violation("RES-6", f"ResourceSettings({values}) was accepted")
