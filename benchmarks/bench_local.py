"""Per-step overhead of the local flavor (issue 2, "Performance").

    python benchmarks/bench_local.py [--quick] [--json OUT] [--reps 5] [--bytecode warm|cold]

For launcher in (fork, exec), shape in (chain, fanout) and N in (1, 10, 50, 500) no-op steps,
each in its own process, this times a fresh interpreter running ``benchmarks/pipelines_noop.py``
(import orcakit, compile, run on a fresh ORCAKIT_HOME with a fresh SQLite run store) from the
outside (``time.perf_counter`` around ``subprocess.run``), and reads the in-process time
(compile -> run end) the script prints. Repetitions are interleaved (every configuration once per
round) so drift on the machine hits all of them alike; figures are medians. The per-added-step
overhead is the slope of a least-squares fit of time against N, per launcher and shape.

Also measured: the floor (``python -c pass`` and ``python -c "import
orcakit.reference.entrypoint"``) and 50 steps that each sleep 0.2 s at max_parallelism 8.

``--bytecode warm`` (the default) lets the measured processes use a byte-code cache in
``$TMPDIR/orcakit-bench-pycache`` (``PYTHONPYCACHEPREFIX``), as any pip-installed package has;
``cold`` keeps the caller's environment, so with ``PYTHONDONTWRITEBYTECODE=1`` and a venv installed
without ``--compile-bytecode`` every process compiles every module from source. Both floors are
always measured.

``--quick`` drops N=500 (both launchers). The full run takes ~40 min on 2 cores, mostly exec at
N=500.

``--variant "NAME=python:/path/to/venv/bin/python config:key=value"`` (repeatable) runs the same
script with another interpreter (e.g. a venv with a patched copy of orcakit) or more local-flavor
config (e.g. ``config:fork_server=client``), interleaved with the runtime as it is ("as-is"), in
the same rounds. (The emulated experiments of issue 2's profiling are in the runtime now.)
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "pipelines_noop.py"
PYCACHE = Path(tempfile.gettempdir()) / "orcakit-bench-pycache"
AS_IS = "as-is"
GOAL_PER_STEP_S = 0.010
GOAL_CHAIN50_S = 1.5
GOAL_SLEEP_FANOUT_S = 2.0
# Issue 2's reference figures, measured by the issue's author on this machine (not re-measured
# here: zenml and dagster are not installed).
REFERENCE = {
    "ZenML 0.98 local orchestrator (in-process steps)": {"per_step_s": 0.070, "chain50_wall_s": 7.3},
    "Dagster per-step-process executor": {"per_step_s": 1.2, "chain50_wall_s": None},
}


def child_env(bytecode: str, home: str | None = None, experiment: str = "") -> dict[str, str]:
    env = dict(os.environ)
    for name in ("ORCAKIT_BENCH_EXPERIMENT", "ORCAKIT_BENCH_TRACE", "ORCAKIT_BENCH_CPROFILE"):
        env.pop(name, None)
    if bytecode == "warm":
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    if home is not None:
        env["ORCAKIT_HOME"] = home
    if experiment:
        env["PYTHONPATH"] = os.pathsep.join([str(HERE / "profiling"), *filter(None, [env.get("PYTHONPATH")])])
        env["ORCAKIT_BENCH_EXPERIMENT"] = experiment
    return env


def timed(argv: list[str], env: dict[str, str], cwd: str, timeout: float = 3600) -> tuple[float, float, subprocess.CompletedProcess]:
    """``(wall seconds, CPU seconds, process)``. The CPU time (user + system) is that of the
    whole process tree: every process of the run is waited for by its parent (client -> fork
    server -> steps), so RUSAGE_CHILDREN counts them all. Unlike wall time, it hardly moves
    when other work shares the machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc


def floor(code: str, bytecode: str, reps: int) -> dict:
    samples = []
    with tempfile.TemporaryDirectory(prefix="orcakit-bench-") as tmp:
        env = child_env(bytecode, tmp)
        timed([sys.executable, "-c", code], env, tmp)  # warm the page cache (and the pyc cache)
        cpus = []
        for _ in range(reps):
            wall, cpu, proc = timed([sys.executable, "-c", code], env, tmp)
            if proc.returncode != 0:
                raise SystemExit(f"floor {code!r} failed:\n{proc.stderr}")
            samples.append(wall)
            cpus.append(cpu)
    return {"code": code, "bytecode": bytecode, "samples_s": samples, "median_s": statistics.median(samples),
            "min_s": min(samples), "cpu_median_s": statistics.median(cpus)}


