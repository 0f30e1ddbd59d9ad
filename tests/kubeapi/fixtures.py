"""``pytest_plugins = ["tests.kubeapi.fixtures"]``: the fixtures of :mod:`orcakit.kubeapi.fixtures`."""

from orcakit.kubeapi.fixtures import KubeApi, kube_api, kube_api_nopods  # noqa: F401 - fixtures are found by name
