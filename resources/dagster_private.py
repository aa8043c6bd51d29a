"""Every private Dagster name and storage method the platform's code uses, here and only here.

``dagster._*`` modules are not Dagster's public API: any release may move or change them. Nor are
the storages behind ``DagsterInstance.event_log_storage`` and ``run_storage``, whose methods carry
no ``@public``: the functions below are the platform's only calls into them. So the Dagster family
is pinned to one exact release in pyproject.toml (``dagster==1.13.27``), the assets and sensors
import these names from this module, and an upgrade checks this one file (the tests that exercise
each name: ``tests/unit/test_private_apis.py``, ``test_alerts.py``, ``test_gaps.py``, ``test_jobs.py``,
``test_migrate.py``). Names Dagster exports publicly (``dg.partition_loading_context``,
``dg.deserialize_value``) are used from ``dagster`` instead. The tests' and benchmarks' own private
names are in ``testkit/dagster_private.py``.

Why each storage call has no public replacement:

- :func:`check_executions_after`: the alert sensors read a check's executions after their cursor,
  oldest first. The storage's ``get_asset_check_execution_history`` pages newest first and
  deserializes every row, so a catch-up could not stop at the tick's row budget; the public
  ``get_latest_asset_check_evaluation_record`` sees only the latest, not each failure in turn.
- :func:`delete_check_executions`: ``DagsterInstance.delete_run`` leaves these rows; nothing public
  deletes them.
- :func:`run_shards_dir`: SQLite's per-run event log files, a storage detail with no public accessor.
- :func:`kv_get`, :func:`kv_set`: Dagster saves a sensor's cursor only when its tick completes; the
  alert ledgers must be durable as each alert goes out (exactly once), and no public store is.
- :func:`storage_database_url`: the instance names no database URL publicly; ``cli.migrate`` needs it
  to complete a schema that Dagster's own migration leaves partial.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import dagster as dg
import sqlalchemy as sa
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, SqlEventLogStorageMetadata
from dagster._core.storage.runs.schema import RunStorageSqlMetadata
from dagster._core.storage.schedules.schema import ScheduleStorageSqlMetadata
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG, WILL_RETRY_TAG
from dagster._utils.schedules import get_latest_completed_cron_tick

__all__ = [
    "ASSET_PARTITION_RANGE_END_TAG",
    "ASSET_PARTITION_RANGE_START_TAG",
    "WILL_RETRY_TAG",
    "AssetCheckExecutionsTable",
    "BulkActionStatus",
    "BulkActionsFilter",
    "CheckExecution",
    "RunStorageSqlMetadata",
    "ScheduleStorageSqlMetadata",
    "SqlEventLogStorageMetadata",
    "UnresolvedAssetJobDefinition",
    "check_executions_after",
    "delete_check_executions",
    "get_latest_completed_cron_tick",
    "kv_get",
    "kv_set",
    "run_shards_dir",
    "storage_database_url",
]


class CheckExecution(NamedTuple):
    """One row of Dagster's ``asset_check_executions``: ``event`` is the serialized event log entry
    of its evaluation, None while the row is only planned."""

    id: int
    run_id: str
    created: float
    event: str | None


def _timestamp(value: datetime | float | None) -> float:
    if value is None:
        return 0.0
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return float(value)


def check_executions_after(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, after_id: int, limit: int
) -> list[CheckExecution]:
    """Up to ``limit`` execution rows of ``check_key`` with id above ``after_id``, oldest first: one
    index range scan. (Dagster's own reader pages newest first and deserializes every row.)"""
    table = AssetCheckExecutionsTable
    query = (
        sa.select(
            table.c.id, table.c.run_id, table.c.execution_status, table.c.create_timestamp, table.c.evaluation_event
        )
        .where(
            table.c.asset_key == check_key.asset_key.to_string(),
            table.c.check_name == check_key.name,
            table.c.id > after_id,
        )
        .order_by(table.c.id.asc())
        .limit(limit)
    )
    with instance.event_log_storage.index_connection() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(query).fetchall()
    planned = AssetCheckExecutionRecordStatus.PLANNED.value
    return [
        CheckExecution(int(row_id), run_id or "", _timestamp(created), None if status == planned else event or None)
        for row_id, run_id, status, created, event in rows
    ]


def delete_check_executions(instance: dg.DagsterInstance, run_ids: Collection[str]) -> int:
    """Delete the execution rows of the runs ``run_ids`` (``delete_run`` leaves them); how many went."""
    table = AssetCheckExecutionsTable
    with instance.event_log_storage.index_connection() as conn:  # type: ignore[attr-defined]
        return int(conn.execute(sa.delete(table).where(table.c.run_id.in_(list(run_ids)))).rowcount or 0)


def run_shards_dir(instance: dg.DagsterInstance) -> Path | None:
    """The folder of SQLite's per-run event log files, or None on a server (MySQL, Postgres)."""
    storage = instance.event_log_storage
    if not storage.is_run_sharded:
        return None
    return Path(storage.path_for_shard("_")).parent  # type: ignore[attr-defined]


def storage_database_url(instance: dg.DagsterInstance) -> str | None:
    """The SQLAlchemy URL of the run storage's database (MySQL, Postgres), or None on SQLite."""
    storage = instance.run_storage
    return getattr(storage, "mysql_url", None) or getattr(storage, "postgres_url", None)


def kv_get(instance: dg.DagsterInstance, key: str) -> str | None:
    """The value at ``key`` of the instance's key-value store (the daemons' cursors' table), or None."""
    return instance.run_storage.get_cursor_values({key}).get(key)


def kv_set(instance: dg.DagsterInstance, key: str, value: str) -> None:
    """Write ``value`` at ``key`` of the instance's key-value store, durably, now."""
    instance.run_storage.set_cursor_values({key: value})
