"""Maintenance jobs: a daily Parquet backup of yesterday's committed windows, and retention.

* ``backup_job`` / ``backup_schedule`` (00:30 UTC): exports the UTC day that just ended to
  ``CRYPTO_BACKUP_DIR`` (``<dir>/<table>/date=YYYY-MM-DD/part.parquet``, see
  ``resources/storage/parquet_backup.py``); a day exported again replaces its files, so the directory is an
  incremental backup that ``python -m cli.backup restore`` reads back.
* ``retention_job`` / ``retention_schedule`` (02:30 UTC, running by default): deletes windows
  older than ``CRYPTO_RETENTION_DAYS`` with their ``partition_log`` rows, and Dagster's finished
  runs older than ``CRYPTO_RUN_RETENTION_DAYS`` (default: the partition horizon) with their event
  logs, check records and compute logs (``resources/storage/run_history.py``).
* ``lake_maintenance_job`` / ``lake_maintenance_schedule`` (03:30 UTC, running by default):
  compacts the Delta Lake table's days of small 5-minute files and vacuums versions older than
  ``CRYPTO_LAKE_RETENTION_DAYS`` (``resources/storage/lake.py``).

The backup schedule is running by default only when ``CRYPTO_BACKUP_DIR`` is set when the code
location loads (:func:`maintenance_schedules`); the backup and window retention ops also skip,
with a log line, when the ``maintenance`` resource does not have their setting.
"""

from datetime import datetime, timedelta

import dagster as dg

from crypto_assets.jobs import TRIGGER_TAG, run_tags
from resources.config.settings import Settings, setting_variable
from resources.storage.dagster_resources import LakeResource, MaintenanceResource, WarehouseResource
from resources.storage.parquet_backup import export_warehouse
from resources.storage.run_history import delete_run_history, run_history_cutoff
from resources.storage.warehouse import utc_now
from resources.storage.window_retention import RETENTION_ENV, apply_retention

BACKUP_DIR_ENV = setting_variable("backup_dir")


def _day_key(context: dg.OpExecutionContext) -> datetime:
    """The UTC day to back up: the run's ``crypto/backup_day`` tag, or yesterday."""
    tagged = context.run.tags.get("crypto/backup_day")
    if tagged:
        return datetime.fromisoformat(tagged)
    now = utc_now()
    return datetime(now.year, now.month, now.day) - timedelta(days=1)


@dg.op(description="Export one UTC day's committed windows of every table to Parquet under CRYPTO_BACKUP_DIR.")
def export_day(context: dg.OpExecutionContext, warehouse: WarehouseResource, maintenance: MaintenanceResource) -> None:
    """Export the day (the run's ``crypto/backup_day`` tag, or yesterday) to ``CRYPTO_BACKUP_DIR``."""
    directory = maintenance.backup_dir
    if not directory:
        context.log.warning("%s is not set: no backup written", BACKUP_DIR_ENV)
        return
    day = _day_key(context)
    report = export_warehouse(warehouse.get(), directory, start=day, end=day + timedelta(days=1))
    context.log.info("backup of %s: %s", day.date(), report.as_dict())
    context.add_output_metadata(
        {
            "day": day.date().isoformat(),
            "directory": directory,
            "rows": dg.MetadataValue.json(report.rows),
            "windows": dg.MetadataValue.json(report.windows),
            "seconds": round(report.seconds, 3),
        }
    )


@dg.op(description="Delete windows older than CRYPTO_RETENTION_DAYS, with their partition_log rows.")
def apply_retention_op(
    context: dg.OpExecutionContext, warehouse: WarehouseResource, maintenance: MaintenanceResource
) -> None:
    """Apply ``CRYPTO_RETENTION_DAYS`` (nothing happens when it is unset)."""
    days = maintenance.retention_days
    if days is None:
        context.log.info("%s is not set: every window is kept", RETENTION_ENV)
        return
    report = apply_retention(warehouse.get(), days)
    context.log.info("retention (%d days): %s", days, report.as_dict())
    context.add_output_metadata(
        {
            "cutoff": report.cutoff.isoformat(),
            "rows_deleted": dg.MetadataValue.json(report.rows),
            "windows_deleted": dg.MetadataValue.json(report.windows),
            "batches": report.batches,
        }
    )


