"""The flavor template (data): a cookiecutter template that scaffolds a new orchestrator flavor
package which passes ``pytest --flavor=NAME`` as generated.

Run it with ``orcakit flavor new`` or ``cookiecutter <this folder>``; nothing here is imported
by orcakit at run time except :data:`TEMPLATE_DIR`, which tells the CLI where the template is
installed.
"""

from pathlib import Path

#: The cookiecutter template folder (cookiecutter.json, hooks/, the project folder).
TEMPLATE_DIR = Path(__file__).resolve().parent
