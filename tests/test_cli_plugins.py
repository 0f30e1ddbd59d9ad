"""Commands other packages add to ``orcakit`` (entry-point group ``orcakit.commands``): the
conformance suite's ``certify`` is one, found lazily, and a broken one does not take the
command line down."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from orcakit.reference.cli import cli, plugins
from orcakit.reference.cli.plugins import COMMAND_ENTRY_POINT_GROUP, PluginCommandsGroup

ORCAKIT = Path(sys.executable).with_name("orcakit")


@pytest.mark.parametrize("command", [[sys.executable, "-m", "orcakit.reference.cli"], [str(ORCAKIT)]], ids=["python -m", "script"])
def test_certify_help_works_from_both_entry_points(command: list[str]) -> None:
    result = subprocess.run([*command, "certify", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Certify a flavor" in result.stdout and "--flavor-option" in result.stdout and "verify" in result.stdout


def test_help_lists_certify_with_its_short_help() -> None:
    result = CliRunner().invoke(cli, ["--help"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "certify" in result.output and "Certify a flavor: run the whole conformance suite" in result.output


@pytest.mark.parametrize(
    "args, loaded",
    [
        (["flavor", "list"], set()),  # a built-in command loads no plugin
        (["--help"], {"orcakit.conformance", "orcakit.conformance.cli"}),  # only the command's own module, for its help
    ],
)
def test_plugin_commands_are_imported_only_when_needed(args: list[str], loaded: set[str], orcakit_home: Path) -> None:
    probe = (
        "import sys\n"
        "from orcakit.reference.cli import cli\n"
        f"try:\n    cli.main(args={args!r}, prog_name='orcakit')\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print('LOADED', sorted(m for m in sys.modules if m.startswith('orcakit.conformance') or m == 'pytest'))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env={**os.environ, "ORCAKIT_HOME": str(orcakit_home)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == f"LOADED {sorted(loaded)}"


@click.command("status")
def builtin_status() -> None:
    """The built-in status command."""
    click.echo("built-in status")


@pytest.fixture
def group(monkeypatch: pytest.MonkeyPatch) -> PluginCommandsGroup:
    """A root group with one built-in command and three plugins: a good one, one whose module is
    missing, one that is not a command, and one that tries to replace the built-in."""
    registered = {
        "good": EntryPoint("good", "orcakit.conformance.cli:certify", COMMAND_ENTRY_POINT_GROUP),
        "broken": EntryPoint("broken", "no_such_module_xyz.cli:command", COMMAND_ENTRY_POINT_GROUP),
        "notcmd": EntryPoint("notcmd", "os:sep", COMMAND_ENTRY_POINT_GROUP),
        "status": EntryPoint("status", "no_such_module_xyz.cli:status", COMMAND_ENTRY_POINT_GROUP),
    }
    monkeypatch.setattr(plugins, "command_entry_points", lambda: registered)
    return PluginCommandsGroup("orcakit", commands={"status": builtin_status})


def test_a_broken_plugin_is_listed_and_the_rest_still_works(group: PluginCommandsGroup) -> None:
    runner = CliRunner()
    listing = runner.invoke(group, ["--help"], catch_exceptions=False)
    assert listing.exit_code == 0, listing.output
    for name in ("good", "broken", "notcmd", "status"):
        assert name in listing.output
    assert "broken: cannot be loaded" in listing.output and "Certify a flavor" in listing.output
    # The built-in wins over a plugin of the same name; the good plugin works.
    assert runner.invoke(group, ["status"], catch_exceptions=False).output == "built-in status\n"
    assert runner.invoke(group, ["good", "--help"], catch_exceptions=False).exit_code == 0


@pytest.mark.parametrize(
    "name, problem",
    [
        ("broken", "importing it failed: ModuleNotFoundError: No module named 'no_such_module_xyz'"),
        ("notcmd", "it names a str, not a click command"),
    ],
)
def test_running_a_broken_plugin_names_the_entry_point_and_the_fix(group: PluginCommandsGroup, name: str, problem: str) -> None:
    for args in ([name], [name, "--help"], [name, "--any", "thing"]):
        result = CliRunner().invoke(group, args, catch_exceptions=False)
        assert result.exit_code == 1, result.output
        assert f"the command {name!r} (entry point '{name} = " in result.output and "'orcakit.commands'" in result.output
        assert problem in result.output and "fix: reinstall or upgrade" in result.output
        assert "Traceback" not in result.output
