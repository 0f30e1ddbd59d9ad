"""Flavors for tests/test_cli.py, loaded as ``--flavor=tests.pipelines.cli_flavors:NAME``.

``SecretiveFlavor`` is the local flavor with secret-looking config fields (to check the CLI
redacts them) and without the stop_run capability (to check ``orcakit runs stop`` refuses).
"""

from __future__ import annotations

from orcakit.reference.flavors.local import LocalFlavor, LocalOrchestratorConfig


class SecretiveConfig(LocalOrchestratorConfig):
    api_token: str | None = None
    endpoint: str | None = None
    labels: dict[str, str] = {}


class SecretiveFlavor(LocalFlavor):
    name = "secretive"
    config_class = SecretiveConfig
    description = "the local flavor with secrets in its config and no stop_run"
    capabilities = LocalFlavor.capabilities.model_copy(update={"stop_run": False})
