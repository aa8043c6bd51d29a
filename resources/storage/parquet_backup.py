"""Backup and restore of the warehouse's committed windows, as Parquet files by date.

Layout of a backup directory::

    <dir>/manifest.json                                  what is in it (tables, columns, dates, rows)
    <dir>/<table>/date=YYYY-MM-DD/part.parquet           the table's committed rows of that UTC day
    <dir>/partition_log/date=YYYY-MM-DD/part.parquet     the partition_log rows of that day

Only rows whose window is in ``partition_log`` are exported (a row is served, and backed up, once
the transaction that wrote its window has committed), with ``partition_log`` itself. On MySQL and
MariaDB the whole export reads one consistent snapshot (``REPEATABLE READ``, one transaction),
so tables and log agree even while windows are committing; on SQLite one read transaction does the
same (WAL mode). An export of a day that is already in the directory replaces it, so a daily
export of yesterday into one directory builds an incremental backup.

A restore writes each table back through :meth:`Warehouse.write_partition`: one replace per
maximal run of consecutive committed windows with the same ``code_version``, so the target's
``partition_log`` is rebuilt by the same primitive that wrote it first (run id
``restore:<backup id>``; the original run ids stay in the backup's ``partition_log`` files).
Windows that the backup does not hold are left as they are in the target.

Command line::

    python -m cli.backup export  --db-url URL --dir DIR [--start 2026-11-01] [--end 2026-11-08]
    python -m cli.backup restore --db-url URL --dir DIR [--start ...] [--end ...]
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from resources.storage.schema import CONTRACTS_BY_NAME, TableContract, partition_log
from resources.storage.warehouse import Warehouse, to_naive_utc, utc_now
from resources.storage.windows import DAY, window_floor

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
LOG_TABLE = partition_log.name


@dataclass
class BackupReport:
    """What an export or a restore did, table by table."""

    action: str
    directory: str
    backup_id: str
    rows: dict[str, int] = field(default_factory=dict)
    windows: dict[str, int] = field(default_factory=dict)
    dates: list[str] = field(default_factory=list)
    writes: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "directory": self.directory,
            "backup_id": self.backup_id,
            "rows": self.rows,
            "windows": self.windows,
            "dates": len(self.dates),
            "first_date": self.dates[0] if self.dates else None,
            "last_date": self.dates[-1] if self.dates else None,
            "writes": self.writes,
            "seconds": round(self.seconds, 3),
        }


# ---------------------------------------------------------------------------------------- types
def _arrow_type(column: sa.Column) -> pa.DataType:
    column_type = column.type
    if isinstance(column_type, sa.DateTime):
        return pa.timestamp("us")
    if isinstance(column_type, sa.Date):
        return pa.date32()
    if isinstance(column_type, sa.Float):
        return pa.float64()
    if isinstance(column_type, sa.Integer):
        return pa.int64()
    return pa.string()


def arrow_schema(table: sa.Table) -> pa.Schema:
    """The Parquet schema of a table: one field a column, with the column's nullability."""
    return pa.schema([pa.field(c.name, _arrow_type(c), nullable=bool(c.nullable)) for c in table.columns])


