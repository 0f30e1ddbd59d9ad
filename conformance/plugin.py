"""The conformance suite's pytest plugin (registered through the ``pytest11`` entry point).

``pytest --flavor=NAME`` in any folder collects the suite (the ``check_*.py`` modules of
:mod:`orcakit.conformance.suite`) and runs it against that flavor; without ``--flavor`` this
plugin only registers its options and marker and stays out of the way.

State lives under typed stash keys, not attributes; heavy imports (the runtime, Hypothesis
profiles) happen only when ``--flavor`` is given.
"""

from __future__ import annotations

import importlib
import json
import random
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

SUITE_DIR = Path(__file__).parent / "suite"
PROFILE_CHOICES = ("quick", "standard", "certify")
DEFAULT_TIMEOUT = 180.0


class SuiteState:
    """Everything the plugin keeps for one session (one instance, under ``SUITE_STATE``).

    It is also registered as a plugin itself, so that its ``pytest_runtest_logreport`` collects
    the per-check results (in the controller, for xdist workers too: the outcome and
    requirement IDs travel in ``report.user_properties``).
    """

    def __init__(self, fut: Any, profile: str, seed: int, certify: bool, disabled: set[str], selected: set[str],
                 report_dir: Path | None, command: list[str]) -> None:
        self.fut = fut
        self.profile = profile
        self.seed = seed
        self.certify = certify
        self.disabled = disabled
        self.selected = selected
        self.report_dir = report_dir
        self.command = command
        self.results: list[dict[str, Any]] = []
        #: What the framework between the author and the orchestrator did (ZenML), per check;
        #: arrives like the results, in user_properties (orcakit_framework_findings, JSON).
        self.framework_findings: list[dict[str, Any]] = []
        self.secrets = fut.secret_values()
        #: This session's temporary stores, deleted when it ends: evidence names them, never their paths.
        self.temp_paths = [str(path) for path in (getattr(fut, "workdir", None),) if path]
        self.not_applicable = fut.not_applicable()
        #: Side by side (pytest-xdist): the slots that bound the runs in flight (a folder shared
        #: with the workers; None when the flavor declares no limit) and, in the controller, the
        #: order in which the workers collected the checks (results arrive in completion order;
        #: the report lists them in collection order, as a sequential run does).
        self.run_slots: Any = None
        self.collection: list[str] | None = None

    def ordered_results(self) -> list[dict[str, Any]]:
        """The results in the order a sequential run would have produced them."""
        if self.collection is None:
            return self.results
        position = {nodeid: index for index, nodeid in enumerate(self.collection)}
        whens = {"setup": 0, "call": 1, "teardown": 2}
        return sorted(self.results, key=lambda r: (position.get(r["nodeid"], len(position)), whens.get(r["when"], 3)))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        if self.collection is None:
            self.collection = list(ids)

    def reproducer(self, check: str) -> list[str]:
        """The command that re-runs one check under this session's seed and options."""
        seed = [] if self.certify else [f"--conformance-seed={self.seed}"]
        return [*self.command, *seed, "-k", check]

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict(report.user_properties)
        if properties.get("orcakit_framework_findings"):
            for finding in json.loads(properties["orcakit_framework_findings"]):
                self.framework_findings.append({**finding, "check": report.nodeid.split("::")[-1]})
        if "orcakit_outcome" not in properties:
            return
        self.results.append(
            {
                "nodeid": report.nodeid,
                "name": report.nodeid.split("::")[-1],
                "when": report.when,
                "requirements": [r for r in properties["orcakit_requirements"].split(",") if r],
                "blamed": [r for r in properties.get("orcakit_blamed", "").split(",") if r],
                "verified": [r for r in properties.get("orcakit_verified", "").split(",") if r],
                "outcome": properties["orcakit_outcome"],
                "duration": round(report.duration, 3),
                "message": _message(report, properties.get("orcakit_suite_error")),
                "reproducer": properties.get("orcakit_reproducer"),
            }
        )


