"""Registered orchestrators and stacks (what ``orcakit orchestrator register`` and ``orcakit
stack set`` write), kept in ``$ORCAKIT_HOME/config.json`` (default ``~/.orcakit``).

A fresh home has one orchestrator, ``default`` (flavor ``local``), and one active stack,
``default``: that orchestrator, an artifact folder and an SQLite run store under the home.

Every change is a read-modify-write of the whole file under an exclusive file lock
(``$ORCAKIT_HOME/.config.lock``), so concurrent ``orcakit orchestrator register`` processes
all keep their entry; the file itself is replaced atomically, so readers take no lock. A home
or file that cannot be read or written is a :class:`~orcakit.ConfigurationError` naming it.
"""

from __future__ import annotations

import errno
import os
import tempfile
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from orcakit.redaction import REDACTED, is_secret_key, redact  # noqa: F401 (re-exported)
from orcakit import ComponentSpec, ConfigurationError, StackSpec, load_flavor

from .faults import file_error

#: How long a change waits for another process's change to the config (each takes milliseconds).
LOCK_TIMEOUT_SECONDS = 30.0
_WHY = "registered orchestrators and stacks are kept in config.json in the orcakit home ($ORCAKIT_HOME, default ~/.orcakit)"


def orcakit_home() -> Path:
    return Path(os.environ.get("ORCAKIT_HOME") or Path.home() / ".orcakit").expanduser()


class StackEntry(BaseModel):
    orchestrator: str
    artifact_store: str
    run_store: str
    artifact_store_options: dict[str, Any] = Field(default_factory=dict)


class OrchestratorEntry(BaseModel):
    flavor: str
    config: dict[str, Any] = Field(default_factory=dict)


class Config(BaseModel):
    orchestrators: dict[str, OrchestratorEntry] = Field(default_factory=dict)
    stacks: dict[str, StackEntry] = Field(default_factory=dict)
    active_stack: str = "default"


