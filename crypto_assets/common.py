"""What every asset shares: its window range, and the metadata it reports to the Dagster UI."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from dagster import (
    AssetExecutionContext,
    MetadataValue,
    TableColumn,
    TableSchema,
)

from resources.warehouse import WriteResult, to_naive_utc

OWNERS = ["team:data-platform"]


def window_range(context: AssetExecutionContext) -> tuple[datetime, datetime]:
    """The run's window range [start, end) as naive UTC: one window or a whole backfill range."""
    window = context.partition_time_window
    return to_naive_utc(window.start), to_naive_utc(window.end)


def _column_type(column: sa.Column) -> str:
    try:
        return str(column.type.compile()).lower()
    except Exception:  # a dialect-only type
        return type(column.type).__name__.lower()


def table_schema(table: sa.Table) -> TableSchema:
    """The table's columns as a Dagster ``TableSchema`` (shown in the UI's column view)."""
    keys = {c.name for c in table.primary_key.columns}
    return TableSchema(columns=[
        TableColumn(name=c.name, type=_column_type(c),
                    description="primary key" if c.name in keys else None)
        for c in table.columns
    ])


def preview_markdown(frame: pd.DataFrame, rows: int = 8, columns: list[str] | None = None) -> MetadataValue:
    """A short markdown preview of ``frame`` for the UI."""
    if frame.empty:
        return MetadataValue.md("_no rows_")
    shown = frame[columns] if columns else frame
    return MetadataValue.md(shown.head(rows).to_markdown(index=False, floatfmt=".6g"))


def write_metadata(table: sa.Table, result: WriteResult, start: datetime, end: datetime,
                   **extra: Any) -> dict[str, Any]:
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
