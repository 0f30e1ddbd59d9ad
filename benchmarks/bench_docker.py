"""Per-step overhead of the docker flavor against the engine's own floor (issue 4, "Performance").

    python benchmarks/bench_docker.py [--reps 3] [--json OUT] [--no-build]

Measured in one process, on one engine, in interleaved rounds (every configuration once per
round, so load on the machine hits all of them alike; figures are medians):

- **floor**: ``docker run --rm <step image> python3 -c pass`` (the CLI, timed from outside);
- **import floor**: ``docker run --rm <step image> python3 -c "import orcakit.reference.entrypoint"``,
  what any step pays before doing anything (orcakit's runtime imports pydantic and SQLAlchemy);
- **chain N** (N = 1, 5, 10 no-op steps, each taking the previous one's output): wall time of
  ``run_snapshot`` (compile -> run end) on a fresh artifact folder and SQLite run store. The
  per-step cost is the least-squares slope over N; the goal is slope <= 1.3 x floor;
- **fan-out 20**: 20 independent no-op steps at max_parallelism 20 and at the default (8); the
  goal is a wall time well under 20 x one step (chain 1).

Image build figures (before the rounds, unless ``--no-build``): **cold** = empty wheel cache
(a fresh ``ORCAKIT_CACHE``: pip downloads every wheel, orcakit's wheel is built, the parent image
is probed) and no engine layer cache (``nocache``); **code change** = the wheels cached, the
engine's layer cache on, one new code file; **warm** = the same pipeline again (found by its
content hash, nothing built).

The steps are this module's functions (module level, light imports only: the step containers
import this file, and they have orcakit but not the Docker SDK).
"""

from __future__ import annotations

import time

from orcakit import pipeline, step


@step
def noop(previous: int | None = None) -> int:
    """Does nothing: what is left is the orchestration overhead."""
    return 0 if previous is None else previous + 1


@pipeline
def bench(n: int, shape: str = "chain") -> None:
    """``n`` no-op steps: a ``chain`` (each reads the previous output) or ``parallel``."""
    previous = None
    for i in range(n):
        if shape == "chain":
            previous = noop(previous, id=f"s{i}")
        else:
            noop(None, id=f"s{i}")