SUITE_STATE = pytest.StashKey[SuiteState]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("orcakit", "orcakit conformance suite")
    group.addoption("--flavor", default=None, metavar="NAME",
                    help="run the orcakit conformance suite against this flavor: a registered flavor name "
                         "(entry-point group orcakit.flavors), 'module:FlavorClass', or a registered orchestrator name")
    group.addoption("--flavor-config", default=None, metavar="FILE", help="flavor config as YAML or JSON")
    group.addoption("--flavor-option", action="append", default=[], metavar="KEY=VALUE",
                    help="one flavor config value (repeatable; overrides --flavor-config)")
    group.addoption("--conformance-profile", default=None, choices=PROFILE_CHOICES,
                    help="how many cases each property test tries (default: standard; certify under --certify)")
    group.addoption("--certify", action="store_true", default=False,
                    help="certification run: certify profile, derandomised, no requirement may be disabled")
    group.addoption("--conformance-seed", type=int, default=None, metavar="N", help="seed for the generated cases")
    group.addoption("--report-dir", default=None, metavar="DIR",
                    help="write the certification bundle (report.json, junit.xml, report.html) here")
    group.addoption("--requirement", action="append", default=[], metavar="ID",
                    help="only run the checks of this requirement (repeatable)")
    group.addoption("--disable-requirement", action="append", default=[], metavar="ID",
                    help="do not run the checks of this requirement; reported as 'disabled' (not allowed with --certify)")
    group.addoption("--conformance-timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                    help="longest a conformance run may go without progress (no run or step status changing) before it "
                         "counts as hanging; a run that progresses but never ends, 5 times that")
    group.addoption("--conformance-run-store", default=None, metavar="URL",
                    help="run store for conformance runs (default: a fresh SQLite file)")
    group.addoption("--conformance-artifact-store", default=None, metavar="URI",
                    help="artifact store for conformance runs (default: a fresh folder; s3://... for remote backends)")


def _resolve_reference(name: str) -> tuple[str, dict[str, Any]]:
    """Kept for callers of the old name; the driver module resolves references (so that the
    harness, below the plugin, need not import it)."""
    from .driver import resolve_reference

    return resolve_reference(name)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requirement(*ids): the orcakit requirement IDs a conformance check verifies")
    name = config.getoption("flavor")
    if not name:
        return
    from orcakit import OrcakitError

    from .strategies import register_profiles

    certify = config.getoption("certify")
    disabled = set(config.getoption("disable_requirement"))
    if certify and disabled:
        raise pytest.UsageError(
            "--certify runs every requirement; --disable-requirement is not allowed with it "
            "(a certification with parts turned off would certify nothing)"
        )
    _check_requirement_ids(set(config.getoption("requirement")) | disabled)
    profile = config.getoption("conformance_profile") or ("certify" if certify else "standard")
    if certify and profile != "certify":
        raise pytest.UsageError("--certify uses the 'certify' profile; drop --conformance-profile or set it to certify")
    seed = config.getoption("conformance_seed")
    if seed is None and certify:
        seed = 0  # derandomised: Hypothesis derives every case from the check's name
    if seed is None:
        seed = getattr(config, "workerinput", {}).get("orcakit_seed") or random.randrange(2**32)
    if hasattr(config.option, "hypothesis_seed") and not certify:
        config.option.hypothesis_seed = seed  # Hypothesis' own plugin reads this after us
    report_dir = config.getoption("report_dir")
    if report_dir:
        report_dir = Path(report_dir).resolve()
        report_dir.mkdir(parents=True, exist_ok=True)
        if not getattr(config.option, "xmlpath", None):
            config.option.xmlpath = str(report_dir / "junit.xml")  # pytest's junitxml writes it
    register_profiles()
    from hypothesis import settings

    settings.load_profile(f"orcakit-{profile}")
    from .driver import driver_class

    try:
        driver, reference = driver_class(name)
        fut = driver.open(
            reference,
            config_file=config.getoption("flavor_config"),
            options=config.getoption("flavor_option"),
            run_store_url=config.getoption("conformance_run_store"),
            artifact_store_uri=config.getoption("conformance_artifact_store"),
            timeout=config.getoption("conformance_timeout"),
        )
    except OrcakitError as exc:
        raise pytest.UsageError(f"--flavor={name}: {exc}") from None
    if fut.kind != "native":
        # The other system's own deprecation notices are not the flavor's outcome.
        config.addinivalue_line("filterwarnings", f"ignore::DeprecationWarning:{fut.kind}")
        # Each example is a whole pipeline run in a process of its own (seconds, a container a
        # step for some): shrinking a failure would take longer than the suite. The failing
        # example is still printed, and reproduces with the seed.
        from hypothesis import Phase

        settings.register_profile(f"orcakit-{profile}-{fut.kind}", parent=settings.get_profile(f"orcakit-{profile}"),
                                  phases=[phase for phase in Phase if phase is not Phase.shrink])
        settings.load_profile(f"orcakit-{profile}-{fut.kind}")
    command = _command(config, name, profile, certify)
    state = SuiteState(fut, profile, seed, certify, disabled, set(config.getoption("requirement")), report_dir, command)
    _limit_runs(config, state)
    config.stash[SUITE_STATE] = state
    config.pluginmanager.register(state, "orcakit-conformance-state")
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        config.args[:] = [str(SUITE_DIR)]  # an empty folder: collect the whole suite


