"""Flavors: the registered, named kinds of orchestrator, and the registry that checks them.

Like pluggy's hook specs, a flavor's declaration is checked when it is registered, not when a
pipeline first trips over it: an implementation that is not a BaseOrchestrator, a config class
that is not a BaseOrchestratorConfig, or a capability declared without the method that backs it
is an error naming the flavor and the fix.
"""

from __future__ import annotations

import re
from functools import cached_property
from importlib.metadata import entry_points
from typing import Any, ClassVar

from pydantic import ValidationError

from .capabilities import Capabilities
from .errors import ConfigurationError, FlavorNotFoundError, FlavorRegistrationError
from .orchestrator import BaseOrchestrator, BaseOrchestratorConfig, unimplemented_methods
from .redaction import is_secret_key
from .sources import import_object

#: Entry-point group third-party flavors register under (``pyproject.toml``:
#: ``[project.entry-points."orcakit.flavors"] myorch = "mypkg.flavor:MyFlavor"``).
FLAVOR_ENTRY_POINT_GROUP = "orcakit.flavors"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_ENV = re.compile(r"^[A-Z_][A-Z0-9_]*$")



class Flavor:
    """Declaration of an orchestrator flavor.

    Subclasses set the class attributes below. ``implementation_source`` is a
    ``"module:Class"`` string imported only when an orchestrator is created, so that listing
    flavors never imports a backend SDK.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[BaseOrchestratorConfig]]
    implementation_source: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    #: The environment variable the flavor sets in every step to carry the run ID.
    run_id_env_var: ClassVar[str]
    docs_url: ClassVar[str | None] = None
    description: ClassVar[str] = ""

    @cached_property
    def implementation_class(self) -> type[BaseOrchestrator]:
        try:
            value = import_object(self.implementation_source)
        except (ImportError, AttributeError) as exc:
            raise FlavorRegistrationError(
                f"flavor {self.name!r}: cannot import its implementation {self.implementation_source!r} ({exc})",
                fix="install the flavor's extra (e.g. pip install 'orcakit[docker]') or correct implementation_source",
            ) from exc
        return value

    @property
    def version(self) -> str:
        """The version of the distribution that ships this flavor ('unknown' if not installed)."""
        from importlib.metadata import PackageNotFoundError, packages_distributions, version

        top = type(self).__module__.split(".")[0]
        for dist in packages_distributions().get(top, []):
            try:
                return version(dist)
            except PackageNotFoundError:  # pragma: no cover - racing uninstall
                continue
        return "unknown"

    def validate_config(self, values: dict[str, Any] | BaseOrchestratorConfig) -> BaseOrchestratorConfig:
        """Coerce and validate config values; errors name the field and the flavor."""
        if isinstance(values, self.config_class):
            return values
        try:
            return self.config_class.model_validate(values)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                field = ".".join(str(p) for p in error["loc"]) or "(config)"
                if error["type"] == "extra_forbidden":
                    known = ", ".join(self.config_class.model_fields) or "none"
                    problems.append(f"unknown field {field!r} (known fields: {known})")
                elif error["type"] == "missing":
                    problems.append(f"missing required field {field!r}")
                elif is_secret_key(field):
                    problems.append(f"field {field!r}: {error['msg']} (value not shown: it looks like a secret)")
                else:
                    problems.append(f"field {field!r}: {error['msg']} (got {error.get('input')!r})")
            raise ConfigurationError(
                f"invalid config for orchestrator flavor {self.name!r}: " + "; ".join(problems),
                fix=f"see `orcakit flavor describe {self.name}` for the fields and their types",
            ) from None

    def create(self, config: dict[str, Any] | BaseOrchestratorConfig | None = None, name: str = "default") -> BaseOrchestrator:
        """An orchestrator of this flavor with a validated config."""
        return self.implementation_class(self.validate_config(config or {}), flavor=self, name=name)

    def check(self) -> "Flavor":
        """Check the declaration against the implementation (run at registration)."""
        where = f"flavor {type(self).__module__}:{type(self).__qualname__}"
        for attr in ("name", "config_class", "implementation_source", "capabilities", "run_id_env_var"):
            if not hasattr(self, attr):
                raise FlavorRegistrationError(f"{where} does not set {attr!r}", fix=f"set the class attribute {attr}")
        if not _NAME.fullmatch(self.name):
            raise FlavorRegistrationError(
                f"{where}: name {self.name!r} is not a valid flavor name",
                fix="use lower-case letters, digits, '-' or '_', starting with a letter (max 63)",
            )
        if not _ENV.fullmatch(self.run_id_env_var):
            raise FlavorRegistrationError(
                f"{where}: run_id_env_var {self.run_id_env_var!r} is not a valid variable name",
                fix="use upper-case letters, digits and '_', e.g. 'MYORCH_RUN_ID'",
            )
        if not (isinstance(self.config_class, type) and issubclass(self.config_class, BaseOrchestratorConfig)):
            raise FlavorRegistrationError(f"{where}: config_class must subclass orcakit.BaseOrchestratorConfig")
        if not isinstance(self.capabilities, Capabilities):
            raise FlavorRegistrationError(f"{where}: capabilities must be an orcakit.Capabilities value")
        impl = self.implementation_class
        if not (isinstance(impl, type) and issubclass(impl, BaseOrchestrator)):
            raise FlavorRegistrationError(
                f"{where}: implementation {self.implementation_source!r} is not a BaseOrchestrator subclass"
            )
        caps = self.capabilities
        for capability in ("dynamic_pipelines", "stop_run", "fetch_status", "schedules"):
            missing = unimplemented_methods(impl, capability) if getattr(caps, capability) else []
            if missing:
                raise FlavorRegistrationError(
                    f"{where} declares {capability} but {impl.__name__} does not implement {', '.join(m + '()' for m in missing)}",
                    why="a declared capability is a promise the conformance suite will test",
                    fix=f"implement {', '.join(impl.__name__ + '.' + m + '()' for m in missing)} or remove {capability} from the capabilities",
                )
        if impl.__abstractmethods__:
            raise FlavorRegistrationError(
                f"{where}: {impl.__name__} leaves abstract methods unimplemented: {sorted(impl.__abstractmethods__)}"
            )
        return self


def load_flavor(reference: str) -> Flavor:
    """A checked flavor from a registered name or a ``module:Class`` reference."""
    if ":" in reference:
        try:
            value = import_object(reference)
        except (ImportError, AttributeError) as exc:
            raise FlavorNotFoundError(
                f"cannot load flavor class {reference!r}: {exc}",
                fix="check the module is importable (installed, or on PYTHONPATH) and the class name is right",
            ) from exc
        if not (isinstance(value, type) and issubclass(value, Flavor)):
            raise FlavorNotFoundError(f"{reference!r} is not an orcakit.Flavor subclass")
        return value().check()
    registered = _registered()
    if reference not in registered:
        names = ", ".join(sorted(registered)) or "none"
        raise FlavorNotFoundError(
            f"no orchestrator flavor named {reference!r} (registered: {names})",
            fix=f"install the package that provides it (it registers under the {FLAVOR_ENTRY_POINT_GROUP!r} entry-point group), or pass 'module:FlavorClass'",
        )
    flavor_class = registered[reference].load()
    flavor = flavor_class().check()
    if flavor.name != reference:
        raise FlavorRegistrationError(
            f"entry point {reference!r} loads a flavor named {flavor.name!r}",
            fix="make the entry-point name and Flavor.name agree",
        )
    return flavor


def available_flavors() -> list[str]:
    """Names registered in the entry-point group, without importing any of them."""
    return sorted(_registered())


def _registered() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=FLAVOR_ENTRY_POINT_GROUP)}
