"""The ``orcakit`` command line, in ZenML's style.

    orcakit flavor list [--verbose] | describe NAME | new [KEY=VALUE ...]          (flavors.py, scaffold.py)
    orcakit orchestrator register NAME --flavor=X [--key=value ...] | list | describe NAME | delete NAME
    orcakit stack register NAME -o ORCHESTRATOR [...] | set NAME | list | describe [NAME] | delete NAME
                                                                                 (stacks.py)
    orcakit run MODULE:PIPELINE [--stack NAME] [--param key=value ...] [--no-wait]  (run.py)
    orcakit runs list [--limit N] | show RUN | stop RUN                            (runs.py)
    orcakit certify ...    and any other command a package registers under the
                           'orcakit.commands' entry-point group                  (plugins.py)

Errors and exit codes are :mod:`.output`'s: a short what / why / fix message, exit code 2 for
usage and configuration errors, 1 for everything else, 130 after Ctrl-C.

Start-up is kept light: importing this package imports only click (and the ``orcakit``
contract); rich, SQLAlchemy and every flavor implementation are imported inside the commands
that need them, so ``orcakit --help`` and ``orcakit flavor list`` never load a backend.
"""

from __future__ import annotations

import click

from .flavors import flavor_group
from .plugins import PluginCommandsGroup
from .run import run_command
from .runs import runs_group
from .stacks import orchestrator_group, stack_group

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=PluginCommandsGroup, context_settings=CONTEXT_SETTINGS)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors (also: ORCAKIT_DEBUG=1).")
@click.version_option(package_name="orcakit", prog_name="orcakit")
def cli(debug: bool) -> None:
    """orcakit: run pipelines on pluggable orchestrators, and check that those orchestrators keep
    the contract.

    Registered orchestrators and stacks live in $ORCAKIT_HOME/config.json (default ~/.orcakit).
    """
    if debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")


for _command in (flavor_group, orchestrator_group, stack_group, run_command, runs_group):
    cli.add_command(_command)
del _command


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``orcakit = "orcakit.reference.cli:main"``)."""
    cli.main(args=argv, prog_name="orcakit")