@dg.op(
    description="Delete Dagster's finished runs older than CRYPTO_RUN_RETENTION_DAYS (default: the partition "
    "horizon), with their event logs, check records and compute logs."
)
def apply_run_retention_op(context: dg.OpExecutionContext, maintenance: MaintenanceResource) -> None:
    """Apply the run history retention to the instance the run belongs to."""
    cutoff = run_history_cutoff(maintenance.partition_start, maintenance.run_retention_days)
    report = delete_run_history(context.instance, cutoff)
    context.log.info("run history retention: %s", report.as_dict())
    context.add_output_metadata({key: dg.MetadataValue.text(str(value)) for key, value in report.as_dict().items()})


@dg.op(
    description="Compact the lake's days of small files (one file a day, in symbol, timestamp order) and vacuum old versions."
)
def maintain_lake(context: dg.OpExecutionContext, warehouse: WarehouseResource, lake: LakeResource) -> None:
    """Compaction, vacuum and log cleanup of the features lake (versions kept CRYPTO_LAKE_RETENTION_DAYS)."""
    report = lake.get().maintain(warehouse.get())
    context.log.info("lake maintenance: %s", report)
    context.add_output_metadata({key: dg.MetadataValue.text(str(value)) for key, value in report.items()})


@dg.job(
    description="Parquet backup of one UTC day's committed windows (yesterday by default).",
    tags=run_tags("maintenance"),
)
def backup_job() -> None:
    export_day()


@dg.job(
    description="Retention: delete windows older than CRYPTO_RETENTION_DAYS and runs older than "
    "CRYPTO_RUN_RETENTION_DAYS.",
    tags=run_tags("maintenance"),
)
def retention_job() -> None:
    apply_retention_op()
    apply_run_retention_op()


@dg.job(description="Nightly compaction and vacuum of the Delta Lake features table.", tags=run_tags("maintenance"))
def lake_maintenance_job() -> None:
    maintain_lake()


def _status(enabled: object) -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus.RUNNING if enabled else dg.DefaultScheduleStatus.STOPPED


def maintenance_schedules(settings: Settings) -> list[dg.ScheduleDefinition]:
    """The backup schedule (running by default where ``settings`` has a backup directory) and the
    retention schedule (always running: the run history retention has a default)."""
    return [
        dg.ScheduleDefinition(
            name="backup_schedule",
            job=backup_job,
            cron_schedule="30 0 * * *",
            execution_timezone="UTC",
            tags={TRIGGER_TAG: "schedule"},
            default_status=_status(settings.backup_dir),
            description="00:30 UTC: back up the UTC day that just ended to CRYPTO_BACKUP_DIR.",
        ),
        dg.ScheduleDefinition(
            name="retention_schedule",
            job=retention_job,
            cron_schedule="30 2 * * *",
            execution_timezone="UTC",
            tags={TRIGGER_TAG: "schedule"},
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description="02:30 UTC: delete windows older than CRYPTO_RETENTION_DAYS and Dagster's runs older "
            "than CRYPTO_RUN_RETENTION_DAYS.",
        ),
    ]


lake_maintenance_schedule = dg.ScheduleDefinition(
    name="lake_maintenance_schedule",
    job=lake_maintenance_job,
    cron_schedule="30 3 * * *",
    execution_timezone="UTC",
    tags={TRIGGER_TAG: "schedule"},
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="03:30 UTC: compact the lake's small files and vacuum versions older than CRYPTO_LAKE_RETENTION_DAYS.",
)
