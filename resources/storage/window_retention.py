"""Retention: delete windows older than N days, table by table, with their ``partition_log`` rows.

``CRYPTO_RETENTION_DAYS`` (unset or empty: keep everything forever) is the number of whole UTC
days to keep before today: with 30, on 2026-12-31 every window before 2026-12-01 00:00 goes.
Deletion runs in batches of windows (a day by default), each one transaction that removes the
batch's rows and its ``partition_log`` rows together and holds the table's write lock, so a
reader never sees rows without their committed window or the reverse, and a concurrent partition
write of the same table waits for the batch instead of racing it. Back up first
(``python -m cli.backup export``) if the old windows may be wanted again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from resources.config.settings import SettingsError, load_settings, setting_variable
from resources.storage.schema import CONTRACTS_BY_NAME, TableContract, partition_log
from resources.storage.warehouse import Warehouse, to_naive_utc, utc_now
from resources.storage.windows import DAY

log = logging.getLogger(__name__)

RETENTION_ENV = setting_variable("retention_days")


class RetentionError(ValueError):
    """``CRYPTO_RETENTION_DAYS`` holds something that is not a positive whole number of days."""


def retention_days(environ: Mapping[str, str] | None = None) -> int | None:
    """Days to keep from ``CRYPTO_RETENTION_DAYS`` of ``environ`` (read by the settings, the process
    environment by default); None (keep forever) when unset or empty."""
    try:
        return load_settings(
            None if environ is None else {RETENTION_ENV: environ.get(RETENTION_ENV, "")}
        ).retention_days
    except SettingsError as exc:
        raise RetentionError(str(exc)) from None


def retention_cutoff(days: int, now: datetime | None = None) -> datetime:
    """The first window kept: UTC midnight of today minus ``days``."""
    now = to_naive_utc(now or utc_now())
    return now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days)


@dataclass
class RetentionReport:
    """Rows and windows deleted per table."""

    cutoff: datetime
    rows: dict[str, int] = field(default_factory=dict)
    windows: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "rows_deleted": self.rows,
            "windows_deleted": self.windows,
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
        }


def _oldest(wh: Warehouse, table: sa.Table, contract: TableContract) -> datetime | None:
    with wh.engine.connect() as conn:
        data = conn.execute(sa.select(sa.func.min(table.c[contract.time_column]))).scalar()
        logged = conn.execute(
            sa.select(sa.func.min(partition_log.c.window_start)).where(partition_log.c.asset == contract.asset)
        ).scalar()
    values = [v if isinstance(v, datetime) else datetime(v.year, v.month, v.day) for v in (data, logged) if v]
    return min(values) if values else None


def _delete_batch(
    wh: Warehouse, table: sa.Table, contract: TableContract, start: datetime, end: datetime
) -> tuple[int, int]:
    column = table.c[contract.time_column]
    low, high = contract.time_bounds(start, end)

    def delete(conn: Connection) -> tuple[int, int]:
        rows = conn.execute(sa.delete(table).where(column >= low, column < high)).rowcount or 0
        windows = (
            conn.execute(
                sa.delete(partition_log).where(
                    partition_log.c.asset == contract.asset,
                    partition_log.c.window_start >= start,
                    partition_log.c.window_start < end,
                )
            ).rowcount
            or 0
        )
        return int(rows), int(windows)

    # Under the lock partition writes of this table take, retried like every warehouse write.
    deleted, _ = wh.transaction(
        delete, locks=[contract.name], what=f"{contract.name}: retention batch [{start}, {end})"
    )
    return deleted


def apply_retention(
    wh: Warehouse,
    days: int,
    *,
    now: datetime | None = None,
    tables: Sequence[str] | None = None,
    batch: timedelta = DAY,
) -> RetentionReport:
    """Delete every window older than ``days`` whole UTC days, oldest first, a ``batch`` at a time."""
    if days < 1:
        raise RetentionError("retention must keep at least 1 day")
    began = time.perf_counter()
    cutoff = retention_cutoff(days, now)
    report = RetentionReport(cutoff)
    for name in tables or CONTRACTS_BY_NAME:
        contract = CONTRACTS_BY_NAME[name]
        table = wh.table(name)
        report.rows[name] = report.windows[name] = 0
        oldest = _oldest(wh, table, contract)
        if oldest is None or oldest >= cutoff:
            continue
        start = oldest.replace(hour=0, minute=0, second=0, microsecond=0)
        while start < cutoff:
            end = min(start + batch, cutoff)
            rows, windows = _delete_batch(wh, table, contract, start, end)
            report.rows[name] += rows
            report.windows[name] += windows
            report.batches += 1
            start = end
        log.info(
            "%s: deleted %d row(s) and %d window(s) before %s", name, report.rows[name], report.windows[name], cutoff
        )
    report.seconds = time.perf_counter() - began
    return report
