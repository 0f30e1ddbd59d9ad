"""The ``orcakit`` command line, in ZenML's style.

    orcakit flavor list [--verbose] | describe NAME
    orcakit orchestrator register NAME --flavor=X [--key=value ...] | list | describe NAME | delete NAME
    orcakit stack register NAME -o ORCHESTRATOR [...] | set NAME | list | describe [NAME] | delete NAME
    orcakit run MODULE:PIPELINE [--stack NAME] [--param key=value ...] [--no-wait]
    orcakit runs list [--limit N] | show RUN | stop RUN

Errors: an :class:`orcakit.OrcakitError` is printed as a short red message (what / why / fix)
without a traceback; exit code 2 for usage and configuration errors, 1 for everything else
(a failed run included), 130 after Ctrl-C. ``--debug`` (or ``ORCAKIT_DEBUG=1``) adds tracebacks.

Start-up is kept light: this module imports only click (and the ``orcakit`` contract, which
importing any ``orcakit.*`` module implies); rich, SQLAlchemy and every flavor implementation
are imported inside the commands that need them, so ``orcakit --help`` and ``orcakit flavor
list`` never load a backend.
"""

from __future__ import annotations

import json
import os
import re
import sys
import traceback
from typing import TYPE_CHECKING, Any, Callable, NoReturn

import click

from orcakit import (
    ConfigurationError,
    FlavorNotFoundError,
    OrcakitError,
    PipelineDefinitionError,
)

if TYPE_CHECKING:
    from rich.console import Console

    from orcakit import Flavor

#: Exit codes (click itself exits 2 on usage errors; SIGINT convention is 128 + 2).
EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
#: After Ctrl-C, how long to wait for a stopped run to reach a terminal status before exiting.
STOP_WAIT_SECONDS = 30.0
#: Errors that mean "the command or its configuration is wrong", as opposed to "it ran and failed".
USAGE_ERRORS: tuple[type[Exception], ...] = (ConfigurationError, FlavorNotFoundError, PipelineDefinitionError)
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# -- output ----------------------------------------------------------------------------------------


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


def _esc(value: Any) -> str:
    from rich.markup import escape

    return escape(str(value))


def print_error(exc: BaseException, debug: bool = False) -> None:
    err = console(stderr=True)
    if debug:
        err.print("".join(traceback.format_exception(exc)), markup=False, highlight=False, soft_wrap=True)
    if isinstance(exc, OrcakitError):
        err.print(f"[bold red]Error:[/] [red]{_esc(exc.what)}[/]", soft_wrap=True)
        if exc.why:
            err.print(f"  why: {_esc(exc.why)}", soft_wrap=True)
        if exc.fix:
            err.print(f"  fix: {_esc(exc.fix)}", soft_wrap=True)
    else:
        err.print(f"[bold red]Error:[/] [red]{_esc(exc)}[/]", soft_wrap=True)
    if not debug and not isinstance(exc, USAGE_ERRORS):
        err.print("[dim](run with --debug for the traceback)[/]")


# -- the root group --------------------------------------------------------------------------------


class OrcakitGroup(click.Group):
    """The root group: turns orcakit errors into short messages and exit codes."""

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


CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=OrcakitGroup, context_settings=CONTEXT_SETTINGS)
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


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``orcakit = "orcakit.reference.cli:main"``)."""
    cli.main(args=argv, prog_name="orcakit")


# -- flavors -----------------------------------------------------------------------------------------


@cli.group()
def flavor() -> None:
    """Orchestrator flavors: the installed kinds of orchestrator."""


def _flavor_entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    from orcakit import FLAVOR_ENTRY_POINT_GROUP

    return {ep.name: ep for ep in entry_points(group=FLAVOR_ENTRY_POINT_GROUP)}


def _flavor_declaration(reference: str) -> "Flavor":
    """The flavor's declaration (name, config model, capabilities) *without* importing its
    implementation, so a flavor whose backend SDK is not installed can still be described."""

    from orcakit import Flavor

    if ":" in reference:
        from orcakit.sources import import_object

        try:
            value = import_object(reference)
        except (ImportError, AttributeError) as exc:
            raise FlavorNotFoundError(f"cannot load flavor class {reference!r}: {exc}") from exc
    else:
        registered = _flavor_entry_points()
        if reference not in registered:
            raise FlavorNotFoundError(
                f"no orchestrator flavor named {reference!r} (registered: {', '.join(sorted(registered)) or 'none'})",
                fix="`orcakit flavor list` shows the installed flavors; a third-party flavor is installed with pip",
            )
        value = registered[reference].load()
    if not (isinstance(value, type) and issubclass(value, Flavor)):
        raise FlavorNotFoundError(f"{reference!r} is not an orcakit.Flavor subclass")
    return value()


def _capability_text(value: Any) -> str:
    if isinstance(value, bool):
        return "[green]yes[/]" if value else "[dim]no[/]"
    if isinstance(value, list):
        return _esc(", ".join(value)) if value else "[dim]none[/]"
    colour = {"enforced": "green", "rejected": "red", "warned": "yellow"}.get(str(value), "")
    return f"[{colour}]{_esc(value)}[/]" if colour else _esc(value)


@flavor.command("list")
@click.option("--verbose", "-v", is_flag=True, help="Also load each flavor's declaration: description, run-ID variable, capabilities.")
def flavor_list(verbose: bool) -> None:
    """List the installed flavors (entry-point group 'orcakit.flavors').

    Without --verbose nothing is imported: the names come from package metadata.
    """
    from rich.table import Table

    out = console()
    registered = _flavor_entry_points()
    if not registered:
        out.print("no flavors installed")
        return
    table = Table(show_lines=verbose)
    table.add_column("flavor", style="bold", no_wrap=True)
    table.add_column("declared in", no_wrap=True)
    if verbose:
        table.add_column("description")
        table.add_column("run-ID variable", no_wrap=True)
        table.add_column("capabilities")
    for name in sorted(registered):
        row = [_esc(name), _esc(registered[name].value)]
        if verbose:
            try:
                declared = _flavor_declaration(name)
                manifest = declared.capabilities.manifest()
                row += [
                    _esc(declared.description),
                    _esc(declared.run_id_env_var),
                    "\n".join(f"{key}: {_capability_text(value)}" for key, value in manifest.items()),
                ]
            except Exception as exc:  # one broken flavor must not hide the others
                row += [f"[red]cannot load: {_esc(exc)}[/]", "", ""]
        table.add_row(*row)
    out.print(table)


@flavor.command("describe")
@click.argument("name")
def flavor_describe(name: str) -> None:
    """Show a flavor's config fields, capabilities and run-ID variable.

    NAME is a registered flavor name or a 'module:FlavorClass' reference.
    """
    from rich.table import Table

    from .._runtime.config_store import config_fields

    out = console()
    declared = _flavor_declaration(name)
    out.print(f"[bold]flavor {_esc(declared.name)}[/]" + (f" — {_esc(declared.description)}" if declared.description else ""))
    out.print(f"  run-ID variable:  {_esc(declared.run_id_env_var)}")
    out.print(f"  implementation:   {_esc(declared.implementation_source)}")
    out.print(f"  version:          {_esc(declared.version)}")
    if declared.docs_url:
        out.print(f"  docs:             {_esc(declared.docs_url)}")
    here = None
    try:
        declared.check()  # imports the implementation: says whether the flavor is usable here
        out.print("  check:            [green]ok[/] (implementation importable, declaration consistent)")
        try:
            # What an orchestrator with the default config supports on this host (a flavor may
            # narrow its declaration, e.g. local without a writable cgroup file system).
            here = declared.create({}).capabilities.manifest()
        except Exception:  # required fields, unreachable backend...: show the declaration only
            here = None
    except OrcakitError as exc:
        out.print(f"  check:            [red]{_esc(exc.what)}[/]", soft_wrap=True)

    fields = Table(title="config (orcakit orchestrator register NAME --flavor=%s --FIELD=VALUE ...)" % _esc(declared.name), title_justify="left")
    fields.add_column("field", style="bold", no_wrap=True)
    fields.add_column("type", no_wrap=True)
    fields.add_column("default", no_wrap=True)
    fields.add_column("description")
    for field in config_fields(declared.config_class):
        if field.required:
            default = "[yellow]required[/]"
        else:
            if field.default is None:
                default = "[dim]none[/]"
            else:
                default = _esc(field.default if isinstance(field.default, str) else json.dumps(field.default))
            if field.default_is_computed:
                default += " [dim](here)[/]"
        fields.add_row(_esc(field.name), _esc(field.type), default, _esc(field.description))
    out.print(fields)

    caps = Table(title="capabilities", title_justify="left")
    caps.add_column("capability", style="bold", no_wrap=True)
    caps.add_column("declared")
    if here is not None:
        caps.add_column("on this host")
    for key, value in declared.capabilities.manifest().items():
        row = [_esc(key), _capability_text(value)]
        if here is not None:
            row.append(_capability_text(here.get(key)))
        caps.add_row(*row)
    out.print(caps)


# -- orchestrators -----------------------------------------------------------------------------------


@cli.group()
def orchestrator() -> None:
    """Registered orchestrators: a flavor plus a validated config."""


def parse_config_options(args: list[str]) -> dict[str, str]:
    """``--key=value`` / ``--key value`` pairs after the fixed options, ZenML style.

    ``-`` in keys becomes ``_``; a value ``@path`` is read from the file ``path`` (one trailing
    newline dropped; ``@@text`` is the literal ``@text``). Values stay strings: the flavor's
    config model coerces them.
    """
    values: dict[str, str] = {}
    i = 0
    while i < len(args):
        token = args[i]
        if not token.startswith("--") or token == "--":
            raise click.UsageError(f"unexpected argument {token!r}: config values are given as --key=value")
        body = token[2:]
        if "=" in body:
            key, value = body.split("=", 1)
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            key, value = body, args[i + 1]
            i += 1
        else:
            raise click.UsageError(f"option --{body} has no value: pass --{body}=VALUE")
        key = key.replace("-", "_")
        if not _KEY.fullmatch(key):
            raise click.UsageError(f"--{body}: {key!r} is not a valid config key")
        if key in values:
            raise click.UsageError(f"config key {key!r} is given twice")
        values[key] = _read_value(key, value)
        i += 1
    return values


def _read_value(key: str, value: str) -> str:
    if value.startswith("@@"):
        return value[1:]
    if not value.startswith("@"):
        return value
    path = os.path.expanduser(value[1:])
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise click.UsageError(f"--{key}=@{value[1:]}: cannot read {path!r} ({exc.strerror})") from None
    return text[:-1] if text.endswith("\n") else text


def _structured(config_class: Any, values: dict[str, str]) -> dict[str, Any]:
    """JSON-decode the values of fields that take lists, dicts or models (a string can never
    validate as those); everything else stays a string for pydantic to coerce."""
    import types
    import typing

    from pydantic import BaseModel

    out: dict[str, Any] = dict(values)
    for key, value in values.items():
        info = config_class.model_fields.get(key)
        if info is None:
            continue
        candidates = [info.annotation]
        if typing.get_origin(info.annotation) in (typing.Union, types.UnionType):
            candidates = list(typing.get_args(info.annotation))
        structured = False
        for ann in candidates:
            origin = typing.get_origin(ann) or ann
            if origin in (dict, list, set, tuple, frozenset) or (isinstance(origin, type) and issubclass(origin, BaseModel)):
                structured = True
            if ann is str:
                structured = False
                break
        if structured:
            try:
                out[key] = json.loads(value)
            except ValueError:
                pass  # let the model's error name the field
    return out


@orchestrator.command(
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

    values = parse_config_options(ctx.args)
    checked = load_flavor(flavor_name)  # unknown flavor: refused here, listing the registered ones
    entry = ConfigStore().register_orchestrator(name, flavor_name, _structured(checked.config_class, values))
    out = console()
    out.print(f"registered orchestrator [bold]{_esc(name)}[/] (flavor {_esc(entry.flavor)})")
    _print_config(out, entry.config)


def _print_config(out: "Console", config: dict[str, Any], indent: str = "  ") -> None:
    from .._runtime.config_store import redact_config

    if not config:
        out.print(f"{indent}[dim](all defaults)[/]")
    for key, value in redact_config(config).items():
        out.print(f"{indent}{_esc(key)} = {_esc(json.dumps(value))}", soft_wrap=True)


@orchestrator.command("list")
def orchestrator_list() -> None:
    """List registered orchestrators (secret-looking values redacted)."""
    from rich.table import Table

    from .._runtime.config_store import ConfigStore, redact_config

    config = ConfigStore().load()
    table = Table()
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("flavor", no_wrap=True)
    table.add_column("config")
    table.add_column("used by stacks")
    for name, entry in sorted(config.orchestrators.items()):
        users = sorted(stack for stack, s in config.stacks.items() if s.orchestrator == name)
        settings = ", ".join(f"{k}={json.dumps(v)}" for k, v in redact_config(entry.config).items())
        table.add_row(_esc(name), _esc(entry.flavor), _esc(settings) or "[dim]defaults[/]", _esc(", ".join(users)))
    console().print(table)


@orchestrator.command("describe")
@click.argument("name")
def orchestrator_describe(name: str) -> None:
    """Show one registered orchestrator: flavor, config (secrets redacted), stacks using it."""
    from .._runtime.config_store import ConfigStore

    config = ConfigStore().load()
    entry = ConfigStore().orchestrator(name, config)
    users = sorted(stack for stack, s in config.stacks.items() if s.orchestrator == name)
    out = console()
    out.print(f"[bold]orchestrator {_esc(name)}[/]")
    out.print(f"  flavor: {_esc(entry.flavor)}")
    out.print(f"  used by stacks: {_esc(', '.join(users)) or '[dim]none[/]'}")
    out.print("  config:")
    _print_config(out, entry.config, indent="    ")


@orchestrator.command("delete")
@click.argument("name")
def orchestrator_delete(name: str) -> None:
    """Delete a registered orchestrator (refused while a stack uses it)."""
    from .._runtime.config_store import ConfigStore

    ConfigStore().delete_orchestrator(name)
    console().print(f"deleted orchestrator [bold]{_esc(name)}[/]")


# -- stacks ------------------------------------------------------------------------------------------


@cli.group()
def stack() -> None:
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
        raise ConfigurationError(
            f"--run-store {redact_url(url)!r} is not a SQLAlchemy URL",
            fix="use sqlite:////absolute/path/runs.db or postgresql+psycopg://user:pass@host/db",
        ) from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        # Like the artifact folder: a relative SQLite path would differ per working directory.
        parsed = parsed.set(database=os.path.abspath(os.path.expanduser(parsed.database)))
        return parsed.render_as_string(hide_password=False)
    return url


@stack.command("register")
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
    out.print(f"registered stack [bold]{_esc(name)}[/]")
    if make_active:
        store.set_active_stack(name)
        out.print(f"active stack: [bold]{_esc(name)}[/]")


@stack.command("set")
@click.argument("name")
def stack_set(name: str) -> None:
    """Make NAME the active stack (what `orcakit run` and pipeline calls use)."""
    from .._runtime.config_store import ConfigStore

    ConfigStore().set_active_stack(name)
    console().print(f"active stack: [bold]{_esc(name)}[/]")


@stack.command("list")
def stack_list() -> None:
    """List stacks; the active one is marked with '*'."""
    from rich.table import Table

    from .._runtime.config_store import ConfigStore, redact_config

    config = ConfigStore().load()
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
            _esc(name) + (" [green](active)[/]" if active else ""),
            _esc(entry.orchestrator),
            _esc(entry.artifact_store),
            _esc(redact_config(entry.run_store)),
        )
    console().print(table)


@stack.command("describe")
@click.argument("name", required=False)
def stack_describe(name: str | None) -> None:
    """Show a stack (default: the active one); the run-store password is redacted."""
    from .._runtime.config_store import ConfigStore
    from .._runtime.run_store import redact_url

    store = ConfigStore()
    config = store.load()
    name = name or config.active_stack
    entry = store.stack_entry(name, config)
    orchestrator_entry = store.orchestrator(entry.orchestrator, config)
    out = console()
    out.print(f"[bold]stack {_esc(name)}[/]" + (" [green](active)[/]" if name == config.active_stack else ""))
    out.print(f"  orchestrator:   {_esc(entry.orchestrator)} (flavor {_esc(orchestrator_entry.flavor)})")
    _print_config(out, orchestrator_entry.config, indent="    ")
    out.print(f"  artifact store: {_esc(entry.artifact_store)}")
    if entry.artifact_store_options:
        _print_config(out, entry.artifact_store_options, indent="    ")
    out.print(f"  run store:      {_esc(redact_url(entry.run_store))}")


@stack.command("delete")
@click.argument("name")
def stack_delete(name: str) -> None:
    """Delete a stack (not the active one)."""
    from .._runtime.config_store import ConfigStore

    ConfigStore().delete_stack(name)
    console().print(f"deleted stack [bold]{_esc(name)}[/]")


# -- run ---------------------------------------------------------------------------------------------


def load_pipeline(target: str) -> Any:
    """The ``@pipeline`` object named by ``MODULE:PIPELINE``, importing MODULE with the current
    directory on sys.path (as ``python -m`` would)."""
    import importlib

    from orcakit import Pipeline

    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise click.UsageError(f"{target!r}: give the pipeline as MODULE:PIPELINE, e.g. my_pipelines:training")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        value: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise ConfigurationError(
                f"cannot import module {module_name!r} ({exc})",
                fix="run orcakit from the folder that contains the module (it is put on sys.path), or install it",
            ) from exc
        raise ConfigurationError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}", fix="run with --debug for the traceback") from exc
    except OrcakitError:
        raise
    except Exception as exc:
        raise ConfigurationError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}", fix="run with --debug for the traceback"
        ) from exc
    for part in attr.split("."):
        if not hasattr(value, part):
            raise ConfigurationError(
                f"module {module_name!r} has no attribute {attr!r}",
                fix=f"check the name; pipelines in {module_name}: {', '.join(_pipelines_in(importlib.import_module(module_name))) or 'none'}",
            )
        value = getattr(value, part)
    if not isinstance(value, Pipeline):
        raise ConfigurationError(
            f"{target} is a {type(value).__name__}, not an orcakit pipeline",
            fix="decorate the function with @orcakit.pipeline",
        )
    return value


def _pipelines_in(module: Any) -> list[str]:
    from orcakit import Pipeline

    return sorted(name for name, value in vars(module).items() if isinstance(value, Pipeline))


def parse_params(items: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs; a value is JSON when it parses as JSON (``3``, ``[1,2]``, ``true``),
    else the string itself."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.UsageError(f"--param {item!r}: give it as KEY=VALUE")
        if key in params:
            raise click.UsageError(f"--param {key!r} is given twice")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


@cli.command("run")
@click.argument("target", metavar="MODULE:PIPELINE")
@click.option("--stack", "stack_name", default=None, help="Run on this stack instead of the active one.")
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE", help="A pipeline parameter (JSON if it parses, else a string); repeatable.")
@click.option("--no-wait", is_flag=True, help="Return once the run is submitted; it continues in the background.")
def run_command(target: str, stack_name: str | None, params: tuple[str, ...], no_wait: bool) -> None:
    """Run a pipeline: orcakit run my_module:my_pipeline -p epochs=3.

    Shows live progress (a table on a terminal, one line per step event otherwise), then the
    run ID, status and duration. Exit code 0 when the run COMPLETED, 1 otherwise, 130 after
    Ctrl-C (the run is stopped first when the orchestrator can stop runs).
    """
    from .._runtime.config_store import ConfigStore

    pipeline = load_pipeline(target)
    arguments = parse_params(params)
    config = ConfigStore()
    stack_spec = config.stack_spec(stack_name)
    snapshot = pipeline.compile(stack_spec, **arguments)
    # Step processes re-import the pipeline's module from where `orcakit run` imported it (the
    # default root would be the folder of the `orcakit` script, which holds no user code).
    snapshot = snapshot.model_copy(update={"source_roots": [os.getcwd()]})
    out = console()
    where = f"stack {stack_name or config.load().active_stack} (orchestrator {stack_spec.orchestrator.name}, flavor {stack_spec.orchestrator.flavor})"
    count = len(snapshot.steps)
    kind = "(dynamic)" if snapshot.dynamic else f"({count} step{'' if count == 1 else 's'})"
    out.print(f"running pipeline [bold]{_esc(snapshot.pipeline_name)}[/] {kind} on {_esc(where)}", soft_wrap=True)
    if no_wait:
        run_id, log_path, pid = submit_detached(snapshot, config.home)
        out.print(f"submitted run [bold]{run_id}[/]; follow it with: orcakit runs show {run_id[:12]}", soft_wrap=True)
        out.print(f"progress log: {_esc(log_path)}", soft_wrap=True)
        out.print(f"driver process: {pid} (`kill -INT {pid}` stops the run like Ctrl-C)", soft_wrap=True)
        return
    record = run_with_progress(snapshot, out)
    click.get_current_context().exit(0 if record.status.value == "completed" else EXIT_FAILURE)


def run_with_progress(
    snapshot: Any, out: "Console", on_run: Callable[[Any], None] | None = None, live: bool | None = None
) -> Any:
    """Run ``snapshot``, rendering progress from the run store; print the outcome; return the
    final run record. Ctrl-C prints what happened to the run and exits 130.

    ``on_run(run)`` is called once the backend accepted the run; ``live`` forces the renderer
    (default: a live table when ``out`` is a terminal)."""
    from .._runtime.client import run_snapshot
    from .progress import ProgressMonitor
    from .._runtime.run_store import RunStore

    state: dict[str, Any] = {}

    def on_submitted(run: Any, orchestrator: Any) -> None:
        state["run"], state["orchestrator"] = run, orchestrator
        store = RunStore(snapshot.stack.run_store, create_tables=False)
        state["store"] = store
        if on_run is not None:
            on_run(run)
        state["monitor"] = ProgressMonitor(out, store, run.id, snapshot.topological_order(), live=live).start()

    def stop_monitor() -> None:
        if "monitor" in state:
            state["monitor"].stop()

    try:
        try:
            record = run_snapshot(snapshot, wait=True, on_submitted=on_submitted)
            if not record.status.is_finished:
                # The flavor gave no way to wait (fire-and-forget backend): follow the run store.
                record = _follow(state["store"], record.id)
        except KeyboardInterrupt:
            stop_monitor()
            _interrupted(out, state)
        except BaseException:
            stop_monitor()
            raise
        stop_monitor()
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        _interrupted(out, state, twice=True)
    _print_outcome(out, record, state.get("store"))
    return record


def _follow(store: Any, run_id: str, poll: float = 0.5, timeout: float | None = None) -> Any:
    """Poll the run store until the run is terminal (or ``timeout`` seconds passed)."""
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    record = store.get_run(run_id)
    while not record.status.is_finished and (deadline is None or time.monotonic() < deadline):
        time.sleep(poll)
        record = store.get_run(run_id)
    return record


def _interrupted(out: "Console", state: dict[str, Any], twice: bool = False) -> NoReturn:
    err = console(stderr=True)
    run = state.get("run")
    if run is None:
        err.print("[yellow]interrupted before the run was submitted; nothing is running[/]")
        raise SystemExit(EXIT_INTERRUPTED)
    store, orchestrator = state["store"], state["orchestrator"]
    if not twice and orchestrator.capabilities.stop_run:
        # run_snapshot asked the backend to stop the run and waited for it; still, follow the
        # run store until the run is terminal before exiting, so the exit does not abandon a run
        # the client process drives (a second Ctrl-C gives up waiting).
        try:
            _follow(store, run.id, poll=0.1, timeout=STOP_WAIT_SECONDS)
        except KeyboardInterrupt:
            twice = True
        except Exception:  # the store may be what hung; report what we can below
            pass
    try:
        current = store.get_run(run.id).status
        status, finished = current.value.upper(), current.is_finished
    except Exception:
        status, finished = "UNKNOWN", False
    if twice:
        err.print(f"[yellow]interrupted again: run {run.id} is {status}; it may still be stopping[/]")
    elif orchestrator.capabilities.stop_run and finished:
        err.print(f"[yellow]interrupted: run {run.id} was stopped; it ended {status}[/]")
    elif orchestrator.capabilities.stop_run:
        err.print(f"[yellow]interrupted: asked the backend to stop run {run.id}, but after {STOP_WAIT_SECONDS:g}s it is still {status}[/]")
    else:
        err.print(
            f"[yellow]interrupted: orchestrator flavor {orchestrator.flavor.name!r} cannot stop runs, so run {run.id} "
            f"continues on the backend (status {status})[/]"
        )
    err.print(f"  see: orcakit runs show {run.id[:12]}")
    raise SystemExit(EXIT_INTERRUPTED)


def _print_outcome(out: "Console", record: Any, store: Any) -> None:
    from .progress import format_duration, short_reason

    status = record.status
    colour = "green" if status.value == "completed" else "red"
    # What the user waited for (submission included), and the steps' part of it.
    waited = _seconds(record.created_at, record.ended_at)
    running = _seconds(record.started_at, record.ended_at)
    out.print(f"run ID:   {record.id}", highlight=False)
    if record.orchestrator_run_id:
        out.print(f"backend:  {_esc(record.orchestrator)} run {_esc(record.orchestrator_run_id)}", highlight=False)
    out.print(f"status:   [bold {colour}]{status.value.upper()}[/]")
    out.print(f"duration: {format_duration(waited) or '-'}" + (f" (steps: {format_duration(running)})" if running is not None else ""))
    if status.value != "completed":
        if record.reason:
            out.print(f"reason:   {_esc(record.reason)}", soft_wrap=True)
        if store is not None:
            for name, step in store.steps(record.id).items():
                if step.status.value == "failed":
                    out.print(f"  failed step {_esc(name)}: {_esc(short_reason(step.reason, 300))}", soft_wrap=True)
        logs = record.metadata.get("logs")
        if logs:
            out.print(f"step logs: {_esc(logs)}", soft_wrap=True)


def submit_detached(snapshot: Any, home: Any) -> tuple[str, str, int]:
    """``--no-wait``: run the client half in a detached child process and return the run ID.

    The client half cannot simply return early: a flavor's ``wait_for_completion`` may be what
    drives the run (the local flavor schedules steps from a thread of the client process), so
    exiting would abandon the run half-way. The child (its own session, so a closed terminal
    does not end it) submits, reports the run ID through a pipe, waits for the run to end and
    writes plain progress to a log file.
    """
    from pathlib import Path

    log_dir = Path(home) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"run-{snapshot.snapshot_id}.log"
    sys.stdout.flush()
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child; observed through the run store
        code = 1
        try:
            os.close(read_fd)
            os.setsid()
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            import signal

            from rich.console import Console

            # `kill -INT PID` or `kill PID` stops the run the way Ctrl-C does in the foreground.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            log_console = Console(file=open(1, "w", closefd=False, buffering=1), width=200, highlight=False, force_terminal=False)

            def report(run: Any) -> None:
                os.write(write_fd, (json.dumps({"run_id": run.id, "pid": os.getpid()}) + "\n").encode())
                os.close(write_fd)

            try:
                record = run_with_progress(snapshot, log_console, on_run=report, live=False)
                code = 0 if record.status.value == "completed" else EXIT_FAILURE
            except SystemExit as exc:  # interrupted: _interrupted() already logged what happened
                code = exc.code if isinstance(exc.code, int) else EXIT_FAILURE
        except BaseException as exc:
            try:
                message = {"error": getattr(exc, "what", str(exc)), "fix": getattr(exc, "fix", None)}
                os.write(write_fd, (json.dumps(message) + "\n").encode())
            except OSError:
                pass  # already reported the run ID; the error is in the log
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        line = pipe.readline()
    try:
        message = json.loads(line) if line else {}
    except ValueError:
        message = {}
    if "run_id" in message:
        return message["run_id"], str(log_path), message["pid"]
    from orcakit import SubmissionError

    raise SubmissionError(
        f"the run was not submitted: {message.get('error') or 'the background process exited early'}",
        fix=message.get("fix") or f"see {log_path}",
    )


# -- runs --------------------------------------------------------------------------------------------


@cli.group()
def runs() -> None:
    """Recorded runs, from a stack's run store (default: the active stack's)."""


def _run_store(stack_name: str | None) -> Any:
    from .._runtime.config_store import ConfigStore
    from .._runtime.run_store import RunStore

    return RunStore(ConfigStore().stack_spec(stack_name).run_store)


def _when(value: Any) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _seconds(start: Any, end: Any) -> float | None:
    return (end - start).total_seconds() if start and end else None


_STACK_OPTION = click.option("--stack", "stack_name", default=None, help="Read this stack's run store instead of the active stack's.")


@runs.command("list")
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(min=1), help="How many runs, newest first.")
@_STACK_OPTION
def runs_list(limit: int, stack_name: str | None) -> None:
    """List recent runs, newest first."""
    from rich.table import Table

    from .progress import STATUS_STYLE, format_duration

    records = _run_store(stack_name).list_runs(limit=limit)
    out = console()
    if not records:
        out.print("no runs yet")
        return
    table = Table()
    table.add_column("run ID", no_wrap=True, min_width=32)  # never cut: it is what `runs show` takes
    table.add_column("pipeline", no_wrap=True)
    table.add_column("flavor", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    for record in records:
        style = STATUS_STYLE.get(record.status, ("", "", ""))[1]
        table.add_row(
            record.id,
            _esc(record.pipeline_name),
            _esc(record.orchestrator),
            f"[{style}]{record.status.value}[/]" if style else record.status.value,
            _when(record.created_at),
            format_duration(_seconds(record.started_at or record.created_at, record.ended_at)),
        )
    out.print(table)


@runs.command("show")
@click.argument("run_id", metavar="RUN")
@_STACK_OPTION
def runs_show(run_id: str, stack_name: str | None) -> None:
    """Show a run (an ID prefix is enough): its record, its steps and every attempt."""
    from rich.table import Table

    from .progress import STATUS_STYLE, format_duration

    store = _run_store(stack_name)
    record = store.get_run(run_id)
    out = console()
    style = STATUS_STYLE.get(record.status, ("", "", ""))[1] or "bold"
    out.print(f"[bold]run {record.id}[/]  [{style}]{record.status.value.upper()}[/]")
    rows = [
        ("pipeline", record.pipeline_name),
        ("flavor", record.orchestrator),
        ("backend run ID", record.orchestrator_run_id or "(not attached yet)"),
        ("snapshot", record.snapshot_id),
        ("created", _when(record.created_at)),
        ("started", _when(record.started_at)),
        ("ended", _when(record.ended_at)),
        ("duration", format_duration(_seconds(record.started_at or record.created_at, record.ended_at))),
    ]
    if record.reason:
        rows.append(("reason", record.reason))
    for key, value in rows:
        if value:
            out.print(f"  {key + ':':<16} {_esc(value)}", soft_wrap=True)
    from .._runtime.config_store import redact_config

    for key, value in redact_config(record.metadata).items():
        if key != "orchestrator_run_id":  # shown above as the backend run ID
            out.print(f"  {key + ':':<16} {_esc(value if isinstance(value, str) else json.dumps(value))}", soft_wrap=True)

    steps = store.steps(record.id)
    table = Table(title="steps", title_justify="left")
    table.add_column("step", style="bold", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("attempts", justify="right")
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("reason")
    for name, step in steps.items():
        step_style = STATUS_STYLE.get(step.status, ("", "", ""))[1]
        table.add_row(
            _esc(name),
            f"[{step_style}]{step.status.value}[/]" if step_style else step.status.value,
            str(step.attempts),
            format_duration(_seconds(step.started_at, step.ended_at)),
            _esc((step.reason or "").strip()),
        )
    out.print(table)

    attempts = list(store.attempts(record.id))
    if attempts:
        table = Table(title="attempts", title_justify="left")
        for column in ("step", "attempt", "status", "started", "duration", "host", "reason"):
            table.add_column(column, no_wrap=column not in ("reason",))
        for attempt in attempts:
            table.add_row(
                _esc(attempt.step_name),
                str(attempt.attempt),
                attempt.status.value,
                _when(attempt.started_at),
                format_duration(_seconds(attempt.started_at, attempt.ended_at)),
                _esc(attempt.host),
                _esc((attempt.reason or "").strip().splitlines()[-1] if attempt.reason and attempt.reason.strip() else ""),
            )
        out.print(table)


@runs.command("stop")
@click.argument("run_id", metavar="RUN")
@_STACK_OPTION
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for the run to reach a terminal status.")
def runs_stop(run_id: str, stack_name: str | None, timeout: float) -> None:
    """Stop a run through its orchestrator (when the flavor declares stop_run)."""
    import time

    from orcakit import UnsupportedFeatureError, load_flavor

    from .._runtime.artifact_store import load_snapshot, open_artifact_store
    from .._runtime.config_store import ConfigStore

    stack_spec = ConfigStore().stack_spec(stack_name)
    from .._runtime.run_store import RunStore

    store = RunStore(stack_spec.run_store)
    record = store.get_run(run_id)
    out = console()
    if record.status.is_finished:
        out.print(f"run {record.id} already ended {record.status.value.upper()}")
        return
    # The orchestrator as the run was submitted (the snapshot carries its flavor and config);
    # the stack's orchestrator if the snapshot is not in this stack's artifact store.
    try:
        component = load_snapshot(open_artifact_store(stack_spec.artifact_store, stack_spec.artifact_store_options), record.snapshot_id).stack.orchestrator
    except Exception:
        component = stack_spec.orchestrator
    flavor_obj = load_flavor(component.flavor_source or component.flavor)
    orchestrator_obj = flavor_obj.create(component.config, name=component.name)
    if not orchestrator_obj.capabilities.stop_run:
        raise UnsupportedFeatureError(
            f"orchestrator flavor {flavor_obj.name!r} cannot stop runs (it does not declare the stop_run capability)",
            feature="stop_run",
            fix="stop the run with the backend's own tools",
        )
    if not record.orchestrator_run_id:
        raise ConfigurationError(
            f"run {record.id} has no backend run ID yet (status {record.status.value}), so there is nothing to stop on the backend",
            fix="retry once its first step started",
        )
    # Ask through the run store first: the process that schedules the run may be another one
    # (the local flavor's scheduler polls for STOPPING); then through the backend.
    from orcakit import ExecutionStatus

    store.set_run_status(record.id, ExecutionStatus.STOPPING)
    orchestrator_obj.stop_run(record.orchestrator_run_id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = store.get_run(record.id)
        if record.status.is_finished:
            out.print(f"run {record.id} stopped: it ended {record.status.value.upper()}")
            return
        time.sleep(0.25)
    raise OrcakitError(
        f"asked flavor {flavor_obj.name!r} to stop run {record.id}, but after {timeout:g}s it is still {record.status.value.upper()}",
        why="the backend may take longer to stop, or (local flavor) only the process that runs the pipeline can stop it",
        fix=(
            "check again with `orcakit runs show`; for a local run press Ctrl-C in the terminal that runs it "
            "(or `kill -INT` the driver process `orcakit run --no-wait` printed)"
        ),
    )



# -- certify ---------------------------------------------------------------------------------


@cli.group(invoke_without_command=True, context_settings={"ignore_unknown_options": True})
@click.option("--flavor", "flavor_name", help="flavor to certify: a registered flavor, 'module:Class' or an orchestrator name")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="certification", show_default=True,
              help="where the certification bundle is written")
@click.option("--flavor-option", "flavor_options", multiple=True, metavar="KEY=VALUE", help="flavor config value (repeatable)")
@click.option("--flavor-config", type=click.Path(dir_okay=False, exists=True), help="flavor config file (YAML or JSON)")
@click.pass_context
def certify(ctx: click.Context, flavor_name: str | None, out_dir: str, flavor_options: tuple[str, ...], flavor_config: str | None) -> None:
    """Certify a flavor: run the whole conformance suite with --certify and write the bundle
    (report.json, junit.xml, report.html) to --out. `orcakit certify verify DIR` checks a bundle."""
    if ctx.invoked_subcommand is not None:
        return
    if not flavor_name:
        raise click.UsageError("--flavor is required (or use `orcakit certify verify DIR`)")
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    out = Path(out_dir).resolve()
    command = [sys.executable, "-m", "pytest", f"--flavor={flavor_name}", "--certify", f"--report-dir={out}", "-p", "no:cacheprovider"]
    command += [f"--flavor-option={option}" for option in flavor_options]
    if flavor_config:
        command.append(f"--flavor-config={Path(flavor_config).resolve()}")
    with tempfile.TemporaryDirectory(prefix="orcakit-certify-") as empty:
        # An empty folder: the suite is collected from the installed plugin, nothing else.
        code = subprocess.call(command, cwd=empty)
    from orcakit.conformance.report import verify_bundle

    certifies, problems = verify_bundle(out)
    _print_verification(out, certifies, problems)
    ctx.exit(0 if certifies and code == 0 else 1)


@certify.command("verify")
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
def certify_verify(directory: str) -> None:
    """Check that a certification bundle is complete and consistent, and whether it certifies."""
    from pathlib import Path

    from orcakit.conformance.report import verify_bundle

    certifies, problems = verify_bundle(Path(directory))
    _print_verification(Path(directory), certifies, problems)
    raise SystemExit(0 if certifies else 1)


def _print_verification(directory: Any, certifies: bool, problems: list[str]) -> None:
    import json

    out = console()
    report_path = directory / "report.json"
    if report_path.is_file() and not problems:
        report = json.loads(report_path.read_text())
        flavor = report["flavor"]
        out.print(f"bundle {directory}: flavor {_esc(flavor['name'])} {_esc(flavor['version'])}, spec {report['spec_version']}, "
                  f"profile {report['run']['profile']}, seed {report['run']['seed']}")
        for reason in report["verdict"]["reasons"]:
            out.print(f"  - {_esc(reason)}")
    for problem in problems:
        out.print(f"[red]  problem: {_esc(problem)}[/red]")
    out.print("[bold green]CERTIFIES[/bold green]" if certifies else "[bold red]does not certify[/bold red]")