def _check_requirement_ids(ids: set[str]) -> None:
    """An ID the catalogue does not have is a usage error, raised before the flavor is opened
    or anything is collected: there is no verdict to report on a selection that does not exist."""
    from orcakit.catalogue import load_catalogue

    known = {requirement.id for requirement in load_catalogue().requirements}
    unknown = ids - known
    if unknown:
        raise pytest.UsageError(f"unknown requirement ID(s) {sorted(unknown)}; the catalogue has "
                                f"{', '.join(sorted(known))} (see SPEC.md)")


def _command(config: pytest.Config, name: str, profile: str, certify: bool) -> list[str]:
    """The command line that reproduces this session's conditions: every option that changes
    what runs or where, with secret values shown as ``********`` (SEC-1; fill them in)."""
    from orcakit.redaction import redact

    command = ["pytest", f"--flavor={name}"]
    if config.getoption("flavor_config"):
        command.append(f"--flavor-config={config.getoption('flavor_config')}")
    for item in config.getoption("flavor_option"):
        key, _, value = item.partition("=")
        command.append(f"--flavor-option={key}={redact(value, key)}")
    command.append("--certify" if certify else f"--conformance-profile={profile}")
    for option, flag in (("conformance_run_store", "--conformance-run-store"),
                         ("conformance_artifact_store", "--conformance-artifact-store")):
        if config.getoption(option):
            command.append(f"{flag}={redact(config.getoption(option))}")
    if config.getoption("conformance_timeout") != DEFAULT_TIMEOUT:
        command.append(f"--conformance-timeout={config.getoption('conformance_timeout'):g}")
    return command


def _limit_runs(config: pytest.Config, state: SuiteState) -> None:
    """A flavor that declares ``max_concurrent_runs`` never gets more runs at once from this
    session, its xdist workers included: they share the controller's slots."""
    limit = state.fut.capabilities.max_concurrent_runs
    if limit is None:
        return
    from .concurrency import RunSlots, limit_runs

    folder = getattr(config, "workerinput", {}).get("orcakit_run_slots")
    state.run_slots = RunSlots(Path(folder), limit) if folder else RunSlots.create(limit)
    limit_runs(state.fut, state.run_slots)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: every worker uses the controller's seed, so a failure reproduces, and the
    controller's run slots, so the workers together respect the flavor's run limit."""
    state = node.config.stash.get(SUITE_STATE, None)
    if state is not None:
        node.workerinput["orcakit_seed"] = state.seed
        if state.run_slots is not None:
            node.workerinput["orcakit_run_slots"] = str(state.run_slots.folder)


class SuiteModule(pytest.Module):
    """A suite module, imported by its package name (never by path: the suite lives inside an
    installed package, and importing it by path would load a second copy under another name)."""

    def _getobj(self):
        return importlib.import_module(f"orcakit.conformance.suite.{self.path.stem}")


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if parent.config.stash.get(SUITE_STATE, None) is None:
        return None
    if file_path.parent == SUITE_DIR and file_path.name.startswith("check_") and file_path.suffix == ".py":
        return SuiteModule.from_parent(parent, path=file_path)
    return None


def requirement_ids(item: pytest.Item) -> list[str]:
    """The IDs a check verifies, in marker order (the first is the one it is principally about)."""
    ids: list[str] = []
    for marker in item.iter_markers("requirement"):
        ids.extend(arg for arg in marker.args if arg not in ids)
    return ids


#: What any check may find broken, whatever it verifies: a run that hangs or never ends (the
#: harness's time limit) breaks CAP-2 and STATUS-2, and every check runs pipelines; the harness
#: counts every step's attempts and executions in every run (RETRY-1, ORDER-2).
ANY_CHECK_MAY_BLAME = frozenset({"CAP-2", "STATUS-2", "RETRY-1", "ORDER-2"})


def _violations(error: BaseException) -> list[BaseException]:
    """The leaves of an exception (Hypothesis reports several distinct bugs as a group)."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _violations(inner)]
    return [error]


