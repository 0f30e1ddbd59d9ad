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


# -- how this project installs orcakit (README.md's install line) ---------------------------------
# orcakit is on no package index, so `pip install -e ".[test]"` alone cannot find it. The README
# names the orcakit this project was generated from, as a pinned path pip installs from: the
# wheel or source folder that orcakit was installed from, else the source tree the template lives
# in. Only when neither is known (orcakit installed from an index) is the plain name left.


def orcakit_source() -> str | None:
    import json
    from importlib import metadata
    from urllib.parse import unquote, urlparse

    try:
        recorded = metadata.distribution("orcakit").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        recorded = None
    if recorded:
        url = json.loads(recorded).get("url", "")
        if url.startswith("file://") and Path(unquote(urlparse(url).path)).exists():
            return url
    source = Path("{{ cookiecutter._repo_dir }}").resolve().parent  # <checkout>/template
    pyproject = source / "pyproject.toml"
    if pyproject.is_file() and 'name = "orcakit"' in pyproject.read_text():
        return source.as_uri()
    return None


MARKER = "ORCAKIT-FROM-WHERE-GENERATED"
found = orcakit_source()
readme = Path("README.md")
readme.write_text(readme.read_text().replace(MARKER, f"orcakit @ {found}" if found else "orcakit"))
