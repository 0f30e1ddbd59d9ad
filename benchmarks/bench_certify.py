"""How long a certification takes: ``orcakit certify --flavor NAME`` side by side (the default
workers) and one check at a time (``--workers 1``), timed in the same run, with the load.

    python benchmarks/bench_certify.py [--flavor local] [--flavor docker] [--sequential]

Goals on the project's 2-core machine: local <= 45 s, docker <= 2 min (issue 17); zenml:local
< 5 min, zenml:local_docker < 12 min (issue 16; they need the zenml extra, and local_docker the
step image of scripts/testenv/ensure-zenml-image.sh). Each line
prints the wall time, the verdict, and the 1-minute load average before and after (figures
taken while other jobs share the machine are upper bounds). ``docker`` needs the engine and
the parent image (scripts/testenv/ensure-docker.sh, ensure-base-image.sh).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

GOALS = {"local": 45.0, "docker": 120.0, "zenml:local": 300.0, "zenml:local_docker": 720.0}


def certify(flavor: str, workers: int | None) -> tuple[float, str]:
    out = Path(tempfile.mkdtemp(prefix="bench-certify-"))
    script = Path(sys.executable).with_name("orcakit")  # this environment's command
    command = [str(script) if script.exists() else "orcakit", "certify", f"--flavor={flavor}", f"--out={out / 'bundle'}"]
    if workers is not None:
        command.append(f"--workers={workers}")
    env = {**os.environ, "ORCAKIT_HOME": str(out / "home")}
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=out)
    seconds = time.monotonic() - started
    verdict = "CERTIFIES" if done.returncode == 0 else "does not certify"
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-2000:])
    shutil.rmtree(out, ignore_errors=True)
    return seconds, verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flavor", action="append", default=None, help="local (default), docker, zenml:local, zenml:local_docker (repeatable)")
    parser.add_argument("--sequential", action="store_true", help="also time --workers 1, for the ratio")
    args = parser.parse_args()
    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores")
    for flavor in args.flavor or ["local"]:
        for workers in ([None, 1] if args.sequential else [None]):
            before = os.getloadavg()[0]
            seconds, verdict = certify(flavor, workers)
            after = os.getloadavg()[0]
            label = "default workers" if workers is None else f"--workers {workers}"
            goal = GOALS.get(flavor)
            mark = "" if goal is None or workers is not None else (" (goal met)" if seconds <= goal else f" (goal {goal:.0f} s NOT met)")
            print(f"orcakit certify --flavor {flavor} [{label}]: {seconds:.1f} s -> {verdict}{mark}; "
                  f"load {before:.1f} -> {after:.1f}", flush=True)


if __name__ == "__main__":
    main()
