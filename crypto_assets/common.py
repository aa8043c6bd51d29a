"""What every asset shares: its window range, and the metadata it reports to the Dagster UI."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
from dagster import (
    AssetExecutionContext,
    MetadataValue,
    TableColumn,
    TableSchema,
)

from resources.storage.warehouse import WriteResult, to_naive_utc, utc_now

OWNERS = ["team:data-platform"]
#: A run over at most this many windows, created within LIVE_HORIZON of its range's end, is live.
LIVE_RUN_MAX_WINDOWS = 12
LIVE_HORIZON = timedelta(minutes=15)


def window_range(context: AssetExecutionContext) -> tuple[datetime, datetime]:
    """The run's window range [start, end) as naive UTC: one window or a whole backfill range."""
    window = context.partition_time_window
    return to_naive_utc(window.start), to_naive_utc(window.end)


def live_run_deadline(end: datetime, windows: int, created_at: datetime, grace: timedelta) -> datetime | None:
    """The time after which a run over windows ending at ``end`` stops waiting on its sources.

    A live run (at most :data:`LIVE_RUN_MAX_WINDOWS` windows, created no later than
    :data:`LIVE_HORIZON` after ``end``: the scheduled run of the window that just closed, or an
    early re-run of it) must not outlast its window: ``end + grace``. Backfills (many windows) and
    re-runs of older windows have no deadline (None): they may wait out a rate limit.
    """
    if windows > LIVE_RUN_MAX_WINDOWS or created_at > end + LIVE_HORIZON:
        return None
    return end + grace


def run_deadline(context: AssetExecutionContext, grace_s: float) -> datetime | None:
    """:func:`live_run_deadline` of this run (``grace_s``, a source resource's
    ``CRYPTO_LIVE_RUN_DEADLINE_S``, after its range's end), from when the run was created, so that
    step retries keep the run's deadline."""
    record = context.instance.get_run_record_by_id(context.run_id)
    created = to_naive_utc(record.create_timestamp) if record is not None else utc_now()
    _, end = window_range(context)
    return live_run_deadline(end, len(context.partition_keys), created, timedelta(seconds=grace_s))


def _column_type(column: sa.Column) -> str:
    try:
        return str(column.type.compile()).lower()
    except Exception:  # a dialect-only type
        return type(column.type).__name__.lower()


def table_schema(table: sa.Table) -> TableSchema:
    """The table's columns as a Dagster ``TableSchema`` (shown in the UI's column view)."""
    keys = {c.name for c in table.primary_key.columns}
    return TableSchema(
        columns=[
            TableColumn(name=c.name, type=_column_type(c), description="primary key" if c.name in keys else None)
            for c in table.columns
        ]
    )


def preview_markdown(frame: pd.DataFrame, rows: int = 8, columns: list[str] | None = None) -> MetadataValue:
    """A short markdown preview of ``frame`` for the UI."""
    if frame.empty:
        return MetadataValue.md("_no rows_")
    shown = frame[columns] if columns else frame
    return MetadataValue.md(shown.head(rows).to_markdown(index=False, floatfmt=".6g"))


def write_metadata(
    table: sa.Table, result: WriteResult, start: datetime, end: datetime, **extra: Any
) -> dict[str, Any]:
    """The metadata every table-writing asset reports: row count, schema, window range, timing."""
    metadata: dict[str, Any] = {
        "dagster/row_count": result.rows_written,
        "dagster/column_schema": table_schema(table),
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "windows": result.windows_logged,
        "rows_replaced": result.rows_deleted,
        "write_seconds": round(result.seconds, 4),
        "write_attempts": result.attempts,
    }
    metadata.update(extra)
    return metadata
