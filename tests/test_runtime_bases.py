"""The runtime's bases are checked at registration, like the contract's: a flavor built on
RuntimeOrchestrator that misses a hook its declaration needs is refused before it runs."""

from __future__ import annotations

import pytest

from orcakit import Capabilities, Flavor, FlavorRegistrationError
from orcakit.reference import ContainerRuntimeOrchestrator, RuntimeOrchestrator
from orcakit.reference.flavors.local import LocalOrchestratorConfig


class NoLaunch(RuntimeOrchestrator):
    pass


class LaunchOnly(RuntimeOrchestrator):
    def launch_step(self, run, step_name, attempt):
        raise NotImplementedError


class ContainerWithoutResources(ContainerRuntimeOrchestrator):
    def get_image(self, snapshot, step_name=None):
        return "img"

    def launch_step(self, run, step_name, attempt):
        raise NotImplementedError


def flavor(implementation: type, **capabilities) -> Flavor:
    class Declared(Flavor):
        name = "declared"
        config_class = LocalOrchestratorConfig
        implementation_source = f"{__name__}:{implementation.__name__}"
        run_id_env_var = "DECLARED_RUN_ID"

    Declared.capabilities = Capabilities(**capabilities)
    return Declared()


@pytest.mark.parametrize(
    "implementation, capabilities, missing",
    [
        (NoLaunch, {}, "launch_step"),
        (ContainerWithoutResources, {}, "translate_resources"),
        (LaunchOnly, {"dynamic_pipelines": True}, "launch_orchestration()"),
    ],
)
def test_a_missing_hook_is_refused_at_registration(implementation, capabilities, missing) -> None:
    with pytest.raises(FlavorRegistrationError, match=missing):
        flavor(implementation, **capabilities).check()


def test_a_complete_runtime_flavor_registers() -> None:
    # stop_run is implemented by the base (the run store's stop channel), so it may be declared
    assert flavor(LaunchOnly, stop_run=True).check().name == "declared"
