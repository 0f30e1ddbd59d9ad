"""A local Kubernetes API environment: certify Kubernetes-based flavors offline (issues 10, 18).

No kube-apiserver, k3s, kind or envtest binary can be had on these machines, so this package
serves the part of the Kubernetes REST API that the kubernetes flavor, the official ``kubernetes``
Python client and ``kubectl`` use, with the semantics a real API server has. Start it with
``orcakit kubeapi`` (or ``python -m orcakit.kubeapi``; it prints the URL and writes a kubeconfig),
or from pytest with the ``kube_api`` fixture (``pytest_plugins = ["orcakit.kubeapi.fixtures"]``).
README.md, "The local Kubernetes API environment", says what it serves and what it does not.

- ``store``: one global revision counter, objects keyed by resource/namespace/name, a bounded
  event history, watches that resume from a resourceVersion and answer 410 Gone beyond it,
  watch-lists (``sendInitialEvents``);
- ``selectors``: label and field selectors;
- ``status``: the ``Status`` error bodies (NotFound, AlreadyExists, Conflict, Invalid, ...);
- ``resources``: the served resource types and their defaulting;
- ``validation``: schema validation with ``kubernetes-validate`` plus the semantic checks
  (DNS-1123 names, label values, quantities) and ``fieldValidation``;
- ``patch``: JSON merge patch, strategic merge patch (simple cases) and JSON patch;
- ``apply``: server-side apply and the ``managedFields`` of every write;
- ``protobuf``: ``application/vnd.kubernetes.protobuf`` bodies (what kubectl's typed clients send);
- ``tables``: the server-side printers ``kubectl get`` shows;
- ``discovery``: ``/version``, ``/api``, ``/apis``, resource lists and ``/openapi/v3``;
- ``handlers``: the REST verbs (create/get/list/watch/update/patch/apply/delete, ``/status``,
  ``/log``) and the access reviews;
- ``controllers``: garbage collection, namespaces, Jobs, CronJobs, TTL after finished, events;
- ``kubelet``: pods that really run, one Docker container per pod container, and their events;
- ``server``: the aiohttp application, a background-thread runner and the kubeconfig writer;
- ``cli``: ``orcakit kubeapi``; ``fixtures``: the pytest fixtures.
"""
