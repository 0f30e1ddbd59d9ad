"""Keep only the chosen kind's modules, and no byte code.

The template holds the modules of every orchestrator kind; the project gets those of its kind.
Byte code is removed because an installed template (site-packages) may have been compiled by
the installer, and ``__pycache__`` folders must not end up in a new project.
"""

from __future__ import annotations

import shutil
from pathlib import Path

KIND = "{{ cookiecutter.orchestrator_kind }}"
PACKAGE = Path("src") / "{{ cookiecutter.package_name }}"
#: Modules only one kind has (the shared ones — config, orchestrator — include their kind's text).
ONLY_FOR = {
    "process": ["processes.py"],
    "container": ["image.py", "containers.py"],
    "zenml": ["flavor.py"],
}

for kind, modules in ONLY_FOR.items():
    if kind != KIND:
        for module in modules:
            (PACKAGE / module).unlink()
for cache in list(Path(".").rglob("__pycache__")):
    shutil.rmtree(cache)