#: Modules whose frames are the suite's own: an exception raised there (and not a
#: FlavorViolation) is a bug in the suite or the harness, never the flavor's fault.
SUITE_MODULES = ("orcakit.conformance.suite", "orcakit.conformance.harness", "orcakit.conformance.plugin",
                 "orcakit.conformance.report", "orcakit.conformance.strategies", "orcakit.conformance.driver",
                 "orcakit.conformance.zenml_driver", "orcakit.conformance.cli")
#: Libraries whose frames say nothing about who is at fault: the walk goes on to their caller.
NEUTRAL_MODULES = ("hypothesis", "_hypothesis_pytestplugin", "_pytest", "pytest", "pluggy", "sqlalchemy", "pydantic",
                   "pydantic_core", "jinja2", "yaml", "typing_extensions", "exceptiongroup")


def _module_of(frame) -> str:
    return frame.f_globals.get("__name__", "") or ""


def raised_in_suite(error: BaseException) -> str | None:
    """Where in the suite's own code ``error`` was raised (``"module:line"``), or None when it
    came from the flavor (its orchestrator, or orcakit's runtime acting on what the flavor did).
    The innermost frame that is neither the standard library nor a neutral library decides."""
    import sys
    import traceback

    frames = list(traceback.walk_tb(error.__traceback__))
    for frame, line in reversed(frames):
        module = _module_of(frame)
        top = module.split(".", 1)[0]
        if top in sys.stdlib_module_names or top in NEUTRAL_MODULES or not module:
            continue
        if module.startswith(SUITE_MODULES):
            return f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{line} in {frame.f_code.co_name}"
        return None
    return "an unknown place (no frame of the flavor or the suite in its traceback)" if frames else None


def classify_failure(item: pytest.Item, error: BaseException) -> tuple[list[str], list[str]]:
    """``(blamed, suite_errors)`` of a failed check. Each :class:`FlavorViolation` (all of them
    when Hypothesis found several bugs) blames its requirement. Any other exception raised by
    the flavor's code (it crashed where it had to answer) blames the check's principal
    requirement. An exception raised in the suite's own code — a :class:`HarnessError`, a
    violation citing an ID outside the check's marker, or an unexpected exception such as a
    TypeError over a value the flavor may legitimately return — is a suite error: it proves
    nothing about the flavor, and the check's outcome is *error*."""
    from .harness import FlavorViolation, HarnessError

    marked = requirement_ids(item)
    blamed: list[str] = []
    errors: list[str] = []
    for leaf in _violations(error):
        if isinstance(leaf, HarnessError):
            errors.append(f"harness error: {leaf}")
            continue
        if isinstance(leaf, FlavorViolation):
            requirement = leaf.requirement
            if requirement not in marked and requirement not in ANY_CHECK_MAY_BLAME:
                errors.append(f"suite bug: check {item.name} blamed {requirement}, which its requirement marker "
                              f"{marked} does not list; add it to the marker or raise the right ID")
                continue
        else:
            where = raised_in_suite(leaf)
            if where is not None:
                errors.append(f"suite error (a bug in the orcakit conformance suite, not a verdict on the flavor): "
                              f"{type(leaf).__name__}: {leaf} — raised in {where}; please report it to orcakit")
                continue
            requirement = marked[0]
        if requirement not in blamed:
            blamed.append(requirement)
    return blamed, errors


def blamed_requirements(item: pytest.Item, error: BaseException) -> list[str]:
    """What a failed check proved broken (see :func:`classify_failure`); a suite error raises
    :class:`HarnessError`."""
    from .harness import HarnessError

    blamed, errors = classify_failure(item, error)
    if errors:
        raise HarnessError("; ".join(errors)) from error
    return blamed