def main(argv: list[str] | None = None) -> int:
    import argparse
    import datetime as _dt
    import json
    import os
    import platform
    import shutil
    import statistics
    import subprocess
    import tempfile
    from pathlib import Path

    from orcakit import ComponentSpec, StackSpec, load_flavor
    from orcakit.reference import run_snapshot
    from orcakit.reference.flavors.docker.image import ImageBuilder
    from orcakit.reference import RunStore

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="interleaved rounds (medians are reported)")
    parser.add_argument("--json", default=None, help="also write the figures here")
    parser.add_argument("--no-build", action="store_true", help="skip the image build figures")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="orcakit-bench-docker-"))
    os.environ["ORCAKIT_HOME"] = str(scratch / "home")  # never touch ~/.orcakit
    counter = iter(range(10**6))

    def stack(**config) -> StackSpec:
        folder = scratch / f"run{next(counter)}"
        return StackSpec(
            orchestrator=ComponentSpec(flavor="docker", config=config),
            artifact_store=str(folder / "artifacts"),
            run_store=f"sqlite:///{folder / 'db' / 'runs.db'}",
        )

    def timed_run(n: int, shape: str, **config) -> float:
        spec = stack(**config)
        started = time.perf_counter()
        record = run_snapshot(bench.compile(spec, n, shape))
        seconds = time.perf_counter() - started
        completed = [s for s in RunStore(spec.run_store).steps(record.id).values() if s.status.value == "completed"]
        if record.status.value != "completed" or len(completed) != n:
            raise SystemExit(f"benchmark run {shape} {n} ended {record.status.value} ({len(completed)}/{n} steps): {record.reason}")
        return seconds

    def timed_cli(argv: list[str]) -> float:
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started

    def uptime() -> str:  # the load the figures were taken under (the machine is shared)
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()

    results: dict = {
        "when": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "uptime_before": uptime(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }
    docker = load_flavor("docker").create({})
    client = docker.engine()
    results["engine"] = {k: client.version().get(k) for k in ("Version", "ApiVersion")}

    if not args.no_build:
        cache = scratch / "cache"
        marker = scratch / "bench_code_marker.py"
        marker.write_text(f"MARK = {os.urandom(8).hex()!r}\n")
        old_cache = os.environ.get("ORCAKIT_CACHE")
        os.environ["ORCAKIT_CACHE"] = str(cache)
        try:
            spec = stack(code_paths=[str(marker)])
            snapshot = bench.compile(spec, 1)
            builder = ImageBuilder(client, docker.flavor.validate_config({"code_paths": [str(marker)]}), "local")
            builder.no_cache = True
            cold = builder.ensure(snapshot)
            builder.no_cache = False
            warm = builder.ensure(snapshot)
            marker.write_text(f"MARK = {os.urandom(8).hex()!r}\n")
            changed = builder.ensure(snapshot)
        finally:
            if old_cache is None:
                os.environ.pop("ORCAKIT_CACHE", None)
            else:
                os.environ["ORCAKIT_CACHE"] = old_cache
        for image in {cold.tag, changed.tag}:
            client.images.remove(image, force=True)
        results["image_build_s"] = {"cold": round(cold.seconds, 2), "code_change": round(changed.seconds, 2),
                                    "warm": round(warm.seconds, 3)}
        print(f"image build: cold {cold.seconds:.1f}s, code change {changed.seconds:.1f}s, warm {warm.seconds * 1000:.0f}ms")

    image = docker.step_image(bench.compile(stack(), 1)).tag  # the image the steps below run in
    results["image"] = image
    timed_run(1, "chain")  # warm-up: probes cached, image found, page cache warm

    samples: dict[str, list[float]] = {}
    configurations = {
        "floor": lambda: timed_cli(["docker", "run", "--rm", image, "python3", "-c", "pass"]),
        "import_floor": lambda: timed_cli(["docker", "run", "--rm", image, "python3", "-c", "import orcakit.reference.entrypoint"]),
        "chain1": lambda: timed_run(1, "chain"),
        "chain5": lambda: timed_run(5, "chain"),
        "chain10": lambda: timed_run(10, "chain"),
        "fanout20_p20": lambda: timed_run(20, "parallel", max_parallelism=20),
        "fanout20_p8": lambda: timed_run(20, "parallel"),
    }
    for round_ in range(args.reps):
        for name, measure in configurations.items():
            samples.setdefault(name, []).append(measure())
        print(f"round {round_ + 1}/{args.reps}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in samples.items()), flush=True)

    median = {name: statistics.median(values) for name, values in samples.items()}
    ns = [1, 5, 10]
    ys = [median[f"chain{n}"] for n in ns]
    mean_n, mean_y = sum(ns) / len(ns), sum(ys) / len(ys)
    slope = sum((n - mean_n) * (y - mean_y) for n, y in zip(ns, ys)) / sum((n - mean_n) ** 2 for n in ns)
    results.update(
        {
            "reps": args.reps,
            "median_s": {k: round(v, 3) for k, v in median.items()},
            "samples_s": {k: [round(x, 3) for x in v] for k, v in samples.items()},
            "per_step_s": round(slope, 3),
            "fixed_per_run_s": round(mean_y - slope * mean_n, 3),
            "per_step_over_floor": round(slope / median["floor"], 2),
            "per_step_over_import_floor": round(slope / median["import_floor"], 2),
            "fanout20_p20_over_one_step": round(median["fanout20_p20"] / median["chain1"], 2),
            "goal_per_step_over_floor": 1.3,
            "goal_fanout20_over_one_step": 4.0,
            "uptime_after": uptime(),
        }
    )
    print(json.dumps(results, indent=1))
    # issue 17's two docker goals, each a ratio to a floor measured in this run
    for figure, ratio, goal in (
        ("per added step / `docker run --rm <image> python3 -c pass`", results["per_step_over_floor"], 1.3),
        ("fan-out 20 (max_parallelism 20) / one step (chain 1)", results["fanout20_p20_over_one_step"], 4.0),
    ):
        print(f"goal: {figure}: {ratio:.2f}x (goal <= {goal}x): {'met' if ratio <= goal else 'NOT MET'}")
    print(f"load: before [{results['uptime_before']}] after [{results['uptime_after']}]")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
