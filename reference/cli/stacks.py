"""``orcakit orchestrator ...`` and ``orcakit stack ...``: what ``$ORCAKIT_HOME/config.json``
holds — registered orchestrators (a flavor plus a validated config) and the stacks built from
them (an orchestrator, an artifact store and a run store).

``orchestrator register`` takes the config as ``--key=value`` (or ``--key value``) options, ZenML
style; the values follow the same rules as ``pytest --flavor-option`` because both go through
:mod:`orcakit.options`.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import click

from orcakit import ConfigurationError
from orcakit.options import coerce_flavor_options, split_flavor_options

from .output import console, emit, esc, output_option

if TYPE_CHECKING:
    from rich.console import Console


# -- orchestrators -----------------------------------------------------------------------------------


@click.group("orchestrator")
def orchestrator_group() -> None:
    """Registered orchestrators: a flavor plus a validated config."""


def parse_config_options(args: list[str]) -> dict[str, str]:
    """``--key=value`` / ``--key value`` pairs after the fixed options, as ``{key: raw text}``.

    Only the option syntax is this command's own; keys (``-`` counts as ``_``, never twice) are
    checked, and values later read and coerced, by :mod:`orcakit.options`.
    """
    items: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        if not token.startswith("--") or token == "--":
            raise click.UsageError(f"unexpected argument {token!r}: config values are given as --key=value")
        body = token[2:]
        if "=" not in body:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                body = f"{body}={args[i + 1]}"
                i += 1
            else:
                raise click.UsageError(f"option --{body} has no value: pass --{body}=VALUE")
        items.append(body)
        i += 1
    return split_flavor_options(items)


@orchestrator_group.command(
    "register",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.argument("name")
@click.option("--flavor", "-f", "flavor_name", required=True, help="The flavor (see `orcakit flavor list`).")
@click.pass_context
def orchestrator_register(ctx: click.Context, name: str, flavor_name: str) -> None:
    """Register orchestrator NAME of a flavor, configured with --key=value options.

    Values are checked and coerced by the flavor's config model (`orcakit flavor describe
    FLAVOR` lists the fields): --max-parallelism=3 is stored as the integer 3. A value
    @path is read from a file.
    """
    from orcakit import load_flavor

    from .._runtime.config_store import ConfigStore

    raw = parse_config_options(ctx.args)
    checked = load_flavor(flavor_name)  # unknown flavor: refused here, listing the registered ones
    entry = ConfigStore().register_orchestrator(name, flavor_name, coerce_flavor_options(checked, raw))
    out = console()
    out.print(f"registered orchestrator [bold]{esc(name)}[/] (flavor {esc(entry.flavor)})")
    _print_config(out, entry.config)


def _print_config(out: "Console", config: dict[str, Any], indent: str = "  ") -> None:
    from .._runtime.config_store import redact_config

    if not config:
        out.print(f"{indent}[dim](all defaults)[/]")
    for key, value in redact_config(config).items():
        out.print(f"{indent}{esc(key)} = {esc(json.dumps(value))}", soft_wrap=True)


@orchestrator_group.command("list")
@output_option
def orchestrator_list(output_format: str) -> None:
    """List registered orchestrators (secret-looking values redacted)."""
    from rich.table import Table

    from .._runtime.config_store import ConfigStore, redact_config

    config = ConfigStore().load()
    if emit([{"name": name, "flavor": entry.flavor, "config": redact_config(entry.config),
              "stacks": sorted(stack for stack, s in config.stacks.items() if s.orchestrator == name)}
             for name, entry in sorted(config.orchestrators.items())], output_format):
        return
    table = Table()
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("flavor", no_wrap=True)
    table.add_column("config")
    table.add_column("used by stacks")
    for name, entry in sorted(config.orchestrators.items()):
        users = sorted(stack for stack, s in config.stacks.items() if s.orchestrator == name)
        settings = ", ".join(f"{k}={json.dumps(v)}" for k, v in redact_config(entry.config).items())
        table.add_row(esc(name), esc(entry.flavor), esc(settings) or "[dim]defaults[/]", esc(", ".join(users)))
    console().print(table)


@orchestrator_group.command("describe")
@click.argument("name")
@output_option
def orchestrator_describe(name: str, output_format: str) -> None:
    """Show one registered orchestrator: flavor, config (secrets redacted), stacks using it."""
    from .._runtime.config_store import ConfigStore, redact_config

    config = ConfigStore().load()
    entry = ConfigStore().orchestrator(name, config)
    users = sorted(stack for stack, s in config.stacks.items() if s.orchestrator == name)
    if emit({"name": name, "flavor": entry.flavor, "config": redact_config(entry.config), "stacks": users}, output_format):
        return
    out = console()
    out.print(f"[bold]orchestrator {esc(name)}[/]")
    out.print(f"  flavor: {esc(entry.flavor)}")
    out.print(f"  used by stacks: {esc(', '.join(users)) or '[dim]none[/]'}")
    out.print("  config:")
    _print_config(out, entry.config, indent="    ")


@orchestrator_group.command("delete")
@click.argument("name")
def orchestrator_delete(name: str) -> None:
    """Delete a registered orchestrator (refused while a stack uses it)."""
    from .._runtime.config_store import ConfigStore

    ConfigStore().delete_orchestrator(name)
    console().print(f"deleted orchestrator [bold]{esc(name)}[/]")


# -- stacks ------------------------------------------------------------------------------------------


@click.group("stack")
def stack_group() -> None:
    """Stacks: an orchestrator, an artifact store and a run store."""


def _absolute_artifact_store(value: str | None) -> str | None:
    # A relative folder would mean a different place from every working directory.
    if value is None or "://" in value and not value.startswith("file://"):
        if value is not None and not value.startswith("s3://"):
            raise ConfigurationError(
                f"--artifact-store {value!r}: unknown scheme", fix="use a local folder path or s3://bucket/prefix"
            )
        return value
    return os.path.abspath(os.path.expanduser(value.removeprefix("file://")))


def _checked_run_store(url: str | None) -> str | None:
    if url is None:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from .._runtime.run_store import redact_url

    try:
        parsed = make_url(url)
    except ArgumentError:
        # The text itself is not echoed (it may hold a password, and it cannot be parsed to hide it).
        raise ConfigurationError(
            "--run-store is not a SQLAlchemy URL: it has no 'dialect://' scheme" if "://" not in url
            else "--run-store is not a SQLAlchemy URL",
            why="the run store is opened with SQLAlchemy, which takes URLs of the form dialect[+driver]://user:password@host/database",
            fix="use sqlite:////absolute/path/runs.db or postgresql+psycopg://user:pass@host/db",
        ) from None
    _check_driver(parsed, redact_url(url))
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        # Like the artifact folder: a relative SQLite path would differ per working directory.
        parsed = parsed.set(database=os.path.abspath(os.path.expanduser(parsed.database)))
        return parsed.render_as_string(hide_password=False)
    return url


#: The run-store drivers orcakit is tested with, and the extra that brings each.
_DRIVER_EXTRAS = {"postgresql": "pip install 'orcakit[postgres]'"}


def _check_driver(parsed, shown: str) -> None:
    """Refuse at registration a run-store URL whose dialect or driver is not installed here,
    instead of failing at the first run."""
    from sqlalchemy.exc import NoSuchModuleError

    try:
        dialect = parsed.get_dialect()
        if hasattr(dialect, "import_dbapi"):
            dialect.import_dbapi()
        else:  # SQLAlchemy < 2
            dialect.dbapi()
    except NoSuchModuleError:
        raise ConfigurationError(
            f"--run-store {shown}: SQLAlchemy has no dialect {parsed.drivername!r}",
            fix="use sqlite:///... or postgresql+psycopg://... (the run stores orcakit is tested with)",
        ) from None
    except ImportError as exc:
        backend = parsed.get_backend_name()
        raise ConfigurationError(
            f"--run-store {shown}: the {parsed.drivername!r} driver is not installed here ({exc})",
            why="every run, and every process of a run, opens the run store with this driver",
            fix=_DRIVER_EXTRAS.get(backend, f"install the Python driver for {backend}, or use sqlite:///... or postgresql+psycopg://..."),
        ) from None


@stack_group.command("register")
@click.argument("name")
@click.option("--orchestrator", "-o", required=True, help="A registered orchestrator.")
@click.option("--artifact-store", "-a", default=None, help="A folder or s3://bucket/prefix (default: $ORCAKIT_HOME/artifacts).")
@click.option("--run-store", "-r", default=None, help="A SQLAlchemy URL (default: sqlite:///$ORCAKIT_HOME/runs.db).")
@click.option("--set", "make_active", is_flag=True, help="Also make it the active stack.")
def stack_register(name: str, orchestrator: str, artifact_store: str | None, run_store: str | None, make_active: bool) -> None:
    """Register stack NAME."""
    from .._runtime.config_store import ConfigStore

    store = ConfigStore()
    store.register_stack(name, orchestrator, _absolute_artifact_store(artifact_store), _checked_run_store(run_store))
    out = console()
    out.print(f"registered stack [bold]{esc(name)}[/]")
    if make_active:
        store.set_active_stack(name)
        out.print(f"active stack: [bold]{esc(name)}[/]")


@stack_group.command("set")
@click.argument("name")
def stack_set(name: str) -> None:
    """Make NAME the active stack (what `orcakit run` and pipeline calls use)."""
    from .._runtime.config_store import ConfigStore

    ConfigStore().set_active_stack(name)
    console().print(f"active stack: [bold]{esc(name)}[/]")


@stack_group.command("list")
@output_option
def stack_list(output_format: str) -> None:
    """List stacks; the active one is marked with '*'."""
    from rich.table import Table

    from .._runtime.config_store import ConfigStore, redact_config

    config = ConfigStore().load()
    if emit([{"name": name, "active": name == config.active_stack, "orchestrator": entry.orchestrator,
              "artifact_store": entry.artifact_store, "run_store": redact_config(entry.run_store)}
             for name, entry in sorted(config.stacks.items())], output_format):
        return
    table = Table()
    table.add_column("", no_wrap=True)
    table.add_column("stack", style="bold", no_wrap=True)
    table.add_column("orchestrator", no_wrap=True)
    table.add_column("artifact store")
    table.add_column("run store")
    for name, entry in sorted(config.stacks.items()):
        active = name == config.active_stack
        table.add_row(
            "[green]*[/]" if active else "",
            esc(name) + (" [green](active)[/]" if active else ""),
            esc(entry.orchestrator),
            esc(entry.artifact_store),
            esc(redact_config(entry.run_store)),
        )
    console().print(table)


@stack_group.command("describe")
@click.argument("name", required=False)
@output_option
def stack_describe(name: str | None, output_format: str) -> None:
    """Show a stack (default: the active one); the run-store password is redacted."""
    from .._runtime.config_store import ConfigStore, redact_config
    from .._runtime.run_store import redact_url

    store = ConfigStore()
    config = store.load()
    name = name or config.active_stack
    entry = store.stack_entry(name, config)
    orchestrator_entry = store.orchestrator(entry.orchestrator, config)
    if emit({"name": name, "active": name == config.active_stack, "orchestrator": entry.orchestrator,
             "flavor": orchestrator_entry.flavor, "config": redact_config(orchestrator_entry.config),
             "artifact_store": entry.artifact_store, "artifact_store_options": redact_config(entry.artifact_store_options),
             "run_store": redact_url(entry.run_store)}, output_format):
        return
    out = console()
    out.print(f"[bold]stack {esc(name)}[/]" + (" [green](active)[/]" if name == config.active_stack else ""))
    out.print(f"  orchestrator:   {esc(entry.orchestrator)} (flavor {esc(orchestrator_entry.flavor)})")
    _print_config(out, orchestrator_entry.config, indent="    ")
    out.print(f"  artifact store: {esc(entry.artifact_store)}")
    if entry.artifact_store_options:
        _print_config(out, entry.artifact_store_options, indent="    ")
    out.print(f"  run store:      {esc(redact_url(entry.run_store))}")


@stack_group.command("delete")
@click.argument("name")
def stack_delete(name: str) -> None:
    """Delete a stack (not the active one)."""
    from .._runtime.config_store import ConfigStore

    ConfigStore().delete_stack(name)
    console().print(f"deleted stack [bold]{esc(name)}[/]")
