"""Growth of the embedded platform's files in live operation, with the run history retention off and on.

Plays simulated days of live operation compressed in time: each day, ``five_minute_job`` runs
window by window (one run per window, as the schedule launches them) in-process against a SQLite
warehouse and an on-disk SQLite instance with the local ``dagster.yaml``. A real day is 288
windows; a run takes seconds here, so a simulated day has ``--windows-per-day`` of them and the
per-day figures are extrapolated: growth per window times 288 (said so in the output).

Scenarios, each on fresh directories:

* ``off``: ``--days`` days, nothing deleted;
* ``on``: ``--days`` days, after each day the runs older than ``--keep`` days are deleted
  (``resources/storage/run_history.py``, the code ``retention_job`` runs);
* ``on_x3``: the same for three times as many days: it ends no larger than ``on`` (steady state).

Reports, as JSON, each scenario's sizes after each day (``$DAGSTER_HOME``, warehouse, lake) and
the growth per window after the first day (without the fixed cost of empty databases) and per
288-window day.

    .venv/bin/python benchmarks/bench_instance_growth.py [--days 2] [--keep 1] [--windows-per-day 12]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402

from crypto_assets.definitions import build_definitions  # noqa: E402
from crypto_assets.partitions import PARTITION_KEY_FORMAT  # noqa: E402
from resources.config.settings import load_settings  # noqa: E402
from resources.storage.run_history import delete_run_history  # noqa: E402

WINDOWS_PER_DAY = 288
W = timedelta(minutes=5)


def size(path: Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def scenario(work: Path, days: int, per_day: int, keep: int | None) -> dict[str, object]:
    """Play ``days`` simulated days of ``per_day`` windows; with ``keep``, delete older runs after each day."""
    home = work / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(ROOT / "deploy" / "local" / "dagster.yaml", home / "dagster.yaml")
    os.environ.update(
        {
            "DAGSTER_HOME": str(home),
            "CRYPTO_HOME": str(work / "crypto"),
            "CRYPTO_DB_URL": f"sqlite:///{work / 'warehouse.sqlite'}",
            "CRYPTO_PARTITION_START": "30d",
            "CRYPTO_SOURCE": "simulated",
        }
    )
    os.environ.pop("CRYPTO_ALERT_WEBHOOK_URL", None)
    job = build_definitions(load_settings()).resolve_job_def("five_minute_job")
    now = datetime.now(UTC).replace(tzinfo=None)
    first = (now - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    day_starts: list[datetime] = []
    sizes: list[dict[str, int]] = []
    run_seconds = 0.0
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for day in range(days):
            day_starts.append(datetime.now(UTC).replace(tzinfo=None))
            for i in range(per_day):
                window = first + (day * per_day + i) * W
                began = time.perf_counter()
                job.execute_in_process(
                    instance=instance, partition_key=window.strftime(PARTITION_KEY_FORMAT), raise_on_error=False
                )
                run_seconds += time.perf_counter() - began
            deleted = 0
            if keep is not None and day + 1 - keep > 0:
                deleted = delete_run_history(instance, day_starts[day + 1 - keep]).runs
            sizes.append(
                {
                    "day": day + 1,
                    "dagster_home": size(home),
                    "warehouse": sum(size(f) for f in work.glob("warehouse.sqlite*")),  # with its WAL
                    "lake": size(work / "crypto" / "lake"),
                    "runs_deleted": deleted,
                }
            )
        runs = len(instance.get_run_records())
    # Growth after the first day (its fixed cost: empty databases, the schedule storage) per window.
    first_day, last_day = sizes[0], sizes[-1]
    grown = (days - 1) * per_day
    per_window = {
        k: (last_day[k] - first_day[k]) / grown if grown else last_day[k] / per_day
        for k in ("dagster_home", "warehouse", "lake")
    }
    windows = days * per_day
    return {
        "days": days,
        "keep_days": keep,
        "runs_kept": runs,
        "seconds_per_run": round(run_seconds / windows, 2),
        "sizes": sizes,
        "per_window_bytes": {k: round(v) for k, v in per_window.items()},
        "per_288_window_day_mb": {k: round(v * WINDOWS_PER_DAY / 1e6, 1) for k, v in per_window.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=2, help="simulated days of the off and on scenarios")
    parser.add_argument("--keep", type=int, default=1, help="simulated days of runs the retention keeps")
    parser.add_argument("--windows-per-day", type=int, default=12, help="windows (runs) a simulated day")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="bench_instance_growth_"))
    try:
        report = {
            "windows_per_day": args.windows_per_day,
            "note": "per-day figures extrapolate the growth per window to 288 windows a day",
            "off": scenario(work / "off", args.days, args.windows_per_day, None),
            "on": scenario(work / "on", args.days, args.windows_per_day, args.keep),
            "on_x3": scenario(work / "on_x3", 3 * args.days, args.windows_per_day, args.keep),
        }
        on, on_x3 = report["on"]["sizes"][-1], report["on_x3"]["sizes"][-1]  # type: ignore[index]
        report["on_x3_vs_on_dagster_home"] = round(on_x3["dagster_home"] / on["dagster_home"], 3)
        print(json.dumps(report, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
