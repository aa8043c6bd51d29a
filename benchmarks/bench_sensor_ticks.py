"""Alert and freshness sensor tick time against the history the instance holds.

Builds history the way a backfill does: ``five_minute_job`` (every 5-minute asset with its
checks) over one day of windows a run, into a SQLite warehouse and an on-disk SQLite instance
(what ``dagster dev`` uses). After 1, 7 and 30 days it times each sensor's ticks as the daemon
would evaluate them (cursor carried from tick to tick):

* ``catch-up``: from no cursor, ticks until the sensor is level with the history (each tick is
  bounded by its budget; the number of ticks and the slowest is printed);
* ``after a day-run``: one more day-run lands (289 new records per check), then one tick;
* ``idle``: a tick with nothing new.

``--baseline REV`` also times the alert sensor of that git revision (the one before incremental
reads: one run lookup per record, 500 records per check) on the same instance, for the ratio.

``--resume DIR`` continues on the work directory of an earlier run (its day-runs are kept).

    .venv/bin/python benchmarks/bench_sensor_ticks.py [--days 1,7,30] [--baseline 98151f5] [--resume DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

_RESUME = sys.argv[sys.argv.index("--resume") + 1] if "--resume" in sys.argv else None
WORK = Path(_RESUME) if _RESUME else Path(tempfile.mkdtemp(prefix="bench_sensor_ticks_"))
os.environ["CRYPTO_HOME"] = str(WORK / "home")
os.environ["CRYPTO_DB_URL"] = f"sqlite:///{WORK / 'warehouse.sqlite'}"
os.environ["CRYPTO_PARTITION_START"] = "45d"
os.environ["CRYPTO_SOURCE"] = "simulated"
os.environ.pop("CRYPTO_ALERT_WEBHOOK_URL", None)  # alerts are logged: the tick's own cost is measured

import dagster as dg  # noqa: E402

from crypto_assets.definitions import defs  # noqa: E402
from crypto_assets.partitions import PARTITION_KEY_FORMAT  # noqa: E402
from resources.dagster_private import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG  # noqa: E402
from sensors.alerts import AlertCursor, ProgressLedger  # noqa: E402

SENSORS = ("check_alert_sensor", "freshness_alert_sensor", "run_failure_alert_sensor", "freshness_checks_sensor")
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def day_run(job: dg.JobDefinition, instance: dg.DagsterInstance, day: datetime) -> float:
    """``five_minute_job`` over the 288 windows of ``day``; its wall time."""
    first, last = day, day + timedelta(minutes=5 * 287)
    started = time.perf_counter()
    job.execute_in_process(
        instance=instance,
        run_config=QUIET,
        raise_on_error=False,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: first.strftime(PARTITION_KEY_FORMAT),
            ASSET_PARTITION_RANGE_END_TAG: last.strftime(PARTITION_KEY_FORMAT),
        },
    )
    return time.perf_counter() - started


def tick(
    sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None
) -> tuple[str | None, float, str]:
    """One evaluation as the daemon makes it (runless events recorded): (cursor, seconds, message)."""
    started = time.perf_counter()
    data = sensor.evaluate_tick(
        dg.build_sensor_context(
            instance=instance, cursor=cursor, definitions=defs, sensor_name=sensor.name, resources=defs.resources
        )
    )
    for event in data.asset_events:
        instance.report_runless_asset_event(event)
    return data.cursor, time.perf_counter() - started, data.skip_message or ""


def catch_up(sensor: dg.SensorDefinition, instance: dg.DagsterInstance) -> tuple[str | None, int, float]:
    """Ticks from no cursor until level: (cursor, ticks, slowest tick)."""
    ProgressLedger(instance, sensor.name).save(AlertCursor())  # forget the ledger's progress too
    cursor, ticks, slowest = None, 0, 0.0
    while True:
        cursor, seconds, message = tick(sensor, instance, cursor)
        ticks, slowest = ticks + 1, max(slowest, seconds)
        if "next tick continues" not in message or ticks >= 100:
            return cursor, ticks, slowest


def load_baseline(revision: str):
    """The alert sensors module of ``revision``, loaded under another name."""
    source = subprocess.run(
        ["git", "show", f"{revision}:sensors/alerts.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    path = WORK / f"alerts_{revision}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"alerts_{revision}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", default="1,7,30", help="history sizes to measure at, in day-runs")
    parser.add_argument("--baseline", default=None, help="git revision of sensors/alerts.py to compare with")
    parser.add_argument("--resume", default=None, help="work directory of an earlier run to continue on")
    args = parser.parse_args()
    sizes = sorted(int(d) for d in args.days.split(","))
    logging.getLogger("dagster").setLevel(logging.ERROR)
    repo = defs.get_repository_def()
    sensors = {name: repo.get_sensor_def(name) for name in SENSORS}
    baseline = load_baseline(args.baseline).check_alert_sensor if args.baseline else None
    job = defs.resolve_job_def("five_minute_job")
    today = datetime.now(UTC).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    first_day = today - timedelta(days=sizes[-1] + 2)
    print(f"work dir {WORK}; {os.cpu_count()} cores")
    (WORK / "dagster_home").mkdir(exist_ok=True)
    with dg.instance_for_test(temp_dir=str(WORK / "dagster_home")) as instance:
        for record in instance.get_run_records():  # a run the earlier process left behind: failed, as
            if not record.dagster_run.is_finished:  # run monitoring would mark it
                instance.report_run_failed(record.dagster_run)
        done, run_seconds = len(instance.get_run_records()), []
        cursors: dict[str, str | None] = {}
        print(
            f"{'days':>5} {'sensor':<26} {'check rows':>10} {'catch-up ticks':>14} {'slowest':>8} "
            f"{'after day-run':>13} {'idle':>7}"
        )
        for size in (s for s in sizes if s > done or not args.resume):
            while done < size:
                run_seconds.append(day_run(job, instance, first_day + timedelta(days=done)))
                done += 1
            rows = _check_rows(instance)
            caught_up = {}
            for name, sensor in sensors.items():
                cursors[name], *caught_up[name] = catch_up(sensor, instance)
            run_seconds.append(day_run(job, instance, first_day + timedelta(days=done)))
            done += 1
            for name, sensor in sensors.items():
                cursors[name], after_run, _ = tick(sensor, instance, cursors[name])
                cursors[name], idle, _ = tick(sensor, instance, cursors[name])
                ticks, slowest = caught_up[name]
                print(
                    f"{size:>5} {name:<26} {rows:>10} {ticks:>14} {slowest:>7.2f}s {after_run:>12.2f}s {idle:>6.2f}s",
                    flush=True,
                )
            if baseline is not None:
                _, old, _ = tick(baseline, instance, None)
                print(
                    f"{size:>5} {'check_alert_sensor@' + args.baseline:<26} {rows:>10} {'1':>14} {old:>7.2f}s "
                    f"(one tick from no cursor; it reads the newest 500 records of each check)",
                    flush=True,
                )
        print(f"day-runs: {len(run_seconds)}, median {sorted(run_seconds)[len(run_seconds) // 2]:.1f} s each")


def _check_rows(instance: dg.DagsterInstance) -> int:
    import sqlalchemy as sa

    from resources.dagster_private import AssetCheckExecutionsTable

    with instance.event_log_storage.index_connection() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(AssetCheckExecutionsTable)).scalar_one()


if __name__ == "__main__":
    main()
