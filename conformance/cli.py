"""``orcakit certify``: the conformance suite's command, added to the ``orcakit`` command line
from this package through the ``orcakit.commands`` entry-point group (the runtime's CLI never
imports the suite).

    orcakit certify --flavor NAME [--out DIR] [--flavor-option KEY=VALUE ...] [--flavor-config FILE]
                    [--run-store URL] [--artifact-store URI] [--workers N]
    orcakit certify verify DIR

Certifying is ``pytest --flavor=NAME --certify --report-dir=DIR`` in an empty folder, then a
check of the bundle it wrote. Importing this module costs only click: ``orcakit --help`` imports
it to show the short help.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.group(invoke_without_command=True, context_settings={"ignore_unknown_options": True})
@click.option("--flavor", "flavor_name", help="flavor to certify: a registered flavor, 'module:Class' or an orchestrator name")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="certification", show_default=True,
              help="where the certification bundle is written")
@click.option("--flavor-option", "flavor_options", multiple=True, metavar="KEY=VALUE", help="flavor config value (repeatable)")
@click.option("--flavor-config", type=click.Path(dir_okay=False, exists=True), help="flavor config file (YAML or JSON)")
@click.option("--run-store", metavar="URL", help="run store of the conformance runs (default: a fresh SQLite file; "
              "flavors whose steps cannot see this machine's disk need a network one, e.g. postgresql+psycopg://...)")
@click.option("--artifact-store", metavar="URI", help="artifact store of the conformance runs (default: a fresh folder; "
              "s3://bucket/prefix for remote backends)")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="checks run side by side in this many processes (pytest-xdist); default: 4, "
                   "never more than the flavor's max_concurrent_runs")
@click.pass_context
def certify(ctx: click.Context, flavor_name: str | None, out_dir: str, flavor_options: tuple[str, ...], flavor_config: str | None,
            run_store: str | None, artifact_store: str | None, workers: int | None) -> None:
    """Certify a flavor: run the whole conformance suite with --certify and write the bundle
    (report.json, junit.xml, report.html) to --out. `orcakit certify verify DIR` checks a bundle."""
    if ctx.invoked_subcommand is not None:
        return
    if not flavor_name:
        raise click.UsageError("--flavor is required (or use `orcakit certify verify DIR`)")
    import subprocess
    import sys
    import tempfile

    limit = _check_flavor_config(flavor_name, flavor_options, flavor_config)
    out = Path(out_dir).resolve()
    command = [sys.executable, "-m", "pytest", f"--flavor={flavor_name}", "--certify", f"--report-dir={out}", "-p", "no:cacheprovider"]
    workers = _workers(workers, limit)
    if workers > 1:
        # Independent checks side by side (each its own runs and stores); the report is the one a
        # sequential run writes (the plugin orders it; tests/test_suite_concurrency.py).
        command += ["-n", str(workers)]
    # The options as the user wrote them: pytest parses them again, by the same rules.
    command += [f"--flavor-option={option}" for option in flavor_options]
    if flavor_config:
        command.append(f"--flavor-config={Path(flavor_config).resolve()}")
    if run_store:
        command.append(f"--conformance-run-store={run_store}")
    if artifact_store:
        command.append(f"--conformance-artifact-store={artifact_store}")
    with tempfile.TemporaryDirectory(prefix="orcakit-certify-") as empty:
        # An empty folder: the suite is collected from the installed plugin, nothing else.
        code = subprocess.call(command, cwd=empty)
    from .report import verify_bundle

    certifies, problems = verify_bundle(out)
    _print_verification(out, certifies, problems)
    ctx.exit(0 if certifies and code == 0 else 1)


def _workers(asked: int | None, limit: int | None) -> int:
    """How many checks run at once: as asked, else the default for the flavor's run limit;
    1 without pytest-xdist."""
    import importlib.util

    from .concurrency import default_workers

    if importlib.util.find_spec("xdist") is None:
        if asked and asked > 1:
            raise click.UsageError("--workers needs pytest-xdist: pip install 'orcakit[conformance]'")
        return 1
    if asked is not None:
        return asked
    return default_workers(limit)


def _check_flavor_config(flavor_name: str, options: tuple[str, ...], config_file: str | None) -> int | None:
    """Refuse a config the suite would refuse, before a pytest process is started for it: the
    flavor resolved as the plugin resolves it, the options parsed by the same parser
    (:mod:`orcakit.options`), so the message is the one ``pytest --flavor`` would give.
    Returns the flavor's ``max_concurrent_runs`` (None for another driver's flavor: each check's
    session is its own ZenML store and folder, so checks side by side share nothing there)."""
    from orcakit import load_flavor
    from orcakit.options import parse_flavor_config

    from .driver import DRIVERS
    from .plugin import _resolve_reference

    prefix, sep, _ = flavor_name.partition(":")
    if sep and prefix in DRIVERS:
        # Another driver (zenml:...): its config is the other system's, checked by the session
        # itself when it opens; refuse early only what needs no session.
        import importlib.util

        if prefix == "zenml" and importlib.util.find_spec("zenml") is None:
            from orcakit import ConfigurationError

            raise ConfigurationError("--flavor=zenml:... needs ZenML, which is not installed",
                                     fix="pip install 'orcakit[zenml]' (ZenML 0.98, with its local extras)")
        return None

    reference, _ = _resolve_reference(flavor_name)
    flavor = load_flavor(reference)
    parse_flavor_config(flavor, config_file, options)
    return flavor.capabilities.max_concurrent_runs


@certify.command("verify")
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
def certify_verify(directory: str) -> None:
    """Check that a certification bundle is complete and consistent, and whether it certifies."""
    from .report import verify_bundle

    certifies, problems = verify_bundle(Path(directory))
    _print_verification(Path(directory), certifies, problems)
    raise SystemExit(0 if certifies else 1)


def _print_verification(directory: Path, certifies: bool, problems: list[str]) -> None:
    import json

    # click.secho colours on a terminal only, so logs and pipes get the plain words.
    report_path = directory / "report.json"
    if report_path.is_file() and not problems:
        report = json.loads(report_path.read_text())
        flavor = report["flavor"]
        click.echo(f"bundle {directory}: flavor {flavor['name']} {flavor['version']}, spec {report['spec_version']}, "
                   f"profile {report['run']['profile']}, seed {report['run']['seed']}")
        for reason in report["verdict"]["reasons"]:
            click.echo(f"  - {reason}")
    for problem in problems:
        click.secho(f"  problem: {problem}", fg="red")
    click.secho("CERTIFIES" if certifies else "does not certify", fg="green" if certifies else "red", bold=True)
