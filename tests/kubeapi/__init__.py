"""A faithful, local Kubernetes API server for orcakit's tests (issue 10).

No kube-apiserver, k3s, kind or envtest binary can be had on these machines, so this package
serves the part of the Kubernetes REST API that the kubernetes flavor, the official ``kubernetes``
Python client and ``kubectl`` use, with the semantics a real API server has:

- ``store``: one global revision counter, objects keyed by resource/namespace/name, a bounded
  event history, watches that resume from a resourceVersion and answer 410 Gone beyond it;
- ``selectors``: label and field selectors;
- ``status``: the ``Status`` error bodies (NotFound, AlreadyExists, Conflict, Invalid, ...);
- ``resources``: the served resource types and their defaulting;
- ``validation``: schema validation with ``kubernetes-validate`` plus the semantic checks
  (DNS-1123 names, label values, quantities) and ``fieldValidation``;
- ``patch``: JSON merge patch, strategic merge patch (simple cases) and JSON patch;
- ``discovery``: ``/version``, ``/api``, ``/apis``, resource lists and ``/openapi/v3``;
- ``handlers``: the REST verbs (create/get/list/watch/update/patch/delete, ``/status``, ``/log``);
- ``controllers``: garbage collection, Jobs, CronJobs, TTL after finished;
- ``kubelet``: pods that really run, one Docker container per pod container;
- ``server``: the aiohttp application, a background-thread runner and the kubeconfig writer;
- ``fixtures``: the pytest fixture ``kube_api`` for tests.

Start it with ``python -m tests.kubeapi --port 0 --kubeconfig OUT`` (prints the URL), or from
tests with the ``kube_api`` fixture (``tests/kubeapi/fixtures.py``).
"""