def parse_variant(spec: str) -> tuple[str, str, list[str]]:
    """``"python:PATH config:k=v launchers:fork exp1,exp2"`` -> (interpreter, experiments,
    config items); ``launchers:`` is read by :func:`variant_launchers`."""
    python, experiments, config = sys.executable, "", []
    for token in spec.split():
        if token.startswith("python:"):
            python = token.removeprefix("python:")
        elif token.startswith("config:"):
            config.append(token.removeprefix("config:"))
        elif not token.startswith("launchers:"):
            experiments = token
    return python, experiments, config


def variant_launchers(spec: str, default: list[str]) -> list[str]:
    for token in spec.split():
        if token.startswith("launchers:"):
            return token.removeprefix("launchers:").split(",")
    return default


def run_once(shape: str, n: int, launcher: str, bytecode: str, *, sleep: float = 0.0, max_parallelism: int = 8, variant: str = "") -> dict:
    """One fresh process, one run; raises if the run did not complete every step."""
    python, experiment, config = parse_variant(variant)
    with tempfile.TemporaryDirectory(prefix="orcakit-bench-") as home:
        argv = [
            python, str(SCRIPT), "--shape", shape, "--n", str(n), "--launcher", launcher,
            "--home", home, "--sleep", str(sleep), "--max-parallelism", str(max_parallelism),
            *(f"--config={item}" for item in config),
        ]
        wall, cpu, proc = timed(argv, child_env(bytecode, home, experiment), home)
        if proc.returncode != 0:
            raise SystemExit(f"{shape} N={n} launcher={launcher} {variant} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        inner = json.loads(proc.stdout.strip().splitlines()[-1])
        if inner["steps_completed"] != n:
            raise SystemExit(f"{shape} N={n} launcher={launcher}: only {inner['steps_completed']} steps completed")
        return {"wall_s": wall, "cpu_s": cpu, **inner}


def fit(points: list[tuple[int, float]]) -> dict:
    """Least-squares line time = intercept + slope * N."""
    xs = [p[0] for p in points]
    if len(set(xs)) < 2:
        return {"slope_s": None, "intercept_s": None}
    mx, my = statistics.fmean(xs), statistics.fmean(p[1] for p in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)
    return {"slope_s": slope, "intercept_s": my - slope * mx}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="local flavor per-step overhead benchmark (issue 2)")
    parser.add_argument("--quick", action="store_true", help="skip N=500 (both launchers)")
    parser.add_argument("--json", dest="json_out", help="write the raw samples and results here")
    parser.add_argument("--reps", type=int, default=5, help="repetitions per configuration (median reported)")
    parser.add_argument("--reps-large", type=int, default=3, help="repetitions for N >= 500")
    parser.add_argument("--bytecode", choices=["warm", "cold"], default="warm")
    parser.add_argument("--launchers", default="fork,exec")
    parser.add_argument("--shapes", default="chain,fanout")
    parser.add_argument("--ns", default=None, help="comma-separated N values (default 1,10,50,500)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=SPEC",
                        help="also run with emulated runtime changes (see profiling/sitecustomize.py)")
    parser.add_argument("--variant-launchers", default="fork", help="launchers the variants run with")
    parser.add_argument("--no-as-is", action="store_true", help="only the variants")
    parser.add_argument("--no-floor", action="store_true", help="skip the start-up floor")
    parser.add_argument("--no-sleep", action="store_true", help="skip the 50 x 0.2 s sleep fan-out")
    parser.add_argument("--markdown", help="also write the tables as Markdown here (for benchmarks/README.md)")
    parser.add_argument("--from-json", help="do not measure: report the results in this JSON file")
    args = parser.parse_args(argv)
    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
        report(result)
        if args.markdown:
            Path(args.markdown).write_text(markdown(result))
        return 0

    ns = [int(x) for x in args.ns.split(",")] if args.ns else [1, 10, 50, 500]
    if args.quick:
        ns = [n for n in ns if n < 500]
    launchers = args.launchers.split(",")
    shapes = args.shapes.split(",")
    variants = {} if args.no_as_is else {AS_IS: ""}
    for spec in args.variant:
        name, _, experiment = spec.partition("=")
        variants[name] = experiment
    variant_launchers_ = {
        v: launchers if v == AS_IS else [l for l in variant_launchers(spec, args.variant_launchers.split(",")) if l in launchers]
        for v, spec in variants.items()
    }
    configs = [(v, launcher, shape, n) for v in variants for launcher in variant_launchers_[v] for shape in shapes for n in ns]

    print(f"warming up ({args.bytecode} byte code) ...", file=sys.stderr)
    for v, experiment in variants.items():
        for launcher in variant_launchers_[v]:
            run_once("chain", 2, launcher, args.bytecode, variant=experiment)

    load_before = os.getloadavg()
    runtime_before = _runtime_state()
    floors = {} if args.no_floor else {
        f"{name} ({mode} byte code)": floor(code, mode, args.reps)
        for mode in ("warm", "cold")
        for name, code in (("python -c pass", "pass"), ("python -c 'import orcakit.reference.entrypoint'", "import orcakit.reference.entrypoint"))
    }

    samples: dict[tuple, list[dict]] = {config: [] for config in configs}
    started = time.perf_counter()
    for rep in range(max(args.reps, args.reps_large if any(n >= 500 for n in ns) else 0)):
        for config in configs:
            variant, launcher, shape, n = config
            if rep >= (args.reps_large if n >= 500 else args.reps):
                continue
            sample = run_once(shape, n, launcher, args.bytecode, variant=variants[variant])
            samples[config].append(sample)
            print(
                f"[{time.perf_counter() - started:7.1f}s] round {rep + 1}: {variant:10} {launcher:4} {shape:6} N={n:<4} "
                f"wall {sample['wall_s']:.3f}s in-process {sample['run_s']:.3f}s",
                file=sys.stderr,
            )

    rows = []
    for config in configs:
        variant, launcher, shape, n = config
        runs = samples[config]
        rows.append(
            {
                "variant": variant, "experiment": variants[variant] or None, "launcher": launcher, "shape": shape,
                "n": n, "reps": len(runs),
                "wall_s": statistics.median(r["wall_s"] for r in runs),
                "run_s": statistics.median(r["run_s"] for r in runs),
                "cpu_s": statistics.median(r["cpu_s"] for r in runs),
                "wall_min_s": min(r["wall_s"] for r in runs),
                "import_s": statistics.median(r["import_s"] for r in runs),
                "samples": runs,
            }
        )
    slopes = []
    for variant in variants:
        for launcher in variant_launchers_[variant]:
            for shape in shapes:
                mine = [r for r in rows if (r["variant"], r["launcher"], r["shape"]) == (variant, launcher, shape)]
                slopes.append(
                    {
                        "variant": variant, "launcher": launcher, "shape": shape, "ns": [r["n"] for r in mine],
                        "wall": fit([(r["n"], r["wall_s"]) for r in mine]),
                        "run": fit([(r["n"], r["run_s"]) for r in mine]),
                        "cpu": fit([(r["n"], r["cpu_s"]) for r in mine]),
                        "wall_min": fit([(r["n"], r["wall_min_s"]) for r in mine]),
                    }
                )

    sleepers = {}
    if not args.no_sleep:
        print("sleep fan-out: 50 steps x 0.2 s, max_parallelism 8 ...", file=sys.stderr)
        sleep_configs = [(v, l, s) for v in variants for l in variant_launchers_[v] for s in ("fanout", "parallel")]
        sleep_samples: dict[tuple, list[dict]] = {c: [] for c in sleep_configs}
        for _ in range(args.reps):
            for config in sleep_configs:
                variant, launcher, shape = config
                sleep_samples[config].append(run_once(shape, 50, launcher, args.bytecode, sleep=0.2, variant=variants[variant]))
        for (variant, launcher, shape), runs in sleep_samples.items():
            sleepers[f"{variant}/{launcher}/{shape}"] = {
                "variant": variant, "launcher": launcher, "shape": shape,
                "wall_s": statistics.median(r["wall_s"] for r in runs),
                "run_s": statistics.median(r["run_s"] for r in runs),
                "wall_min_s": min(r["wall_s"] for r in runs),
                "run_min_s": min(r["run_s"] for r in runs),
                # critical path: (fanout) the root, then ceil(49/8) waves; (parallel) ceil(50/8) waves
                "ideal_s": 0.2 * (1 + -(-49 // 8)) if shape == "fanout" else 0.2 * -(-50 // 8),
                "samples": runs,
            }

    goals = {}
    for s in slopes:
        goals[f"{s['variant']} {s['launcher']}/{s['shape']}: <= 10 ms per added step (whole process)"] = (
            s["wall"]["slope_s"] is not None and s["wall"]["slope_s"] <= GOAL_PER_STEP_S
        )
    for r in rows:
        if r["shape"] == "chain" and r["n"] == 50:
            goals[f"{r['variant']} {r['launcher']}: 50-step chain < 1.5 s whole process"] = r["wall_s"] < GOAL_CHAIN50_S
    for key, v in sleepers.items():
        goals[f"{key}: 50 x 0.2 s sleep < 2 s in-process"] = v["run_s"] < GOAL_SLEEP_FANOUT_S
        goals[f"{key}: 50 x 0.2 s sleep < 2 s whole process"] = v["wall_s"] < GOAL_SLEEP_FANOUT_S

    result = {
        "machine": {
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu": _cpu_model(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "bytecode": args.bytecode,
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "reps": args.reps,
            "reps_large": args.reps_large,
            "runtime_before": runtime_before,
            "runtime_after": _runtime_state(),
            "variant_runtimes": {v: _runtime_state(Path(parse_variant(spec)[0]).parents[2]) for v, spec in variants.items() if "python:" in spec},
        },
        "variants": variants,
        "floors": floors,
        "rows": rows,
        "slopes": slopes,
        "sleep_fanout": sleepers,
        "goals": goals,
        "reference": REFERENCE,
    }
    report(result)
    if args.markdown:
        Path(args.markdown).write_text(markdown(result))
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json_out}", file=sys.stderr)
    return 0


def _runtime_state(root: Path = HERE.parent) -> dict:
    """Which orcakit was measured: the commit, and a hash of uncommitted changes to it
    (``root``: the checkout; for a ``python:`` variant, the folder holding its ``.venv``)."""
    import hashlib

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30).stdout
        except OSError:
            return ""

    diff = git("diff", "HEAD", "--", "spec", "reference")
    return {
        "commit": git("rev-parse", "HEAD").strip() or None,
        "uncommitted_runtime_diff_sha256": hashlib.sha256(diff.encode()).hexdigest()[:16] if diff else None,
        "uncommitted_files": [line[3:] for line in git("status", "--porcelain", "--", "spec", "reference").splitlines()],
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f} ms"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def report(result: dict) -> None:
    tables = _tables(result)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        for title, header, body in tables:
            print(f"\n{title}\n" + " | ".join(header))
            for line in body:
                print(" | ".join(line))
        return
    console = Console()
    for title, header, body in tables:
        if not body:
            continue
        table = Table(title=title)
        for column in header:
            table.add_column(column)
        for line in body:
            table.add_row(*line)
        console.print(table)


