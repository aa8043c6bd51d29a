"""Run history retention: Dagster's finished runs older than a cutoff, with everything they left.

``CRYPTO_RUN_RETENTION_DAYS`` (default: the partition horizon of ``CRYPTO_PARTITION_START``) is
the number of whole UTC days of runs kept before today. For each finished run created before the
cutoff, a page at a time (oldest first):

* ``DagsterInstance.delete_run``: the run and its tags, its events in the event log (and their
  asset event tags), on SQLite and MySQL/Postgres alike;
* its asset check execution rows, which ``delete_run`` leaves behind and no public call deletes
  (``delete_check_executions`` of ``resources/dagster_private.py``);
* its compute logs (``ComputeLogManager.delete_logs``: the run's folder under
  ``$DAGSTER_HOME/storage`` locally; nothing on the chart's no-op manager);
* on SQLite, its per-run event log file, which ``delete_run`` empties but leaves at full size.

Queued and started runs are never deleted, nor anything else of the instance: sensor cursors,
schedule ticks (Dagster's own tick retention), the key-value store (the alert ledgers). A run
creates its partitions' materializations at or before it is created, so with a cutoff at or
before the first partition, no materialization of a partition in the set goes: the UI's partition
status within the horizon stays as it was. A shorter retention is refused
(:class:`RunRetentionError`) unless asked for explicitly: Dagster derives the partition status
from the materialization events, so the windows of deleted runs would show as missing.

On SQLite, the index databases (``history/runs.db``, ``history/runs/index.db``) reuse the pages
freed; they are vacuumed (rewritten smaller) only when at least :data:`VACUUM_FREE_FRACTION` of
them is free, i.e. after a first purge of a long history, not every night.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from resources.config.settings import parse_partition_start, setting_variable
from resources.dagster_private import delete_check_executions, run_shards_dir
from resources.storage.warehouse import to_naive_utc, utc_now

log = logging.getLogger(__name__)

RUN_RETENTION_ENV = setting_variable("run_retention_days")
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
PAGE = 100
VACUUM_FREE_FRACTION = 0.25


class RunRetentionError(ValueError):
    """A run retention that would delete runs of partitions inside the partition horizon."""


def run_history_cutoff(
    partition_start: str, days: int | None, *, now: datetime | None = None, inside_horizon: bool = False
) -> datetime:
    """The creation time before which finished runs go (naive UTC): UTC midnight of today minus
    ``days``, or, with ``days`` None, the first partition of ``partition_start`` (``CRYPTO_PARTITION_START``).

    Raises :class:`RunRetentionError` when that is after the first partition, unless ``inside_horizon``.
    """
    now = to_naive_utc(now or utc_now())
    first = parse_partition_start(partition_start, now)
    if days is None:
        return first
    if days < 1:
        raise RunRetentionError(f"{RUN_RETENTION_ENV}={days}: keep at least 1 day")
    cutoff = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days)
    if cutoff > first and not inside_horizon:
        raise RunRetentionError(
            f"{RUN_RETENTION_ENV}={days} would delete runs of partitions inside the partition horizon "
            f"(CRYPTO_PARTITION_START={partition_start}, first partition {first:%Y-%m-%d %H:%M}): the UI would "
            f"show their windows as missing. Keep runs back to the first partition (leave it unset), or allow "
            f"it explicitly (python -m cli.retention --inside-horizon)"
        )
    return cutoff


@dataclass
class RunHistoryReport:
    """What one pass deleted and what the SQLite instance's files weigh."""

    cutoff: datetime
    runs: int = 0
    check_rows: int = 0
    run_files: int = 0
    vacuumed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "runs_deleted": self.runs,
            "check_rows_deleted": self.check_rows,
            "run_files_deleted": self.run_files,
            "vacuumed": self.vacuumed,
            "seconds": round(self.seconds, 3),
        }


def _remove_run_file(shards: Path, run_id: str) -> int:
    removed = 0
    for suffix in (".db", ".db-wal", ".db-shm"):
        with contextlib.suppress(FileNotFoundError):
            (shards / f"{run_id}{suffix}").unlink()
            removed += suffix == ".db"
    return removed


def _vacuum_if_sparse(path: Path) -> bool:
    """VACUUM the SQLite file at ``path`` when at least VACUUM_FREE_FRACTION of its pages are free."""
    if not path.exists():
        return False
    with contextlib.closing(sqlite3.connect(path, timeout=60, isolation_level=None)) as db:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        if not pages or free / pages < VACUUM_FREE_FRACTION:
            return False
        db.execute("VACUUM")
    return True


def delete_run_history(instance: dg.DagsterInstance, cutoff: datetime, *, page: int = PAGE) -> RunHistoryReport:
    """Delete the finished runs of ``instance`` created before ``cutoff`` (naive UTC), ``page`` at a time."""
    began = time.perf_counter()
    report = RunHistoryReport(cutoff)
    shards = run_shards_dir(instance)
    before = dg.RunsFilter(created_before=cutoff.replace(tzinfo=UTC), statuses=FINISHED)
    while True:
        records = instance.get_run_records(filters=before, limit=page, order_by="create_timestamp", ascending=True)
        run_ids = [record.dagster_run.run_id for record in records]
        if not run_ids:
            break
        report.check_rows += delete_check_executions(instance, run_ids)
        for run_id in run_ids:
            instance.delete_run(run_id)
            instance.compute_log_manager.delete_logs(prefix=[run_id])
            if shards is not None:
                report.run_files += _remove_run_file(shards, run_id)
        report.runs += len(run_ids)
        if len(run_ids) < page:
            break
    if shards is not None and report.runs:
        report.vacuumed = [p.name for p in (shards.parent / "runs.db", shards / "index.db") if _vacuum_if_sparse(p)]
    log.info("run history: deleted %d run(s) created before %s", report.runs, cutoff)
    report.seconds = time.perf_counter() - began
    return report
