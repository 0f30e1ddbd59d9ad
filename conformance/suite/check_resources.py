"""RES-*: resource requests are enforced as declared, or refused/warned loudly — never ignored."""

from __future__ import annotations

import pytest
from hypothesis import example, given

from orcakit import ResourceSettings, ResourceSupport, ResourcesIgnoredWarning, UnsupportedFeatureError
from orcakit.capabilities import RESOURCE_KINDS
from orcakit.conformance.harness import violation
from orcakit.conformance.plugin import unsupported
from orcakit.conformance.strategies import cpu_counts, memory_strings

PAGE = 4096


def one_step(resources: dict, **spec) -> dict:
    return {"nodes": [{"name": "probe", "upstream": [], "spec": spec, "resources": resources}]}


def observed(fut, resources: dict, requirement: str) -> dict:
    obs = fut.run(fut.compile_dag(one_step(resources)))
    if not obs.executed("probe"):
        step = obs.steps.get("probe")
        raise violation(requirement, f"a step requesting {resources} did not run",
                        status=step and step.status.value, reason=step and step.reason)
    return obs.starts["probe"][0]


@pytest.mark.requirement("RES-1", "CAP-1")
def test_every_resource_kind_is_declared(capabilities):
    for kind in RESOURCE_KINDS:
        support = capabilities.resource_support(kind)
        if not isinstance(support, ResourceSupport):
            raise violation("RES-1", f"resource kind {kind!r} has no declared support", declared=support)


@pytest.mark.requirement("RES-2")
@given(cpu=cpu_counts)
@example(cpu=0.5)
def test_cpu_limit_inside_the_step_equals_the_request(fut, capabilities, cpu):
    if capabilities.cpu is not ResourceSupport.ENFORCED:
        unsupported(f"cpu is {capabilities.cpu.value}, not enforced")
    record = observed(fut, {"cpu_count": cpu}, "RES-2")
    if record["cpu"] is None or abs(record["cpu"] - cpu) > 0.001 + 1e-9:
        raise violation("RES-2", f"requested cpu_count={cpu}, the step sees a CPU limit of {record['cpu']}")


@pytest.mark.requirement("RES-3")
@given(memory=memory_strings())
@example(memory="300MB")
@example(memory="300MiB")
def test_memory_limit_inside_the_step_equals_the_request(fut, capabilities, memory):
    if capabilities.memory is not ResourceSupport.ENFORCED:
        unsupported(f"memory is {capabilities.memory.value}, not enforced")
    expected = ResourceSettings(memory=memory).memory_bytes
    record = observed(fut, {"memory": memory}, "RES-3")
    seen = record["memory"]
    if seen is None or not (expected - PAGE < seen <= expected):
        raise violation("RES-3", f"requested memory={memory} ({expected} bytes), the step sees a limit of {seen}",
                        hint="decimal units are powers of 10 (MB=10^6), binary units powers of 2 (MiB=2^20)")


@pytest.mark.requirement("RES-4")
def test_gpu_visibility_inside_the_step_equals_the_request(fut, capabilities):
    if capabilities.gpu is not ResourceSupport.ENFORCED:
        unsupported(f"gpu is {capabilities.gpu.value}, not enforced")
    record = observed(fut, {"gpu_count": 0}, "RES-4")
    if record["gpus"] != 0:
        raise violation("RES-4", f"requested gpu_count=0, the step sees {record['gpus']} GPU(s)")


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
            store = fut.run_store()
            try:
                runs = store.list_runs(snapshot_id=snapshot.snapshot_id)
                ran = any(store.steps(run.id) for run in runs)
            finally:
                store.close()
            if ran or fut.artifact_store().list(f"probes/{snapshot.snapshot_id}/"):
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
