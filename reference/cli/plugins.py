"""Commands other packages add to ``orcakit``, like Flask's ``flask.commands``.

A package registers a click command under the ``orcakit.commands`` entry-point group::

    [project.entry-points."orcakit.commands"]
    certify = "orcakit.conformance.cli:certify"

and ``orcakit certify ...`` runs it. The command is imported only when it is run or when
``orcakit --help`` lists it (its short help lives in its module), so ``orcakit flavor list``
loads no plugin. A command that cannot be loaded does not take the command line down with it:
it is listed as broken, and running it says which entry point failed and how to fix it. A
plugin cannot replace a built-in command: the built-in wins.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

import click

from orcakit import OrcakitError

from .output import OrcakitGroup

#: The entry-point group ``orcakit`` takes extra commands from.
COMMAND_ENTRY_POINT_GROUP = "orcakit.commands"


def command_entry_points() -> dict[str, EntryPoint]:
    """The registered plugin commands by name, from package metadata (nothing is imported)."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=COMMAND_ENTRY_POINT_GROUP)}


class PluginCommandsGroup(OrcakitGroup):
    """The root group: its own commands, then those of the ``orcakit.commands`` entry points."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plugin_entry_points: dict[str, EntryPoint] | None = None
        self._plugin_commands: dict[str, click.Command] = {}

    def plugin_entry_points(self) -> dict[str, EntryPoint]:
        """The plugin commands by name (read once: scanning package metadata is not free)."""
        if self._plugin_entry_points is None:
            self._plugin_entry_points = command_entry_points()
        return self._plugin_entry_points

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.plugin_entry_points()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        entry_point = self.plugin_entry_points().get(cmd_name)
        if entry_point is None:
            return None
        if cmd_name not in self._plugin_commands:
            self._plugin_commands[cmd_name] = _load(entry_point)
        return self._plugin_commands[cmd_name]


def _load(entry_point: EntryPoint) -> click.Command:
    try:
        command = entry_point.load()
    except Exception as exc:  # a broken plugin: report it when it is used, keep the rest working
        return _broken(entry_point, f"importing it failed: {type(exc).__name__}: {exc}")
    if not isinstance(command, click.Command):
        return _broken(entry_point, f"it names a {type(command).__name__}, not a click command")
    return command


def _broken(entry_point: EntryPoint, problem: str) -> click.Command:
    """A stand-in for a plugin command that cannot be loaded: listed, and failing when run."""
    dist = getattr(entry_point.dist, "name", None)
    provider = f"the package {dist!r}" if dist else "the package that provides it"
    error = OrcakitError(
        f"the command {entry_point.name!r} (entry point '{entry_point.name} = {entry_point.value}' in group "
        f"{COMMAND_ENTRY_POINT_GROUP!r}) cannot be loaded: {problem}",
        why=f"{provider} adds it to orcakit; the other orcakit commands are not affected",
        fix=(
            f"reinstall or upgrade {provider} (its dependencies may be missing), "
            "or uninstall it if you do not need the command"
        ),
    )

    def fail() -> None:
        raise error

    return click.Command(
        entry_point.name,
        callback=fail,
        help=error.what,
        short_help=f"(broken: cannot be loaded; run `orcakit {entry_point.name}` for details)",
        # Whatever was typed after the name, say what is wrong rather than "no such option".
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
    )
