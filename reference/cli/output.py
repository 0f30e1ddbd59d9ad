"""What the ``orcakit`` command prints, and how it ends: the console, markup escaping, error
messages and exit codes, and the click group that turns errors into them.

Errors: an :class:`orcakit.OrcakitError` is printed as a short red message (what / why / fix)
without a traceback; exit code 2 for usage and configuration errors, 1 for everything else
(a failed run included), 130 after Ctrl-C. ``--debug`` (or ``ORCAKIT_DEBUG=1``) adds tracebacks.

rich is imported only when something is printed, so that ``orcakit --help`` does not load it.
"""

from __future__ import annotations

import os
import traceback
from typing import TYPE_CHECKING, Any

import click

from orcakit import ConfigurationError, FlavorNotFoundError, OrcakitError, PipelineDefinitionError

if TYPE_CHECKING:
    from rich.console import Console

#: Exit codes (click itself exits 2 on usage errors; SIGINT convention is 128 + 2).
EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
#: Errors that mean "the command or its configuration is wrong", as opposed to "it ran and failed".
USAGE_ERRORS: tuple[type[Exception], ...] = (ConfigurationError, FlavorNotFoundError, PipelineDefinitionError)


def console(stderr: bool = False) -> "Console":
    """A rich console on the *current* stdout/stderr (so click's test runner captures it).

    Off a terminal rich would wrap at 80 columns; plain output is for logs and grep, so it is
    given a wide line instead (COLUMNS still wins when set).
    """
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(stderr=stderr, highlight=False, width=200)
    return out


def esc(value: Any) -> str:
    """``value`` as text that rich prints literally (a '[' in a name is not markup)."""
    from rich.markup import escape

    return escape(str(value))


def print_error(exc: BaseException, debug: bool = False) -> None:
    err = console(stderr=True)
    if debug:
        err.print("".join(traceback.format_exception(exc)), markup=False, highlight=False, soft_wrap=True)
    if isinstance(exc, OrcakitError):
        err.print(f"[bold red]Error:[/] [red]{esc(exc.what)}[/]", soft_wrap=True)
        if exc.why:
            err.print(f"  why: {esc(exc.why)}", soft_wrap=True)
        if exc.fix:
            err.print(f"  fix: {esc(exc.fix)}", soft_wrap=True)
    else:
        err.print(f"[bold red]Error:[/] [red]{esc(exc)}[/]", soft_wrap=True)
    if not debug and not isinstance(exc, USAGE_ERRORS):
        err.print("[dim](run with --debug for the traceback)[/]")


class OrcakitGroup(click.Group):
    """A group that turns orcakit errors into short messages and exit codes (the root group is
    one, so every command below it, plugin commands included, gets the same treatment)."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug")) or os.environ.get("ORCAKIT_DEBUG", "") not in ("", "0")
        try:
            return super().invoke(ctx)
        except OrcakitError as exc:
            print_error(exc, debug)
            ctx.exit(EXIT_USAGE if isinstance(exc, USAGE_ERRORS) else EXIT_FAILURE)
        except KeyboardInterrupt:
            console(stderr=True).print("[yellow]interrupted[/]")
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as exc:
            from pydantic import ValidationError

            if not isinstance(exc, ValidationError):
                raise
            print_error(ConfigurationError(str(exc)), debug)
            ctx.exit(EXIT_USAGE)


# -- machine-readable output (--output json|yaml) -------------------------------------------------

#: ``--output`` of every list/show/describe command: the same data a table shows, for scripts.
output_option = click.option(
    "--output", "output_format", type=click.Choice(["table", "json", "yaml"]), default="table", show_default=True,
    help="table for people; json or yaml for scripts (the same fields, unabridged, times in ISO 8601 UTC).",
)


def plain(value: Any) -> Any:
    """``value`` as JSON/YAML-ready data: datetimes as ISO 8601, enums as their values,
    dataclasses and pydantic models as dicts."""
    import dataclasses
    import enum
    from datetime import datetime

    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value) if not f.name.startswith("_")}
    if hasattr(value, "model_dump"):
        return plain(value.model_dump(mode="json"))
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    return value


def emit(data: Any, output_format: str) -> bool:
    """Print ``data`` as JSON or YAML when that is the format asked for; False for ``table``
    (the caller prints its table). Written with click.echo: no markup, no wrapping."""
    if output_format == "table":
        return False
    data = plain(data)
    if output_format == "json":
        import json

        click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))
    else:
        import yaml

        click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), nl=False)
    return True
