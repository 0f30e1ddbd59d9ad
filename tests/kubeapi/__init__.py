"""The Kubernetes API environment moved to ``orcakit.kubeapi`` (issue 18); this package keeps
``tests.kubeapi.<module>`` imports and ``python -m tests.kubeapi`` working, and holds the golden
request/response pairs (``golden/``) that tests/test_kubeapi.py replays."""

import importlib
import sys

for _name in ("apply", "auth", "controllers", "discovery", "handlers", "kubelet", "operations", "patch", "protobuf", "resources",
              "selectors", "server", "status", "store", "tables", "validation"):
    sys.modules[f"{__name__}.{_name}"] = importlib.import_module(f"orcakit.kubeapi.{_name}")
