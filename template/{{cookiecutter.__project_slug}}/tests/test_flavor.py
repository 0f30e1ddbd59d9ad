{%- if cookiecutter.orchestrator_kind == "zenml" %}{% include "zenml_test_flavor.py.j2" %}{% else -%}
"""Unit tests of the {{ cookiecutter.flavor_name }} flavor: its declaration, config and the pieces that translate
the contract into backend calls. (The conformance suite, in test_conformance.py, runs pipelines.)"""

from __future__ import annotations

import pytest

from orcakit import (
    ConfigurationError,
    ResourceSettings,
    ResourceSupport,
    UnsupportedFeatureError,
    load_flavor,
    pipeline,
    step,
)
from {{ cookiecutter.package_name }} import RUN_ID_ENV, {{ cookiecutter.class_prefix }}Flavor, {{ cookiecutter.class_prefix }}OrchestratorConfig


#: One request of each resource kind.
REQUESTS = {"cpu": {"cpu_count": 1.0}, "memory": {"memory": "256MiB"}, "gpu": {"gpu_count": 1}}


@step
def noop() -> int:
    return 1


@pipeline
def one_step(kind: str):
    noop.with_options(settings={"resources": ResourceSettings(**REQUESTS[kind])})()


def test_the_flavor_is_registered_under_its_name_and_its_declaration_checks():
    flavor = load_flavor("{{ cookiecutter.flavor_name }}")
    assert isinstance(flavor, {{ cookiecutter.class_prefix }}Flavor)
    flavor.check()  # the implementation imports and backs every declared capability
    assert flavor.run_id_env_var == RUN_ID_ENV


def test_the_config_refuses_unknown_fields_and_bad_values():
    assert {{ cookiecutter.class_prefix }}OrchestratorConfig().max_parallelism >= 1
    with pytest.raises(ConfigurationError, match="unknown field"):
        {{ cookiecutter.class_prefix }}Flavor().validate_config({"no_such_field": 1})
    with pytest.raises(ConfigurationError, match="max_parallelism"):
        {{ cookiecutter.class_prefix }}Flavor().validate_config({"max_parallelism": 0})


def test_every_run_gets_a_new_run_id():
    orchestrator = {{ cookiecutter.class_prefix }}Flavor().create()
    ids = {orchestrator.new_run_id(None) for _ in range(20)}
    assert len(ids) == 20 and all(0 < len(run_id) <= 250 for run_id in ids)


@pytest.mark.parametrize("kind", ["cpu", "memory", "gpu"])
def test_a_resource_kind_that_is_not_enforced_is_refused_before_anything_runs(kind, tmp_path):
    from orcakit import ComponentSpec, StackSpec

    support = {{ cookiecutter.class_prefix }}Flavor.capabilities.resource_support(kind)
    if support is ResourceSupport.ENFORCED:
        pytest.skip(f"{kind} is enforced: the conformance suite checks the limit inside the step")
    stack = StackSpec(
        orchestrator=ComponentSpec(flavor="{{ cookiecutter.flavor_name }}", name="test"),
        artifact_store=str(tmp_path / "artifacts"),
        run_store=f"sqlite:///{tmp_path / 'runs.db'}",
    )
    snapshot = one_step.compile(stack, kind)
    with pytest.raises(UnsupportedFeatureError) as refused:
        {{ cookiecutter.class_prefix }}Flavor().create().validate_snapshot(snapshot)
    assert refused.value.feature == f"resources.{kind}"
{%- if cookiecutter.orchestrator_kind == "process" %}


def test_leftovers_are_found_and_killed_by_the_run_id_variable():
    import subprocess
    import sys
    import uuid

    orchestrator = {{ cookiecutter.class_prefix }}Flavor().create()
    run_id = uuid.uuid4().hex
    # Popen returns once exec has begun, before the kernel gives the new program its
    # /proc/PID/environ (empty for that instant): wait for the process to say it runs.
    program = "import time; print('running', flush=True); time.sleep(60)"
    process = subprocess.Popen([sys.executable, "-c", program], env={RUN_ID_ENV: run_id}, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "running\n"
        assert orchestrator.leftover_resources(None, run_id) == [f"process {process.pid} (carries {RUN_ID_ENV}={run_id})"]
        assert orchestrator.leftover_resources(None, "another-run") == []
        orchestrator.kill_run(run_id)
        assert process.wait(timeout=10) < 0
        assert orchestrator.leftover_resources(None, run_id) == []
    finally:
        process.kill()
{%- else %}


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({"cpu_count": 0.5}, {"cpu_period": 100_000, "cpu_quota": 50_000}),
        ({"cpu_count": 1.5}, {"cpu_period": 100_000, "cpu_quota": 150_000}),
        ({"memory": "1GB"}, {"mem_limit": 10**9, "memswap_limit": 10**9}),
        ({"memory": "1GiB"}, {"mem_limit": 2**30, "memswap_limit": 2**30}),
        ({}, {}),
    ],
)
def test_resources_become_the_engines_limits_exactly(resources, expected):
    orchestrator = {{ cookiecutter.class_prefix }}Flavor().create()
    assert orchestrator.translate_resources(ResourceSettings(**resources)) == expected
{%- endif %}
{%- endif %}
