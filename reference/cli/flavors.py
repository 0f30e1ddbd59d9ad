"""``orcakit flavor list | describe | new``: the installed kinds of orchestrator, and a new one.

A flavor is described from its declaration (name, config model, capabilities) without importing
its implementation, so that a flavor whose backend SDK is missing can still be listed, and
``orcakit flavor list`` loads nothing at all: the names come from package metadata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from orcakit import FlavorNotFoundError, OrcakitError

from .output import console, emit, esc, output_option

if TYPE_CHECKING:
    from orcakit import Flavor


@click.group("flavor")
def flavor_group() -> None:
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
        return esc(", ".join(value)) if value else "[dim]none[/]"
    colour = {"enforced": "green", "rejected": "red", "warned": "yellow"}.get(str(value), "")
    return f"[{colour}]{esc(value)}[/]" if colour else esc(value)


def host_manifest(declared: "Flavor") -> tuple[dict[str, Any] | None, dict[str, str]]:
    """What an orchestrator of this flavor with the default config supports *on this host, for
    this user* (a flavor may narrow its declaration: the local flavor without a writable cgroup
    file system cannot enforce cpu or memory), and why each narrowed capability is narrowed.
    ``(None, {})`` when no orchestrator can be built here (required fields, a missing SDK)."""
    try:
        orchestrator = declared.create({})
        manifest = orchestrator.capabilities.manifest()
    except Exception:  # noqa: BLE001 - required fields, unreachable backend...: the declaration only
        return None, {}
    reasons = getattr(orchestrator, "capability_notes", lambda: {})()
    return manifest, dict(reasons)


@flavor_group.command("list")
@click.option("--verbose", "-v", is_flag=True, help="Also load each flavor's declaration: description, run-ID variable, "
              "capabilities on this host (where they differ from the declaration, both are shown).")
@output_option
def flavor_list(verbose: bool, output_format: str) -> None:
    """List the installed flavors (entry-point group 'orcakit.flavors').

    Without --verbose (and --output table) nothing is imported: the names come from package metadata.
    """
    from rich.table import Table

    registered = _flavor_entry_points()
    if output_format != "table":
        data = []
        for name in sorted(registered):
            entry: dict[str, Any] = {"name": name, "declared_in": registered[name].value}
            try:
                declared = _flavor_declaration(name)
                here, notes = host_manifest(declared)
                entry.update(description=declared.description, run_id_variable=declared.run_id_env_var,
                             capabilities={"declared": declared.capabilities.manifest(), "on_this_host": here, "notes": notes})
            except Exception as exc:  # noqa: BLE001 - one broken flavor must not hide the others
                entry["error"] = str(exc)
            data.append(entry)
        emit(data, output_format)
        return
    out = console()
    if not registered:
        out.print("no flavors installed")
        return
    table = Table(show_lines=verbose)
    table.add_column("flavor", style="bold", no_wrap=True)
    table.add_column("declared in", no_wrap=True)
    if verbose:
        table.add_column("description")
        table.add_column("run-ID variable", no_wrap=True)
        table.add_column("capabilities (on this host)")
    for name in sorted(registered):
        row = [esc(name), esc(registered[name].value)]
        if verbose:
            try:
                declared = _flavor_declaration(name)
                manifest = declared.capabilities.manifest()
                here, notes = host_manifest(declared)
                lines = []
                for key, value in manifest.items():
                    if here is not None and here.get(key) != value:
                        line = f"{key}: {_capability_text(here.get(key))} [dim](declared {esc(value)}"
                        line += f"; {esc(notes[key].split('; to enforce:')[0])})[/]" if key in notes else ")[/]"
                    else:
                        line = f"{key}: {_capability_text(value)}"
                    lines.append(line)
                row += [esc(declared.description), esc(declared.run_id_env_var), "\n".join(lines)]
            except Exception as exc:  # one broken flavor must not hide the others
                row += [f"[red]cannot load: {esc(exc)}[/]", "", ""]
        table.add_row(*row)
    out.print(table)


@flavor_group.command("describe")
@click.argument("name")
@output_option
def flavor_describe(name: str, output_format: str) -> None:
    """Show a flavor's config fields, capabilities (declared, and on this host) and run-ID variable.

    NAME is a registered flavor name or a 'module:FlavorClass' reference.
    """
    from rich.table import Table

    from .._runtime.config_store import config_fields

    declared = _flavor_declaration(name)
    if output_format != "table":
        try:
            declared.check()
            check, here, notes = "ok", *host_manifest(declared)
        except OrcakitError as exc:
            check, here, notes = exc.what, None, {}
        emit({
            "name": declared.name, "description": declared.description, "run_id_variable": declared.run_id_env_var,
            "implementation": declared.implementation_source, "version": declared.version, "docs_url": declared.docs_url,
            "check": check,
            "config": [{"name": f.name, "type": f.type, "required": f.required, "default": None if f.required else f.default,
                        "description": f.description} for f in config_fields(declared.config_class)],
            "capabilities": {"declared": declared.capabilities.manifest(), "on_this_host": here, "notes": notes},
        }, output_format)
        return
    out = console()
    out.print(f"[bold]flavor {esc(declared.name)}[/]" + (f" — {esc(declared.description)}" if declared.description else ""))
    out.print(f"  run-ID variable:  {esc(declared.run_id_env_var)}")
    out.print(f"  implementation:   {esc(declared.implementation_source)}")
    out.print(f"  version:          {esc(declared.version)}")
    if declared.docs_url:
        out.print(f"  docs:             {esc(declared.docs_url)}")
    here, notes = None, {}
    try:
        declared.check()  # imports the implementation: says whether the flavor is usable here
        out.print("  check:            [green]ok[/] (implementation importable, declaration consistent)")
        here, notes = host_manifest(declared)
    except OrcakitError as exc:
        out.print(f"  check:            [red]{esc(exc.what)}[/]", soft_wrap=True)

    fields = Table(title="config (orcakit orchestrator register NAME --flavor=%s --FIELD=VALUE ...)" % esc(declared.name), title_justify="left")
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
                default = esc(field.default if isinstance(field.default, str) else json.dumps(field.default))
            if field.default_is_computed:
                default += " [dim](here)[/]"
        fields.add_row(esc(field.name), esc(field.type), default, esc(field.description))
    out.print(fields)

    caps = Table(title="capabilities", title_justify="left")
    caps.add_column("capability", style="bold", no_wrap=True)
    caps.add_column("declared")
    if here is not None:
        caps.add_column("on this host")
    for key, value in declared.capabilities.manifest().items():
        row = [esc(key), _capability_text(value)]
        if here is not None:
            row.append(_capability_text(here.get(key)))
        caps.add_row(*row)
    out.print(caps)
    for key, note in notes.items():
        out.print(f"  {esc(key)} on this host: {esc(note)}", soft_wrap=True)


@flavor_group.command("new")
@click.argument("answers", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--no-input", is_flag=True, help="Ask nothing: the defaults, and the KEY=VALUE answers given.")
@click.option("--output-dir", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="Where the new package's folder is created.")
def flavor_new(answers: tuple[str, ...], no_input: bool, output_dir: Path) -> None:
    """Generate a new flavor package that passes `pytest --flavor=NAME` as generated.

    Runs orcakit's flavor template, the same cookiecutter template and questions as
    `cookiecutter <orcakit template>`: flavor_name, package_name, class_prefix, author,
    orchestrator_kind (process|container), min_python. Answers given as KEY=VALUE are not asked,
    e.g. `orcakit flavor new --no-input flavor_name=myorch orchestrator_kind=container`.
    """
    from .scaffold import new_flavor

    project, chosen = new_flavor(answers, no_input=no_input, output_dir=output_dir)
    out = console()
    out.print(f"created {esc(project)}: flavor [bold]{esc(chosen['flavor_name'])}[/] ({esc(chosen['orchestrator_kind'])} kind), "
              f"package {esc(chosen['package_name'])}")
    # The install line of the project's own README: orcakit comes from where it was generated
    # (it is on no package index), so the command works from a fresh venv with plain pip.
    install = next((line.split("#")[0].strip() for line in (project / "README.md").read_text().splitlines()
                    if line.startswith("pip install ")), "pip install -e '.[test]'")
    out.print("next:")
    out.print(esc(f"  cd {project}"))
    out.print("  python -m venv .venv && . .venv/bin/activate")
    out.print(esc(f"  {install}"))
    out.print("  pytest                          # its unit tests and the conformance suite (quick profile)")
    out.print('  grep -rn "TODO(backend)" src    # each place your backend\'s call goes')
    if chosen["orchestrator_kind"] == "zenml":  # a ZenML orchestrator is certified through the ZenML driver
        reference = f"zenml:{chosen['package_name']}.flavor:{chosen['class_prefix']}OrchestratorFlavor"
        out.print(f"  orcakit certify --flavor {esc(reference)} --out cert   # the record")
    else:
        out.print(f"  pytest --flavor={esc(chosen['flavor_name'])} --certify --report-dir=cert   # the record")