def _to_arrow(table: sa.Table, rows: Sequence[sa.Row]) -> pa.Table:
    schema = arrow_schema(table)
    columns = list(zip(*rows)) if rows else [()] * len(schema)
    arrays = []
    for spec_field, column in zip(schema, columns):
        values: list[Any] = list(column)
        if pa.types.is_floating(spec_field.type):
            values = [None if v is None else float(v) for v in values]
        arrays.append(pa.array(values, type=spec_field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _day(value: datetime | date) -> date:
    return value.date() if isinstance(value, datetime) else value


def _midnight(value: date) -> datetime:
    return datetime(value.year, value.month, value.day)


def _bound(value: datetime | date | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        value = _midnight(value)
    return to_naive_utc(value)


# ---------------------------------------------------------------------------------------- files
def _day_path(directory: Path, table: str, day: date) -> Path:
    return directory / table / f"date={day.isoformat()}" / "part.parquet"


def _write_parquet(frame: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    pq.write_table(frame, partial, compression="zstd")
    os.replace(partial, path)


def _dates_on_disk(directory: Path, table: str) -> list[date]:
    root = directory / table
    if not root.is_dir():
        return []
    out = []
    for child in root.iterdir():
        if child.name.startswith("date=") and (child / "part.parquet").is_file():
            out.append(date.fromisoformat(child.name[len("date=") :]))
    return sorted(out)


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The backup's manifest, or an empty one if the directory holds none yet."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return {"format": FORMAT_VERSION, "tables": {}, "exports": []}
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: backup format {manifest.get('format')!r}, this code reads {FORMAT_VERSION}")
    return manifest


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    path = directory / MANIFEST
    partial = path.with_name(MANIFEST + ".partial")
    partial.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    os.replace(partial, path)


# ---------------------------------------------------------------------------------------- export
@contextmanager
def _snapshot(wh: Warehouse) -> Iterator[Connection]:
    """One connection whose reads all see the same committed state."""
    if wh.is_mysql:
        with wh.engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            with conn.begin():  # InnoDB takes the snapshot at the first read and keeps it
                yield conn
        return
    with wh.engine.connect() as conn:
        if wh.dialect == "sqlite":
            # pysqlite opens no transaction for reads: open one, so every SELECT reads one WAL snapshot.
            conn.exec_driver_sql("BEGIN")
            try:
                yield conn
            finally:
                conn.exec_driver_sql("ROLLBACK")
        else:
            with conn.begin():
                yield conn


def _committed_rows(
    conn: Connection, table: sa.Table, contract: TableContract, day: date, committed: set[datetime]
) -> list[sa.Row]:
    column = table.c[contract.time_column]
    begin, finish = _midnight(day), _midnight(day) + DAY
    low, high = contract.time_bounds(begin, finish)
    if contract.daily:
        rows = conn.execute(sa.select(table).where(column >= low, column < high)).all()
        return [r for r in rows if _midnight(_day(r._mapping[contract.time_column])) in committed]
    stmt = sa.select(table).where(column >= low, column < high).order_by(*table.primary_key.columns)
    rows = conn.execute(stmt).all()
    return [r for r in rows if window_floor(r._mapping[contract.time_column], contract.window) in committed]


def export_warehouse(
    wh: Warehouse,
    directory: str | Path,
    *,
    start: datetime | date | str | None = None,
    end: datetime | date | str | None = None,
    tables: Sequence[str] | None = None,
) -> BackupReport:
    """Export the committed windows of [start, end) (whole UTC days; all by default) to ``directory``."""
    began = utc_now()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    start_at, end_at = _bound(start), _bound(end)
    backup_id = began.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    report = BackupReport("export", str(directory), backup_id)
    wanted = [CONTRACTS_BY_NAME[name] for name in (tables or CONTRACTS_BY_NAME)]
    manifest = read_manifest(directory)
    dates: set[date] = set()
    with _snapshot(wh) as conn:
        log_stmt = sa.select(partition_log)
        if start_at is not None:
            log_stmt = log_stmt.where(partition_log.c.window_start >= _midnight(_day(start_at)))
        if end_at is not None:
            log_stmt = log_stmt.where(partition_log.c.window_start < end_at)
        log_rows = conn.execute(log_stmt.order_by(partition_log.c.window_start, partition_log.c.asset)).all()
        by_day: dict[date, list[sa.Row]] = {}
        for row in log_rows:
            by_day.setdefault(row.window_start.date(), []).append(row)
        for contract in wanted:
            table = wh.table(contract.name)
            entry = manifest["tables"].setdefault(contract.name, {})
            entry.update(
                {
                    "time_column": contract.time_column,
                    "window_seconds": int(contract.window.total_seconds()),
                    "columns": [c.name for c in table.columns],
                }
            )
            entry.setdefault("dates", {})
            report.rows[contract.name] = 0
            report.windows[contract.name] = 0
            for day, day_log in sorted(by_day.items()):
                committed = {r.window_start for r in day_log if r.asset == contract.asset}
                if not committed:
                    continue
                rows = _committed_rows(conn, table, contract, day, committed)
                _write_parquet(_to_arrow(table, rows), _day_path(directory, contract.name, day))
                entry["dates"][day.isoformat()] = {"rows": len(rows), "windows": len(committed)}
                report.rows[contract.name] += len(rows)
                report.windows[contract.name] += len(committed)
                dates.add(day)
        log_entry = manifest["tables"].setdefault(LOG_TABLE, {"dates": {}})
        log_entry["columns"] = [c.name for c in partition_log.columns]
        for day, day_log in sorted(by_day.items()):
            kept = [r for r in day_log if r.asset in report.rows]
            if not kept:
                continue
            _write_parquet(_to_arrow(partition_log, kept), _day_path(directory, LOG_TABLE, day))
            log_entry["dates"][day.isoformat()] = {"rows": len(kept)}
    report.dates = sorted(d.isoformat() for d in dates)
    report.seconds = (utc_now() - began).total_seconds()
    manifest["format"] = FORMAT_VERSION
    manifest.setdefault("exports", []).append(
        {
            "backup_id": backup_id,
            "at": began.isoformat() + "Z",
            "source": wh.engine.url.render_as_string(hide_password=True),
            "start": start_at.isoformat() if start_at else None,
            "end": end_at.isoformat() if end_at else None,
            "rows": report.rows,
        }
    )
    _write_manifest(directory, manifest)
    log.info("exported %s rows of %d day(s) to %s", report.rows, len(report.dates), directory)
    return report


# ---------------------------------------------------------------------------------------- restore
def _segments(windows: pd.DataFrame, window: timedelta) -> list[tuple[datetime, datetime, str]]:
    """Maximal runs of consecutive windows with one code_version: (start, end, code_version)."""
    out: list[tuple[datetime, datetime, str]] = []
    ordered = windows.sort_values("window_start")
    for window_start, code_version in zip(ordered["window_start"], ordered["code_version"], strict=True):
        start = to_naive_utc(window_start)
        if out and out[-1][1] == start and out[-1][2] == code_version:
            out[-1] = (out[-1][0], start + window, code_version)
        else:
            out.append((start, start + window, code_version))
    return out


def _frame(path: Path, table: sa.Table) -> pd.DataFrame:
    frame = pq.read_table(path).to_pandas()
    unknown = [c for c in frame.columns if c not in table.columns]
    if unknown:
        raise ValueError(f"{path}: column(s) {', '.join(unknown)} are not in the target's {table.name}")
    return frame


def restore_warehouse(
    wh: Warehouse,
    directory: str | Path,
    *,
    start: datetime | date | str | None = None,
    end: datetime | date | str | None = None,
    tables: Sequence[str] | None = None,
) -> BackupReport:
    """Write the backup's committed windows of [start, end) into ``wh`` through ``write_partition``."""
    began = utc_now()
    directory = Path(directory)
    manifest = read_manifest(directory)
    if not manifest["tables"]:
        raise ValueError(f"{directory} holds no backup ({MANIFEST} missing or empty)")
    start_at, end_at = _bound(start), _bound(end)
    backup_id = manifest["exports"][-1]["backup_id"] if manifest.get("exports") else "unknown"
    run_id = f"restore:{backup_id}"[:64]
    report = BackupReport("restore", str(directory), backup_id)
    names = [n for n in (tables or CONTRACTS_BY_NAME) if n in manifest["tables"]]
    logs = {
        day: pq.read_table(_day_path(directory, LOG_TABLE, day)).to_pandas()
        for day in _dates_on_disk(directory, LOG_TABLE)
    }
    dates: set[date] = set()
    for name in names:
        contract = CONTRACTS_BY_NAME[name]
        table = wh.table(name)
        report.rows[name] = 0
        report.windows[name] = 0
        for day in _dates_on_disk(directory, name):
            day_log = logs.get(day)
            if day_log is None:
                log.warning("%s: %s has no partition_log file: skipped", name, day)
                continue
            windows = day_log[day_log["asset"] == contract.asset]
            windows = windows.assign(window_start=pd.to_datetime(windows["window_start"]))
            if start_at is not None:
                windows = windows[windows["window_start"] >= pd.Timestamp(start_at)]
            if end_at is not None:
                windows = windows[windows["window_start"] < pd.Timestamp(end_at)]
            if windows.empty:
                continue
            frame = _frame(_day_path(directory, name, day), table)
            times = pd.to_datetime(frame[contract.time_column])
            for seg_start, seg_end, code_version in _segments(windows, contract.window):
                inside = (times >= pd.Timestamp(seg_start)) & (times < pd.Timestamp(seg_end))
                part = frame.loc[inside].reset_index(drop=True)
                wh.write_partition(
                    name,
                    part,
                    start=seg_start,
                    end=seg_end,
                    run_id=run_id,
                    code_version=str(code_version),
                )
                report.writes += 1
                report.rows[name] += len(part)
            report.windows[name] += len(windows)
            dates.add(day)
    report.dates = sorted(d.isoformat() for d in dates)
    report.seconds = (utc_now() - began).total_seconds()
    log.info(
        "restored %s rows of %d day(s) from %s in %d write(s)", report.rows, len(report.dates), directory, report.writes
    )
    return report
