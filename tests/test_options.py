"""One parser for flavor options (:mod:`orcakit.options`), the same verdict everywhere.

One table of ``KEY=VALUE`` items for the local and the docker flavor's config goes through every
entry point that takes them: the parser itself, ``orcakit orchestrator register --KEY=VALUE``,
``pytest --flavor=X --flavor-option KEY=VALUE`` (pytester, collection only: nothing runs) and
``orcakit certify --flavor-option KEY=VALUE`` (which checks them, then hands them to pytest as
typed). Each must accept with the same coerced value, or refuse with the same message.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pytest
from click.testing import CliRunner
from pydantic import Field

from orcakit import BaseOrchestratorConfig, ConfigurationError, load_flavor, parse_flavor_config, parse_flavor_options
from orcakit.options import load_flavor_config
from orcakit.reference.cli import cli
from orcakit.reference.flavors.docker import DockerOrchestratorConfig
from orcakit.reference.flavors.local import LocalOrchestratorConfig

pytest_plugins = ["pytester"]

CONFIG_CLASSES = {"local": LocalOrchestratorConfig, "docker": DockerOrchestratorConfig}


@dataclass(frozen=True)
class Refused:
    """The item is refused; ``fragment`` is in the message whichever entry point refused it."""

    fragment: str


CASES: list[tuple[str, str, dict[str, Any] | Refused]] = [
    ("local", "max_parallelism=4", {"max_parallelism": 4}),
    ("local", "max-parallelism=4", {"max_parallelism": 4}),  # '-' in a key counts as '_'
    ("local", "launcher=exec", {"launcher": "exec"}),  # a Literal takes the text
    ("local", "launcher=spawn", Refused("'fork' or 'exec'")),
    ("local", "max_parallelism=zero", Refused("invalid value 'zero' for 'max_parallelism'")),
    ("local", "max_parallelism=0", Refused("greater than or equal to 1")),
    ("local", "max_parallelism=2.5", Refused("fractional part")),
    ("local", "max_parallelism=", Refused("invalid value '' for 'max_parallelism'")),  # an empty value
    ("local", "unknown=1", Refused("unknown field 'unknown'")),
    ("local", "python=/opt/py=3.12/bin/python", {"python": "/opt/py=3.12/bin/python"}),  # '=' in the value
    ("local", "python=", {"python": ""}),
    ("local", "python=null", {"python": None}),  # JSON null for an optional field
    ("local", "9lives=1", Refused("'9lives' is not a valid config key")),
    ("local", "launcher", Refused("has no value")),
    ("docker", "user=1000", {"user": "1000"}),  # a string field keeps the digits a string
    ("docker", "user=1000:1000", {"user": "1000:1000"}),
    ("docker", "user=not a user", Refused("is not UID[:GID] or NAME[:GROUP]")),  # the field's validator
    ("docker", 'forward_environment=["AWS_*"]', {"forward_environment": ["AWS_*"]}),  # JSON for a list
    ("docker", "forward_environment=AWS_*", Refused("Input should be a valid list")),
    ("docker", "stream_logs=false", {"stream_logs": False}),
    ("docker", "stream_logs=yes", {"stream_logs": True}),
    ("docker", "engine_timeout=2", {"engine_timeout": 2.0}),
    ("docker", "gpus=null", {"gpus": None}),
    ("docker", "max_parallelism=4", {"max_parallelism": 4}),
    ("docker", "unknown=1", Refused("known fields: parent_image, image")),
]
IDS = [f"{flavor}:{item}" for flavor, item, _ in CASES]


def parser_verdict(flavor: str, item: str) -> dict[str, Any] | ConfigurationError:
    """What the parser says, given the flavor (so that its messages name it as the CLI's do)."""
    try:
        return parse_flavor_options(load_flavor(flavor), [item])
    except ConfigurationError as exc:
        return exc


@pytest.mark.parametrize("flavor, item, expected", CASES, ids=IDS)
def test_the_parser(flavor: str, item: str, expected: dict[str, Any] | Refused) -> None:
    if isinstance(expected, Refused):
        with pytest.raises(ConfigurationError) as raised:
            parse_flavor_options(CONFIG_CLASSES[flavor], [item])
        assert expected.fragment in str(raised.value)
        assert expected.fragment in str(parser_verdict(flavor, item))
    else:
        assert parse_flavor_options(CONFIG_CLASSES[flavor], [item]) == expected
        assert parser_verdict(flavor, item) == expected


@pytest.mark.parametrize("flavor, item, expected", CASES, ids=IDS)
def test_orchestrator_register(flavor: str, item: str, expected: dict[str, Any] | Refused, orcakit_home: Path) -> None:
    result = CliRunner().invoke(cli, ["orchestrator", "register", "o", f"--flavor={flavor}", f"--{item}"], catch_exceptions=False)
    if isinstance(expected, Refused):
        assert result.exit_code == 2, result.output
        assert expected.fragment in result.output
        verdict = parser_verdict(flavor, item)
        if item != "launcher":  # `--launcher` alone is the command's own syntax error: "option --launcher has no value"
            assert verdict.what in result.output
        assert not (orcakit_home / "config.json").exists()
    else:
        assert result.exit_code == 0, result.output
        stored = json.loads((orcakit_home / "config.json").read_text())["orchestrators"]["o"]
        assert stored == {"flavor": flavor, "config": expected}


CONFTEST = """
import json
from pathlib import Path

from orcakit.conformance.plugin import SUITE_STATE


def pytest_collection_finish(session):
    # the config the suite would hold the flavor to
    Path({path!r}).write_text(json.dumps(session.config.stash[SUITE_STATE].fut.config))
"""


@pytest.mark.parametrize("flavor, item, expected", CASES, ids=IDS)
def test_pytest_flavor_option(flavor: str, item: str, expected: dict[str, Any] | Refused, pytester: pytest.Pytester) -> None:
    seen = pytester.path / "fut-config.json"
    pytester.makeconftest(CONFTEST.format(path=str(seen)))
    result = pytester.runpytest_subprocess(f"--flavor={flavor}", f"--flavor-option={item}", "--collect-only", "-q", "-p", "no:cacheprovider")
    if isinstance(expected, Refused):
        assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
        errors = result.stderr.str()
        assert expected.fragment in errors and parser_verdict(flavor, item).what in errors
        assert not seen.exists()
    else:
        assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
        assert json.loads(seen.read_text()) == expected


@pytest.mark.parametrize("flavor, item, expected", CASES, ids=IDS)
def test_certify_passes_options_through(
    flavor: str, item: str, expected: dict[str, Any] | Refused, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned: list[list[str]] = []

    def call(command: list[str], **kwargs: Any) -> int:
        spawned.append(command)
        return 0  # no suite runs: the bundle is missing, so certify ends with "does not certify"

    monkeypatch.setattr(subprocess, "call", call)
    out = tmp_path / "bundle"
    result = CliRunner().invoke(cli, ["certify", f"--flavor={flavor}", f"--flavor-option={item}", "--out", str(out)], catch_exceptions=False)
    if isinstance(expected, Refused):
        assert result.exit_code == 2, result.output
        assert expected.fragment in result.output and parser_verdict(flavor, item).what in result.output
        assert spawned == []  # refused before pytest was started
    else:
        (command,) = spawned
        assert f"--flavor-option={item}" in command  # as typed: pytest parses it by the same rules
        assert f"--flavor={flavor}" in command and "--certify" in command
        assert "does not certify" in result.output and result.exit_code == 1


def test_certify_passes_the_stores_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Remote flavors certify with a network run store and an S3 artifact store."""
    spawned: list[list[str]] = []
    monkeypatch.setattr(subprocess, "call", lambda command, **kwargs: spawned.append(command) or 0)
    url, uri = "postgresql+psycopg://u:p@127.0.0.1:5432/db", "s3://bucket/prefix"
    result = CliRunner().invoke(cli, ["certify", "--flavor=local", f"--run-store={url}", f"--artifact-store={uri}",
                                      "--out", str(tmp_path / "bundle")], catch_exceptions=False)
    (command,) = spawned
    assert f"--conformance-run-store={url}" in command and f"--conformance-artifact-store={uri}" in command, result.output


# -- config files and the overlay of options -----------------------------------------------------


def test_config_file_overlaid_with_options(tmp_path: Path) -> None:
    yaml_file = tmp_path / "local.yaml"
    yaml_file.write_text("max_parallelism: 3\nlauncher: exec\n")
    assert load_flavor_config(LocalOrchestratorConfig, yaml_file) == {"max_parallelism": 3, "launcher": "exec"}
    # An option overrides the file's value for its key; the others stay.
    assert parse_flavor_config(LocalOrchestratorConfig, yaml_file, ["max_parallelism=5"]) == {"max_parallelism": 5, "launcher": "exec"}
    json_file = tmp_path / "docker.json"
    json_file.write_text('{"user": "1000", "forward_environment": ["AWS_*", "HF_*"]}')
    assert load_flavor_config(DockerOrchestratorConfig, json_file) == {"user": "1000", "forward_environment": ["AWS_*", "HF_*"]}
    (tmp_path / "empty.yaml").write_text("")
    assert load_flavor_config(LocalOrchestratorConfig, tmp_path / "empty.yaml") == {}


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("bad.yaml", "max_parallelism: [1\n", "is not valid YAML at line"),
        ("bad.json", "{", "is not valid JSON"),
        ("list.yaml", "- 1\n", "holds a list, not a mapping"),
        ("unknown.yaml", "colour: blue\n", "unknown field 'colour'"),
        # A file says what type it means: an int is not read as text for a string field.
        ("typed.yaml", "user: 1000\n", "invalid value 1000 for 'user'"),
    ],
)
def test_config_file_errors_name_the_file_and_the_key(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigurationError) as raised:
        load_flavor_config(load_flavor("docker"), path)
    assert message in str(raised.value) and name in str(raised.value)
    with pytest.raises(ConfigurationError, match="cannot read the flavor config file"):
        load_flavor_config(DockerOrchestratorConfig, tmp_path / "missing.yaml")


def test_pytest_flavor_config_file_with_an_option_on_top(pytester: pytest.Pytester) -> None:
    seen = pytester.path / "fut-config.json"
    pytester.makeconftest(CONFTEST.format(path=str(seen)))
    config = pytester.makefile(".yaml", local="max_parallelism: 3\nlauncher: exec\n")
    result = pytester.runpytest_subprocess(
        "--flavor=local", f"--flavor-config={config}", "--flavor-option=max_parallelism=5", "--collect-only", "-q", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()
    assert json.loads(seen.read_text()) == {"max_parallelism": 5, "launcher": "exec"}


# -- the finer rules -----------------------------------------------------------------------------------


class TokenConfig(BaseOrchestratorConfig):
    api_token: Annotated[str, Field(min_length=8)]  # required: parsing one option must not need it
    endpoint: str | None = None
    retries: int = 0


def test_at_file_values_and_the_at_at_escape(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("tok-123456\n")
    assert parse_flavor_options(TokenConfig, [f"api_token=@{tmp_path / 'token'}"]) == {"api_token": "tok-123456"}
    assert parse_flavor_options(TokenConfig, ["api_token=@@literal-at"]) == {"api_token": "@literal-at"}
    with pytest.raises(ConfigurationError, match="cannot read the value of 'api_token'.*nope"):
        parse_flavor_options(TokenConfig, [f"api_token=@{tmp_path / 'nope'}"])


def test_a_field_is_coerced_without_the_required_fields_it_does_not_name() -> None:
    assert parse_flavor_options(TokenConfig, ["retries=3"]) == {"retries": 3}
    with pytest.raises(ConfigurationError, match="'retries'"):
        parse_flavor_options(TokenConfig, ["retries=many"])


def test_secret_values_are_never_echoed() -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_flavor_options(TokenConfig, ["api_token=short"])
    assert "short" not in str(raised.value) and "at least 8 characters" in str(raised.value)
    assert "looks like a secret" in str(raised.value)
    # A password inside a URL is hidden too, whatever the key.
    with pytest.raises(ConfigurationError) as raised:
        parse_flavor_options(TokenConfig, ["retries=https://bob:hunter2@example.com"])
    assert "hunter2" not in str(raised.value) and "bob:" in str(raised.value)


def test_a_key_is_given_once() -> None:
    with pytest.raises(ConfigurationError, match="'launcher' is given twice"):
        parse_flavor_options(LocalOrchestratorConfig, ["launcher=exec", "launcher=fork"])
    with pytest.raises(ConfigurationError, match="given twice"):
        parse_flavor_options(LocalOrchestratorConfig, ["max-parallelism=2", "max_parallelism=3"])
