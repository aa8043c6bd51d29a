"""One window materialized through the CLI, whole process, as a user runs it.

``dagster asset materialize -m crypto_assets.definitions --select <asset> --partition <key>``
(the implicit asset job, which runs in process like every job of the platform), timed from the
command's start to its exit, ``--repeat`` times on a fresh SQLite warehouse and instance. For the
ratio, the same window materialized inside an already started Python process (no interpreter
start, no imports) is timed in the same run: what is left is the process start. ``--baseline REV``
also times the CLI on a checkout of that git revision (a temporary worktree), e.g. the one before
the implicit asset job ran in process (a subprocess per step).

    .venv/bin/python benchmarks/bench_cli_window.py [--select price_data_real] [--repeat 3] [--baseline REV]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--select", default="price_data_real")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", default=None, help="git revision to time the CLI at as well")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_cli_window_"))
    (work / "dagster_home").mkdir()
    shutil.copy(ROOT / "deploy" / "local" / "dagster.yaml", work / "dagster_home" / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(work / "dagster_home"),
        "CRYPTO_HOME": str(work / "home"),
        "CRYPTO_DB_URL": f"sqlite:///{work / 'warehouse.sqlite'}",
        "CRYPTO_SOURCE": "simulated",
    }
    os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "CRYPTO_HOME", "CRYPTO_DB_URL", "CRYPTO_SOURCE")})
    now = datetime.now(UTC)
    windows = [(now - timedelta(hours=2 + i)).replace(minute=0, second=0, microsecond=0) for i in range(args.repeat)]
    cli = time_cli(ROOT, env, args.select, windows, "")
    if args.baseline:
        checkout = work / "baseline"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(checkout), args.baseline],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            base = time_cli(checkout, env, args.select, [w - timedelta(hours=6) for w in windows], f"@{args.baseline}")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(checkout)], cwd=ROOT, check=True)

    import dagster as dg

    from crypto_assets.definitions import defs

    job = defs.resolve_implicit_global_asset_job_def()
    in_process = []
    with dg.DagsterInstance.get() as instance:
        for window in windows:
            key = (window - timedelta(hours=12)).strftime("%Y-%m-%d-%H:%M")
            started = time.perf_counter()
            job.execute_in_process(instance=instance, partition_key=key, asset_selection=[dg.AssetKey(args.select)])
            in_process.append(time.perf_counter() - started)
    cli_median, floor = statistics.median(cli), statistics.median(in_process)
    print(f"whole process, median of {len(cli)}: {cli_median:.2f} s (slowest {max(cli):.2f} s)")
    print(f"same window inside a started process, median: {floor:.2f} s")
    print(f"ratio CLI / in-process: {cli_median / floor:.1f}x; process start and imports: {cli_median - floor:.2f} s")
    if args.baseline:
        print(
            f"CLI at {args.baseline}, median: {statistics.median(base):.2f} s; ratio to now: "
            f"{statistics.median(base) / cli_median:.1f}x"
        )


def time_cli(checkout: Path, env: dict[str, str], select: str, windows: list[datetime], label: str) -> list[float]:
    """Whole-process times of ``dagster asset materialize`` run in ``checkout``, one window each."""
    dagster = str(Path(sys.executable).with_name("dagster"))
    times = []
    for window in windows:
        key = window.strftime("%Y-%m-%d-%H:%M")
        started = time.perf_counter()
        subprocess.run(
            [
                dagster,
                "asset",
                "materialize",
                "-m",
                "crypto_assets.definitions",
                "--select",
                select,
                "--partition",
                key,
            ],
            cwd=checkout,
            env=env,
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - started)
        print(f"CLI{label} {select} {key}: {times[-1]:.2f} s", flush=True)
    return times


if __name__ == "__main__":
    main()
