"""Time ``python -m cli.doctor`` against loopback fakes of every source (as a user runs it).

Prints the doctor's table and the wall time of each run (process start, imports, every check).
Usage: ``python benchmarks/bench_doctor.py [--runs 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from testkit.fakes.doctor_fakes import doctor_env, start_fakes  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with ExitStack() as stack, tempfile.TemporaryDirectory() as home:
        fakes = start_fakes(stack, datetime.now(UTC).replace(tzinfo=None))
        env = doctor_env(fakes, Path(home))
        walls = []
        for index in range(args.runs):
            began = time.perf_counter()
            run = subprocess.run(
                [sys.executable, "-m", "cli.doctor"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
            )
            walls.append(time.perf_counter() - began)
            if index == 0:
                print(run.stdout)
                print(run.stderr, file=sys.stderr)
            print(f"run {index + 1}: exit {run.returncode}, wall {walls[-1]:.2f} s")
        print(
            f"doctor wall time: median {statistics.median(walls):.2f} s, min {min(walls):.2f} s, "
            f"max {max(walls):.2f} s over {args.runs} runs"
        )
        print(
            f"requests served over {args.runs} runs: coingecko {len(fakes['cg'].requests)}, "
            f"binance {len(fakes['binance'].requests)}, okx {len(fakes['okx'].requests)}, "
            f"news {len(fakes['news'].requests)}, fred/yahoo {len(fakes['macro'].requests)}"
        )


if __name__ == "__main__":
    main()