def markdown(result: dict) -> str:
    out = []
    for title, header, body in _tables(result):
        if not body:
            continue
        out += [f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(line) + " |" for line in body]
        out.append("")
    return "\n".join(out)


def _tables(result: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    m = result["machine"]
    variants = ", ".join(f"{k}" + (f" = {v}" if v else "") for k, v in result["variants"].items())
    tables = [
        (
            f"local flavor: {m['nproc']} cores, Python {m['python']}, {m['bytecode']} byte code, {m['date']}; variants: {variants}",
            ["variant", "launcher", "shape", "N", "reps", "whole process", "in-process", "CPU (tree)", "whole (min)"],
            [[r["variant"], r["launcher"], r["shape"], str(r["n"]), str(r["reps"]), _s(r["wall_s"]), _s(r["run_s"]),
              _s(r["cpu_s"]), _s(r["wall_min_s"])] for r in result["rows"]],
        ),
        (
            "per added step (least-squares slope over N)",
            ["variant", "launcher", "shape", "N values", "whole process", "in-process", "CPU (tree)", "whole (min)", "intercept (whole)"],
            [
                [s["variant"], s["launcher"], s["shape"], ",".join(map(str, s["ns"])), _ms(s["wall"]["slope_s"]),
                 _ms(s["run"]["slope_s"]), _ms(s["cpu"]["slope_s"]), _ms(s["wall_min"]["slope_s"]), _s(s["wall"]["intercept_s"])]
                for s in result["slopes"]
            ],
        ),
        ("floor", ["command", "median", "min", "CPU"], [[name, _s(f["median_s"]), _s(f["min_s"]), _s(f["cpu_median_s"])] for name, f in result["floors"].items()]),
        (
            "50 steps x sleep 0.2 s, max_parallelism 8",
            ["variant/launcher/shape", "ideal", "whole process", "in-process", "whole (min)", "in-process (min)"],
            [[k, _s(v["ideal_s"]), _s(v["wall_s"]), _s(v["run_s"]), _s(v["wall_min_s"]), _s(v["run_min_s"])] for k, v in result["sleep_fanout"].items()],
        ),
        ("goals", ["goal", "met"], [[k, "yes" if v else "NO"] for k, v in result["goals"].items()]),
    ]
    return tables


if __name__ == "__main__":
    sys.exit(main())
