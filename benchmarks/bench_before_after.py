"""The fork launcher's CPU per added step, an earlier revision of orcakit against this tree, in
the same run (alternating), so that both see the same load.

    python benchmarks/bench_before_after.py [--before REV] [--reps 4]

Each side is laid out as an importable ``orcakit`` package (``spec/`` as ``orcakit``,
``reference/`` as ``orcakit.reference``; the earlier one from ``git archive REV``) in a temporary
folder put first on ``PYTHONPATH``, which the client, its fork server and every step inherit.
Each round runs ``pipelines_noop.py`` with chains of 1 and 50 no-op steps (fork launcher, fresh
stores) on both sides; the figure is the slope of the whole process tree's CPU time
(``RUSAGE_CHILDREN``) between them, medians over the rounds.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCRIPT = HERE / "pipelines_noop.py"


def lay_out(into: Path, source: Path) -> Path:
    package = into / "orcakit"
    shutil.copytree(source / "spec", package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(source / "reference", package / "reference", ignore=shutil.ignore_patterns("__pycache__"))
    return into


def from_git(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "spec", "reference"], capture_output=True, check=True).stdout
    tree = into / "tree"
    tarfile.open(fileobj=io.BytesIO(archive)).extractall(tree)
    return lay_out(into / "pkg", tree)


def run(pkg: Path, n: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="orcakit-ab-") as home:
        env = {**os.environ, "PYTHONPATH": str(pkg), "ORCAKIT_HOME": home}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, str(SCRIPT), "--n", str(n), "--home", home], env=env, cwd=home,
                              capture_output=True, text=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0 or json.loads(proc.stdout.strip().splitlines()[-1])["steps_completed"] != n:
            raise SystemExit(f"{pkg} n={n} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="626640a", help="git revision to compare with (default: before issue 17)")
    parser.add_argument("--reps", type=int, default=4)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="orcakit-ab-") as tmp:
        sides = {f"before ({args.before})": from_git(args.before, Path(tmp) / "before"),
                 "this tree": lay_out(Path(tmp) / "after", ROOT)}
        for pkg in sides.values():
            run(pkg, 2)  # byte code and page cache warm
        uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        samples: dict[tuple[str, int], list[tuple[float, float]]] = {}
        for _ in range(args.reps):
            for side, pkg in sides.items():
                for n in (1, 50):
                    samples.setdefault((side, n), []).append(run(pkg, n))
        uptime_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"before: {uptime_before}\nafter:  {uptime_after}")
    for side in sides:
        cpu = {n: statistics.median(s[0] for s in samples[(side, n)]) for n in (1, 50)}
        wall = {n: statistics.median(s[1] for s in samples[(side, n)]) for n in (1, 50)}
        print(f"{side:22} CPU per added step {(cpu[50] - cpu[1]) / 49 * 1e3:5.1f} ms; chain of 50: "
              f"{cpu[50]:.2f} CPU-s, {wall[50]:.2f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