def verified_requirements(error: BaseException) -> list[str]:
    """The IDs a failing check had verified (compared and found right) before it stopped: a
    :class:`~orcakit.conformance.harness.Findings` puts them on what it raises."""
    found = set(getattr(error, "verified", ()) or ())
    for leaf in _violations(error):  # Hypothesis may group the failures of several examples
        found.update(getattr(leaf, "verified", ()) or ())
    return sorted(found)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash.get(SUITE_STATE, None)
    if state is None:
        return
    keep, drop = [], []
    for item in items:
        ids = set(requirement_ids(item))
        if state.selected and not ids & state.selected:
            drop.append(item)
            continue
        if ids & state.disabled:
            item.add_marker(pytest.mark.skip(reason=f"disabled: {', '.join(sorted(ids & state.disabled))} turned off by --disable-requirement"))
        keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def fut(request: pytest.FixtureRequest):
    """The flavor under test (:class:`orcakit.conformance.harness.FlavorUnderTest`)."""
    state = request.config.stash.get(SUITE_STATE, None)
    if state is None:
        pytest.skip("not a conformance run (no --flavor)")
    return state.fut


@pytest.fixture(scope="session")
def capabilities(fut):
    """The capability manifest in force for the flavor under test."""
    return fut.capabilities


def unsupported(what: str) -> None:
    """End a check as *unsupported*: the capability it needs is not declared."""
    pytest.skip(f"unsupported: {what}")


def _outcome(report: pytest.TestReport, call: pytest.CallInfo | None) -> str:
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if "disabled:" in reason:
            return "disabled"
        if "unsupported:" in reason:
            return "unsupported"
        return "error" if report.when == "setup" and "not a conformance run" not in reason else "unsupported"
    if report.failed:
        return "failed" if report.when == "call" else "error"
    return "passed"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    state = item.config.stash.get(SUITE_STATE, None)
    if state is None or not isinstance(item, pytest.Function):
        return report
    outcome = _outcome(report, call)
    blamed: list[str] = []
    verified: list[str] = []
    suite_error = None
    if outcome == "failed":
        error = call.excinfo.value
        blamed, errors = classify_failure(item, error)
        verified = [rid for rid in verified_requirements(error) if rid not in blamed]
        if errors:
            outcome = "error"
            suite_error = _clean("\n".join(errors), state.secrets, state.temp_paths)
            report.sections.append(("orcakit suite error", suite_error))
    if report.when == "call":
        # Framework findings never decide the outcome; they travel beside it (a section of the report).
        findings = state.fut.take_framework_findings()
        if findings:
            report.user_properties.append(("orcakit_framework_findings", json.dumps(findings)))
    if report.failed:
        scrub(report, state.secrets, state.temp_paths)
        report.longrepr = _without_hypothesis_advice(str(report.longrepr))
    if report.when == "call" or outcome != "passed":
        ids = requirement_ids(item)
        if outcome != "unsupported":
            # A requirement that does not apply to this flavor (the driver says why) is verified
            # by no check of it: only the check that reports it unsupported names it.
            ids = [rid for rid in ids if rid not in state.not_applicable] or ids
        report.user_properties.append(("orcakit_requirements", ",".join(ids)))
        report.user_properties.append(("orcakit_blamed", ",".join(blamed)))
        report.user_properties.append(("orcakit_verified", ",".join(rid for rid in verified if rid in ids)))
        report.user_properties.append(("orcakit_outcome", outcome))
        if suite_error:
            report.user_properties.append(("orcakit_suite_error", suite_error))
        if outcome in ("failed", "error"):
            reproducer = shlex.join(state.reproducer(item.name.split("[")[0]))
            report.user_properties.append(("orcakit_reproducer", reproducer))
            report.sections.append(("orcakit reproducer", reproducer))
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    """A check that crashed in the suite's own code is counted and shown as an ERROR by the
    terminal (pytest would say FAILED: a failure of the flavor it is not)."""
    if report.when == "call" and report.failed and dict(report.user_properties).get("orcakit_outcome") == "error":
        return "error", "E", "ERROR"
    return None


#: Hypothesis' advice to edit the test function: the flavor author does not own the suite's
#: tests; the orcakit reproducer (the seed and ``-k``) replays the example instead.
_HYPOTHESIS_ADVICE = re.compile(r"^.*(reproduce_failure|@seed\(|--hypothesis-seed|as a decorator on your test).*$\n?",
                                re.M)


def _without_hypothesis_advice(text: str) -> str:
    return _HYPOTHESIS_ADVICE.sub("", text)


#: The values SEC-1 checks plant in pipelines (see check_lifecycle.secret_canary).
CANARY = re.compile(r"orcakit-canary-[0-9a-f]{32}")


def _clean(text: str, secrets: list[str], temp_paths: list[str] = ()) -> str:
    from orcakit.redaction import REDACTED, redact

    text = CANARY.sub(REDACTED, redact(text))
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    for path in temp_paths:
        text = text.replace(path, "<temporary conformance store, deleted after the run>")
    return text


