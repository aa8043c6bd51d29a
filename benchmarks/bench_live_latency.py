"""Window close to committed features through the daemon, as a live user sees it.

Starts the platform with ``scripts/start.sh`` (webserver, daemon, code server; queued run
coordinator and run launcher from ``deploy/local/dagster.yaml``) on a fresh SQLite home, leaves it
running ``--minutes``, and reads ``partition_log``: for each window that closed while it ran, the
time from the window's end to the commit of its ``ml_features_materialized`` row (the schedule
ticks a minute after the close, then prices, news, sentiment and features run in one run). Prints
the median and the worst per asset, and how many windows landed. A window whose last commit
came from a gap-healing run (its features recomputed because an earlier window was healed after
it, as at start-up) is counted apart: its latency is that of the recomputation.

    .venv/bin/python benchmarks/bench_live_latency.py [--minutes 60] [--analyze WORK_DIR]
"""

from __future__ import annotations

import argparse
import os
import signal
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

from testkit.fakes.loopback import free_port  # noqa: E402

ASSETS = ("price_data_real", "news_items", "sentiment_data", "ml_features_materialized")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument(
        "--analyze", type=Path, default=None, help="only read the results of an earlier run's directory"
    )
    args = parser.parse_args()
    if args.analyze:
        analyze(args.analyze, *_span(args.analyze))
        return
    work = Path(tempfile.mkdtemp(prefix="bench_live_latency_"))
    db_url = f"sqlite:///{work / 'warehouse.sqlite'}"
    env = {
        **os.environ,
        "CRYPTO_HOME": str(work / "home"),
        "CRYPTO_DB_URL": db_url,
        "CRYPTO_SOURCE": "simulated",
        "CRYPTO_PARTITION_START": "1d",
        "DAGSTER_PORT": str(free_port()),
    }
    env.pop("DAGSTER_HOME", None)
    log = (work / "platform.log").open("w")
    platform = subprocess.Popen(["scripts/start.sh"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    started = datetime.now(UTC).replace(tzinfo=None)
    print(f"platform started (log {work / 'platform.log'}); running {args.minutes:g} min", flush=True)
    try:
        time.sleep(args.minutes * 60)
    finally:
        platform.send_signal(signal.SIGTERM)
        platform.wait(timeout=60)
        log.close()
    ended = datetime.now(UTC).replace(tzinfo=None)
    (work / "span.txt").write_text(f"{started.isoformat()} {ended.isoformat()}")
    analyze(work, started, ended)


def _span(work: Path) -> tuple[datetime, datetime]:
    started, ended = (work / "span.txt").read_text().split()
    return datetime.fromisoformat(started), datetime.fromisoformat(ended)


def analyze(work: Path, started: datetime, ended: datetime) -> None:
    """Print the latencies of the windows that closed while the platform in ``work`` ran."""
    import dagster as dg

    from resources.storage.warehouse import Warehouse
    from testkit.dagster_private import InstanceRef

    warehouse = Warehouse(f"sqlite:///{work / 'warehouse.sqlite'}")
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(work / "home" / "dagster_home"))) as instance:
        trigger = {
            r.dagster_run.run_id: r.dagster_run.tags.get("crypto/trigger", "") for r in instance.get_run_records()
        }
    # Windows that closed at least a minute after the start (the schedule's first tick) and early
    # enough to have been run before the end.
    first = started.replace(second=0, microsecond=0) + timedelta(minutes=5 - started.minute % 5)
    last_end = ended - timedelta(minutes=3)
    print(f"{'asset':<26} {'windows':>7} {'by schedule':>11} {'median':>8} {'worst':>8} {'recomputed':>10}")
    for asset in ASSETS:
        log_rows = warehouse.committed_windows(asset, first, last_end)
        expected = int((last_end - first) / timedelta(minutes=5))
        latencies = [
            (row.committed_at - (row.window_start + timedelta(minutes=5))).total_seconds()
            for row in log_rows.itertuples()
            if trigger.get(row.run_id) == "schedule"
        ]
        recomputed = sum(1 for row in log_rows.itertuples() if trigger.get(row.run_id) != "schedule")
        if latencies:
            print(
                f"{asset:<26} {expected:>7} {len(latencies):>11} {statistics.median(latencies):>7.1f}s "
                f"{max(latencies):>7.1f}s {recomputed:>10}",
                flush=True,
            )
        else:
            print(f"{asset:<26} {expected:>7} {0:>11} {'':>8} {'':>8} {recomputed:>10}", flush=True)


if __name__ == "__main__":
    main()
