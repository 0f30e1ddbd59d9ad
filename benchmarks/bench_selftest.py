"""How long the suite's self-test takes: `pytest tests/test_mutants.py` (every mutant under
every seed), timed from outside, with its mutation score.

    python benchmarks/bench_selftest.py [--json OUT]

The goal (issue 8): under 10 minutes on the project's 2-core machine. The figure belongs here,
not in a timed unit test (a busy CI machine must not fail a correct suite).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "tests/test_mutants.py"],
                          cwd=ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - started
    score = re.search(r"orcakit mutation score: (\d+)/(\d+) runs .*", done.stdout)
    figures = {
        "seconds": round(seconds, 1),
        "exit_code": done.returncode,
        "score": score.group(0) if score else None,
        "caught": int(score.group(1)) if score else None,
        "runs": int(score.group(2)) if score else None,
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