class ConfigStore:
    def __init__(self, home: Path | None = None) -> None:
        self.home = home or orcakit_home()
        self.path = self.home / "config.json"

    def defaults(self) -> Config:
        return Config(
            orchestrators={"default": OrchestratorEntry(flavor="local")},
            stacks={
                "default": StackEntry(
                    orchestrator="default",
                    artifact_store=str(self.home / "artifacts"),
                    run_store=f"sqlite:///{self.home / 'runs.db'}",
                )
            },
        )

    def load(self) -> Config:
        try:
            text = self.path.read_bytes()  # bytes: not UTF-8 is "not a valid config" below
        except FileNotFoundError:
            return self.defaults()
        except OSError as exc:
            raise file_error(exc, self.path, "read the orcakit config", ConfigurationError, _WHY) from None
        try:
            return Config.model_validate_json(text)
        except ValueError as exc:
            raise ConfigurationError(
                f"{self.path} is not a valid orcakit config: {exc}",
                fix=f"fix or delete {self.path} (deleting it restores the default stack)",
            ) from None

    def save(self, config: Config) -> None:
        """Replace the file atomically (callers that read it first hold :meth:`_changing`)."""
        if self.path.exists() and not os.access(self.path, os.W_OK):
            # os.replace would quietly overwrite a file its owner made read-only.
            read_only = PermissionError(errno.EACCES, "the file is read-only", str(self.path))
            raise file_error(read_only, self.path, "write the orcakit config", ConfigurationError, _WHY)
        tmp = None
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.home, prefix=".config.", suffix=".json")
            with os.fdopen(fd, "w") as handle:
                handle.write(config.model_dump_json(indent=2))
            os.replace(tmp, self.path)
        except OSError as exc:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
            raise file_error(exc, self.path, "write the orcakit config", ConfigurationError, _WHY) from None

    @contextmanager
    def _changing(self) -> Iterator[Config]:
        """The current config, to change and :meth:`save` while no other process can: without
        the lock two concurrent registrations both read the old file and the later save drops
        the other's entry."""
        from filelock import FileLock, Timeout

        lock_path = self.home / ".config.lock"
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            with FileLock(lock_path, timeout=LOCK_TIMEOUT_SECONDS):
                yield self.load()
        except Timeout:
            raise ConfigurationError(
                f"another orcakit process has held {lock_path} for over {LOCK_TIMEOUT_SECONDS:g}s",
                why="changes to the orcakit config are made one process at a time",
                fix=f"wait for the other orcakit command to finish; if none is running, delete {lock_path}",
            ) from None
        except OSError as exc:
            raise file_error(exc, lock_path, "create the config lock file", ConfigurationError, _WHY) from None

    # -- orchestrators -----------------------------------------------------------------------

    def register_orchestrator(self, name: str, flavor: str, values: dict[str, Any]) -> OrchestratorEntry:
        """Validate ``values`` with the flavor's config model and store them (coerced)."""
        validated = load_flavor(flavor).validate_config(values)  # before the lock: may import the flavor
        entry = OrchestratorEntry(flavor=flavor, config=validated.model_dump(mode="json", exclude_unset=True))
        with self._changing() as config:
            if name in config.orchestrators:
                raise ConfigurationError(
                    f"an orchestrator named {name!r} is already registered",
                    fix=f"choose another name or `orcakit orchestrator delete {name}` first",
                )
            config.orchestrators[name] = entry
            self.save(config)
        return entry

    def delete_orchestrator(self, name: str) -> None:
        with self._changing() as config:
            self.orchestrator(name, config)
            users = [stack for stack, entry in config.stacks.items() if entry.orchestrator == name]
            if users:
                raise ConfigurationError(
                    f"orchestrator {name!r} is used by stack(s) {users}", fix="delete or change those stacks first"
                )
            del config.orchestrators[name]
            self.save(config)

    def orchestrator(self, name: str, config: Config | None = None) -> OrchestratorEntry:
        config = config or self.load()
        if name not in config.orchestrators:
            raise ConfigurationError(
                f"no orchestrator named {name!r} (registered: {', '.join(sorted(config.orchestrators)) or 'none'})",
                fix=f"register it: orcakit orchestrator register {name} --flavor=local",
            )
        return config.orchestrators[name]

    # -- stacks ------------------------------------------------------------------------------

    def register_stack(self, name: str, orchestrator: str, artifact_store: str | None, run_store: str | None) -> StackEntry:
        with self._changing() as config:
            self.orchestrator(orchestrator, config)
            if name in config.stacks:
                raise ConfigurationError(f"a stack named {name!r} is already registered", fix="choose another name")
            entry = StackEntry(
                orchestrator=orchestrator,
                artifact_store=artifact_store or str(self.home / "artifacts"),
                run_store=run_store or f"sqlite:///{self.home / 'runs.db'}",
            )
            config.stacks[name] = entry
            self.save(config)
        return entry

    def set_active_stack(self, name: str) -> None:
        with self._changing() as config:
            self.stack_entry(name, config)
            config.active_stack = name
            self.save(config)

    def stack_entry(self, name: str, config: Config | None = None) -> StackEntry:
        config = config or self.load()
        if name not in config.stacks:
            raise ConfigurationError(
                f"no stack named {name!r} (registered: {', '.join(sorted(config.stacks)) or 'none'})",
                fix=f"register it: orcakit stack register {name} -o ORCHESTRATOR",
            )
        return config.stacks[name]

    def stack_spec(self, name: str | None = None) -> StackSpec:
        """The StackSpec a snapshot carries for stack ``name`` (default: the active one)."""
        config = self.load()
        entry = self.stack_entry(name or config.active_stack, config)
        orchestrator = self.orchestrator(entry.orchestrator, config)
        return StackSpec(
            orchestrator=ComponentSpec(flavor=orchestrator.flavor, name=entry.orchestrator, config=orchestrator.config),
            artifact_store=entry.artifact_store,
            run_store=entry.run_store,
            artifact_store_options=entry.artifact_store_options,
        )

    def delete_stack(self, name: str) -> None:
        with self._changing() as config:
            self.stack_entry(name, config)
            if name == config.active_stack:
                raise ConfigurationError(
                    f"stack {name!r} is the active stack", fix="`orcakit stack set OTHER` first, then delete it"
                )
            del config.stacks[name]
            self.save(config)


# -- describing what is stored (for the CLI) ------------------------------------------------------

# Secrets are defined once, in the contract (orcakit.redaction); the CLI imports them from here.
redact_config = redact


@dataclass(frozen=True)
class ConfigField:
    """One field of a flavor's config model, as ``orcakit flavor describe`` shows it."""

    name: str
    type: str
    required: bool
    default: Any  # the default value, or the value a default factory gives on this machine
    default_is_computed: bool
    description: str


def config_fields(config_class: type[BaseModel]) -> list[ConfigField]:
    """The fields of a pydantic config model with their types, defaults and descriptions."""
    fields = []
    for name, info in config_class.model_fields.items():
        computed = info.default_factory is not None
        if info.is_required():
            default = None
        elif computed:
            try:
                default = info.default_factory()  # type: ignore[call-arg]
            except Exception:  # a factory that needs context: say so rather than fail
                default = "<computed>"
        else:
            default = info.default
        fields.append(
            ConfigField(
                name=name,
                type=_type_name(info.annotation),
                required=info.is_required(),
                default=default,
                default_is_computed=computed,
                description=info.description or "",
            )
        )
    return fields


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    text = repr(annotation)
    return text.replace("typing.", "").replace("NoneType", "None")