def scrub(report: pytest.TestReport, secrets: list[str], temp_paths: list[str] = ()) -> None:
    """Remove every secret this session knows from a failure's report — its traceback (whose
    frames show arguments: connection strings, configs) and its captured output — before
    pytest prints it or junitxml writes it (SEC-1)."""
    def clean(text: str) -> str:
        return _clean(text, secrets, temp_paths)

    report.longrepr = clean(str(report.longrepr))
    report.sections = [(title, clean(content)) for title, content in report.sections]


_XDIST_NODE_LINE = re.compile(r"^\[gw\d+\] \S+ -- Python \S+ .*$\n?", re.MULTILINE)


def _message(report: pytest.TestReport, suite_error: str | None = None) -> str | None:
    if report.passed:
        return None
    if report.skipped and isinstance(report.longrepr, tuple):
        return report.longrepr[2]
    # (an xdist worker's failure arrives headed by its node, "[gw2] linux -- Python 3.11.7 ...":
    # not part of the message, which must read the same as in a sequential run)
    text = _XDIST_NODE_LINE.sub("", _without_hypothesis_advice(getattr(report, "longreprtext", "") or ""))
    lines = [line for line in text.splitlines() if line.startswith("E ") or "Falsifying example" in line]
    message = ("\n".join(line[2:] if line.startswith("E ") else line for line in lines) or text[-2000:])[:6000]
    return f"{suite_error}\n\n{message}" if suite_error else message


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(SUITE_STATE, None)
    if state is None:
        return
    from .report import build_report, summarize

    report = build_report(state, state.ordered_results(), config)
    tr = terminalreporter
    tr.section("orcakit conformance")
    for line in summarize(report):
        tr.write_line(line)
    failing = [r for r in state.ordered_results() if r["outcome"] in ("failed", "error") and r.get("reproducer")]
    if failing:
        tr.write_line("reproduce a failure with:")
        for result in failing:
            if result["outcome"] == "error":  # the suite's or the environment's fault, not a verdict
                tr.write_line(f"  [error, not a verdict on {','.join(result['requirements'])}] {result['reproducer']}")
            else:
                tr.write_line(f"  [{','.join(result['blamed'] or result['requirements'])}] {result['reproducer']}")
    if state.report_dir is not None:
        config.stash[_REPORT] = report


_REPORT = pytest.StashKey[dict]()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # After junitxml has written junit.xml (its unconfigure/sessionfinish ran), write ours.
    state = config.stash.get(SUITE_STATE, None)
    if state is None or hasattr(config, "workerinput"):
        return
    if state.run_slots is not None:
        import shutil

        shutil.rmtree(state.run_slots.folder, ignore_errors=True)
    xmlpath = getattr(config.option, "xmlpath", None)
    if xmlpath:
        mark_suite_errors_in_junit(Path(xmlpath), state.results)
    if state.report_dir is None:
        return
    from .report import build_report, write_bundle

    report = config.stash.get(_REPORT, None) or build_report(state, state.ordered_results(), config)
    write_bundle(report, state.report_dir)


def mark_suite_errors_in_junit(path: Path, results: list[dict[str, Any]]) -> None:
    """pytest's junitxml writes every call-phase failure as ``<failure>``; a check whose outcome
    is *error* (the suite crashed, the harness failed) becomes ``<error>`` there too, with the
    suite counts to match, so that CI dashboards do not show a suite bug as the flavor's."""
    import xml.etree.ElementTree as ET

    errored = {result["nodeid"].split("::")[-1] for result in results if result["outcome"] == "error" and result["when"] == "call"}
    if not errored or not path.is_file():
        return
    tree = ET.parse(path)
    changed = 0
    for suite in tree.getroot().iter("testsuite"):
        moved = 0
        for case in suite.iter("testcase"):
            failure = case.find("failure")
            if failure is not None and case.get("name") in errored:
                failure.tag = "error"
                failure.set("message", f"orcakit: outcome error, not a verdict on the flavor: {failure.get('message', '')}"[:1000])
                moved += 1
        if moved:
            suite.set("failures", str(int(suite.get("failures", "0")) - moved))
            suite.set("errors", str(int(suite.get("errors", "0")) + moved))
            changed += moved
    if changed:
        tree.write(path, encoding="utf-8", xml_declaration=True)
