"""The warehouse: an engine over the tables of :mod:`resources.storage.schema`, the partition-write
primitive, and reads.

Plain SQLAlchemy, no Dagster import: the API gateway uses this module too.

Every table write goes through :meth:`Warehouse.write_partition`: in one transaction it deletes
the rows of the window range (or, in ``merge`` mode, the rows with the frame's keys), bulk-inserts
the frame (on MySQL ``LOAD DATA LOCAL INFILE`` of a TSV for frames of ``LOAD_DATA_MIN_ROWS`` rows
or more when the server allows it, multi-row INSERTs of vectorised literals otherwise;
``executemany`` elsewhere), and
upserts one ``partition_log`` row per window. Re-running a partition, or two runs racing on it,
leaves exactly one copy: on MySQL, writers of one table serialise on a named lock, and deadlocks
or lock-wait timeouts are retried; on SQLite the database-level write lock does the same.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from resources.retry_policy import RetryPolicy, retry_call
from resources.storage.schema import METADATA, contract_of, partition_log
from resources.storage.sql_literals import chunked_statements, mysql_row_literals, naive_utc_times
from resources.storage.windows import WINDOW, absent_windows, window_starts

log = logging.getLogger(__name__)

T = TypeVar("T")

#: MySQL writes of at least this many rows are bulk-loaded with LOAD DATA LOCAL INFILE: the
#: server parses a TSV faster than multi-row INSERTs, and pyarrow writes it faster than Python
#: renders SQL literals (the rates: docs/benchmarks.md, Features).
LOAD_DATA_MIN_ROWS = 2000


class WarehouseError(RuntimeError):
    """A write was refused (bad frame) or failed for good (database error after retries)."""


@dataclass(frozen=True)
class WriteResult:
    """What one partition write did."""

    table: str
    rows_written: int
    rows_deleted: int
    windows_logged: int
    seconds: float
    attempts: int


_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


# 1114 "table is full" (InnoDB could not extend a data file), 1021 "disk full", 3 "error writing file".
_OUT_OF_SPACE_MYSQL = {3, 1021, 1114}


def _mysql_error_code(exc: DBAPIError) -> int | None:
    args = getattr(exc.orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _out_of_space_hint(exc: DBAPIError) -> str:
    """What to tell the operator when ``exc`` says the database's disk (or tablespace) is full, else ""."""
    if _mysql_error_code(exc) in _OUT_OF_SPACE_MYSQL or "database or disk is full" in str(exc.orig).lower():
        return (
            " -- the database is out of disk space: nothing of this write was kept; free space and re-run the windows"
        )
    return ""


def utc_now() -> datetime:
    """The current time as a naive UTC ``datetime``."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_naive_utc(value: datetime | pd.Timestamp) -> datetime:
    """A naive UTC ``datetime`` (the warehouse stores UTC without a zone)."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()


class Warehouse:
    """An engine over the warehouse database, with the partition-write primitive and reads."""

    def __init__(self, url: str, *, create: bool = True, echo: bool = False):
        self.url = url
        self.engine: Engine = _make_engine(url, echo=echo)
        self.dialect = self.engine.dialect.name
        self._created: set[str] = set()
        self._create_lock = threading.Lock()
        self._load_data_allowed: bool | None = None if self.is_mysql else False
        if create:
            self.ensure_schema()

    @property
    def is_mysql(self) -> bool:
        return self.dialect in ("mysql", "mariadb")

    def connectorx_url(self) -> str | None:
        """The warehouse URL in connectorx's form (fast reads into Arrow), or None where connectorx
        cannot be used (not MySQL/MariaDB, or not installed)."""
        if not self.is_mysql or importlib.util.find_spec("connectorx") is None:
            return None
        return self.engine.url.set(drivername="mysql", query={}).render_as_string(hide_password=False)

    def read_connectorx(self, statement: sa.Select, *, arrow: bool = False) -> pd.DataFrame | pa.Table:
        """Run a SELECT through connectorx (Arrow, many times faster than the DB-API rows on MySQL)
        into a DataFrame (or the Arrow table itself, ``arrow=True``); only where
        :meth:`connectorx_url` is not None."""
        import connectorx

        url = self.connectorx_url()
        if url is None:
            raise WarehouseError("connectorx reads need a MySQL/MariaDB warehouse and connectorx installed")
        sql = str(statement.compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True}))
        # connectorx's first overload takes **kwargs and so claims every return_type: annotate the arrow one
        table: pa.Table = connectorx.read_sql(url, sql, return_type="arrow")
        return table if arrow else table.to_pandas()

    def ensure_schema(self) -> None:
        """Create every declared table that does not exist yet (``create_all``), and add the
        declared columns an existing table lacks (``ALTER TABLE ... ADD COLUMN``).

        On MySQL/MariaDB a missing database is created first (``CREATE DATABASE IF NOT EXISTS``).
        Only nullable columns can be added (older rows hold NULL there); a declared column that is
        missing and NOT NULL raises :class:`WarehouseError`.
        """
        with self._create_lock:
            try:
                if self.is_mysql:
                    _create_mysql_database(self.engine)
                METADATA.create_all(self.engine, checkfirst=True)
                self._add_missing_columns()
            except DBAPIError as exc:
                hint = _out_of_space_hint(exc)
                if hint:
                    raise WarehouseError(f"cannot check or create the warehouse's tables: {exc.orig}{hint}") from exc
                raise
            self._created.update(METADATA.tables)

    def _add_missing_columns(self) -> None:
        inspector = sa.inspect(self.engine)
        for table in METADATA.sorted_tables:
            present = {c["name"] for c in inspector.get_columns(table.name)}
            missing = [c for c in table.columns if c.name not in present]
            if not missing:
                continue
            preparer = self.engine.dialect.identifier_preparer
            with self.engine.begin() as conn:
                for column in missing:
                    if not column.nullable:
                        raise WarehouseError(
                            f"{table.name}: column {column.name} is declared NOT NULL and missing "
                            "from the existing table; it cannot be added in place"
                        )
                    kind = column.type.compile(dialect=self.engine.dialect)
                    conn.exec_driver_sql(
                        f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN {preparer.quote(column.name)} {kind}"
                    )
                    log.warning("%s: added column %s %s to the existing table", table.name, column.name, kind)

    def table(self, name: str) -> sa.Table:
        """The declared table called ``name``, created in the database if it is not there yet."""
        try:
            table = METADATA.tables[name]
        except KeyError:
            raise WarehouseError(f"unknown table {name!r}") from None
        if name not in self._created:
            self.ensure_schema()
        return table

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    # ------------------------------------------------------------------ writes
    def write_partition(
        self,
        table_name: str,
        frame: pd.DataFrame,
        *,
        start: datetime,
        end: datetime,
        run_id: str,
        code_version: str,
        asset: str | None = None,
        time_column: str | None = None,
        mode: str = "replace",
        window: timedelta | None = None,
        max_attempts: int = 5,
    ) -> WriteResult:
        """Write ``frame`` as the content of the window range [start, end) of ``table_name``.

        ``mode="replace"``: the range's rows are deleted first, so the table ends up holding
        exactly ``frame`` for that range. ``mode="merge"``: only rows with the frame's keys are
        replaced (for tables such as ``news_items`` whose sources cannot serve old windows again).
        In both modes ``partition_log`` gets one row per window in the range, in the same
        transaction. ``asset``, ``time_column`` and ``window`` default to the table's contract
        (:mod:`resources.storage.schema`; ``window_start`` and 5 minutes for a table without one).
        Raises :class:`WarehouseError` before touching the database if the frame has unknown or
        missing columns, null keys, duplicate keys or rows outside the range.
        """
        if mode not in ("replace", "merge"):
            raise ValueError(f"mode must be 'replace' or 'merge', not {mode!r}")
        table = self.table(table_name)
        contract = contract_of(table_name)
        asset = asset or (contract.asset if contract else table_name)
        time_column = time_column or (contract.time_column if contract else "window_start")
        window = window or (contract.window if contract else WINDOW)
        start, end = to_naive_utc(start), to_naive_utc(end)
        if end <= start:
            raise WarehouseError(f"{table_name}: empty window range [{start}, {end})")
        frame = self._validated(table, frame, start, end, time_column)
        columns = [c.name for c in table.columns if c.name in frame.columns]
        bulk_load = len(frame) >= LOAD_DATA_MIN_ROWS and self._can_load_data()
        rows = [] if bulk_load else self._rows(table, frame, columns)
        windows = window_starts(start, end, window)
        if len(frame):
            times = pd.to_datetime(frame[time_column])
            counts = times.dt.floor(_pandas_freq(window)).value_counts()
            per_window = {to_naive_utc(k): int(v) for k, v in zip(counts.index, counts, strict=True)}
        else:
            per_window = {}
        committed_at = utc_now()
        log_rows = [
            {
                "asset": asset,
                "window_start": w,
                "run_id": run_id,
                "row_count": per_window.get(w, 0),
                "code_version": code_version,
                "committed_at": committed_at,
            }
            for w in windows
        ]
        key_columns = [c.name for c in table.primary_key.columns]

        began = time.perf_counter()

        def write(conn: Connection) -> int:
            if mode == "replace":
                col = table.c[time_column]
                deleted = conn.execute(sa.delete(table).where(col >= start, col < end)).rowcount
            else:
                deleted = self._delete_keys(conn, table, frame[key_columns])
            if bulk_load:
                self._load_data(conn, table, frame, columns)
            else:
                self._bulk_insert(conn, table, columns, rows)
            self._upsert_log(conn, asset, windows, log_rows)
            return int(deleted or 0)

        deleted, attempts = self.transaction(
            write, locks=[table_name], what=f"{table_name}: write of [{start}, {end})", max_attempts=max_attempts
        )
        return WriteResult(table_name, len(frame), deleted, len(windows), time.perf_counter() - began, attempts)

    def transaction(
        self, work: Callable[[Connection], T], *, locks: Sequence[str], what: str, max_attempts: int = 5
    ) -> tuple[T, int]:
        """Run ``work`` in one transaction holding the write locks of the tables ``locks`` (taken in
        name order), retrying deadlocks, lock-wait timeouts and lost connections (MySQL) or a locked
        database (SQLite) under :mod:`resources.retry_policy`; returns what ``work`` returned and the attempts it took.

        Any other database error, or the last retryable one, is a :class:`WarehouseError` that
        names ``what`` (and says so when the database's disk is full).
        """
        attempts = 0

        def attempt() -> T:
            nonlocal attempts
            attempts += 1
            with self.engine.begin() as conn:
                for name in sorted(set(locks)):
                    self.lock_table(conn, name)
                return work(conn)

        def give_up(exc: BaseException, tries: int) -> BaseException:
            if not isinstance(exc, DBAPIError):
                return exc
            return WarehouseError(f"{what} failed after {tries} attempt(s): {exc.orig}{_out_of_space_hint(exc)}")

        policy = RetryPolicy(max_attempts=max_attempts, backoff_base_s=0.4, backoff_max_s=5.0)
        return retry_call(attempt, policy, name=what, give_up=give_up, logger=log), attempts

    def replace_rows(
        self, changes: Sequence[tuple[str, sa.ColumnElement[bool], pd.DataFrame]], max_attempts: int = 5
    ) -> int:
        """In one transaction, for each ``(table, where, frame)``: delete the rows matching ``where``,
        insert ``frame``. For tables outside the window model (caches); returns the rows inserted.

        Frames are checked like :meth:`write_partition`'s (known columns, non-null, unique keys)
        before anything is written; writers of the same tables serialise on their MySQL named locks.
        """
        prepared = []
        for table_name, where, frame in changes:
            table = self.table(table_name)
            keys = [c.name for c in table.primary_key.columns]
            unknown = [c for c in frame.columns if c not in table.columns]
            if unknown or any(k not in frame.columns for k in keys):
                raise WarehouseError(f"{table_name}: frame columns {list(frame.columns)} do not fit the table")
            if len(frame) and (frame[keys].isna().any().any() or frame.duplicated(keys).any()):
                raise WarehouseError(f"{table_name}: null or duplicate keys in the frame")
            columns = [c.name for c in table.columns if c.name in frame.columns]
            prepared.append((table, where, columns, self._rows(table, frame, columns)))

        def replace(conn: Connection) -> int:
            for table, where, columns, rows in prepared:
                conn.execute(sa.delete(table).where(where))
                self._bulk_insert(conn, table, columns, rows)
            return sum(len(rows) for *_, rows in prepared)

        names = [p[0].name for p in prepared]
        inserted, _ = self.transaction(
            replace, locks=names, what=f"write of {', '.join(names)}", max_attempts=max_attempts
        )
        return inserted

    def _validated(
        self, table: sa.Table, frame: pd.DataFrame, start: datetime, end: datetime, time_column: str
    ) -> pd.DataFrame:
        name = table.name
        known = set(table.columns.keys())
        unknown = [c for c in frame.columns if c not in known]
        if unknown:
            raise WarehouseError(f"{name}: frame has columns the table does not: {', '.join(map(str, unknown))}")
        required = [
            c.name for c in table.columns if not c.nullable and c.default is None and c.name not in frame.columns
        ]
        if required:
            raise WarehouseError(f"{name}: frame lacks required column(s) {', '.join(required)}")
        if not len(frame):
            return frame
        keys = [c.name for c in table.primary_key.columns]
        if frame[keys].isna().any().any():
            raise WarehouseError(f"{name}: null values in key column(s) {', '.join(keys)}")
        duplicated = frame.duplicated(subset=keys)
        if duplicated.any():
            example = frame.loc[duplicated, keys].iloc[0].to_dict()
            raise WarehouseError(f"{name}: {int(duplicated.sum())} duplicate key(s), e.g. {example}")
        times = naive_utc_times(frame[time_column])
        outside = (times < pd.Timestamp(start)) | (times >= pd.Timestamp(end))
        if outside.any():
            raise WarehouseError(
                f"{name}: {int(outside.sum())} row(s) have {time_column} outside [{start}, {end}), "
                f"e.g. {times[outside].iloc[0]}"
            )
        if time_column in frame.columns:
            frame = frame.assign(**{time_column: times})
        return frame

    def _rows(self, table: sa.Table, frame: pd.DataFrame, columns: Sequence[str]) -> list[Any]:
        """The frame ready for the driver: literal row tuples on MySQL, Python tuples elsewhere."""
        if not len(frame):
            return []
        if self.is_mysql:
            return mysql_row_literals(table, frame, columns)
        sqlite = self.dialect == "sqlite"
        arrays: list[Any] = []
        for name in columns:
            column_type = table.c[name].type
            series = frame[name]
            if isinstance(column_type, (sa.DateTime, sa.Date)) or pd.api.types.is_datetime64_any_dtype(series):
                values = naive_utc_times(series)
                date_only = _is_date_only(column_type)
                if sqlite:
                    objs = values.dt.strftime("%Y-%m-%d" if date_only else _SQLITE_DATETIME)
                else:
                    objs = (
                        values.dt.date
                        if date_only
                        else pd.Series(values.dt.to_pydatetime(), index=values.index, dtype=object)
                    )
                arr = np.array(objs, dtype=object)
                arr[values.isna().to_numpy()] = None
            elif pd.api.types.is_float_dtype(series) or pd.api.types.is_integer_dtype(series):
                floats = series.to_numpy(dtype=float, na_value=np.nan)
                arr = np.array(floats.tolist(), dtype=object)
                arr[~np.isfinite(floats)] = None
            else:
                arr = series.to_numpy(dtype=object).copy()
                arr[pd.isna(series).to_numpy()] = None
            arrays.append(arr.tolist())
        return list(zip(*arrays))

    def _bulk_insert(self, conn: Connection, table: sa.Table, columns: Sequence[str], rows: list[Any]) -> None:
        """Insert prepared rows: multi-row INSERTs of literals on MySQL, ``executemany`` elsewhere."""
        if not rows:
            return
        preparer = conn.dialect.identifier_preparer
        prefix = "INSERT INTO {} ({}) VALUES ".format(
            preparer.format_table(table), ", ".join(preparer.quote(c) for c in columns)
        )
        dbapi_error = conn.dialect.loaded_dbapi.Error
        cursor = conn.connection.cursor()
        try:
            if self.is_mysql:
                for statement in chunked_statements(prefix, rows):
                    cursor.execute(statement)
            else:
                placeholder = "?" if self.dialect == "sqlite" else "%s"
                cursor.executemany(prefix + "(" + ", ".join([placeholder] * len(columns)) + ")", rows)
        except dbapi_error as exc:
            # The raw cursor bypasses SQLAlchemy's wrapping: wrap its errors like every other
            # statement's, so that deadlocks, lock waits and lost connections mid-INSERT are retried.
            raise DBAPIError.instance(prefix + "...", None, exc, dbapi_error, dialect=conn.dialect) from exc
        finally:
            cursor.close()

    def _can_load_data(self) -> bool:
        """Whether the server accepts LOAD DATA LOCAL INFILE (asked once; the client always allows it)."""
        if self._load_data_allowed is None:
            with self.engine.connect() as conn:
                self._load_data_allowed = bool(conn.exec_driver_sql("SELECT @@local_infile").scalar())
        return self._load_data_allowed

    def _load_data(self, conn: Connection, table: sa.Table, frame: pd.DataFrame, columns: Sequence[str]) -> None:
        """Bulk-load ``frame`` with LOAD DATA LOCAL INFILE of a TSV that pyarrow writes.

        LOAD DATA LOCAL reports bad values and duplicate keys as warnings instead of errors, so any
        warning, or a loaded-row count that differs from the frame's, fails the write (the caller's
        transaction rolls back).
        """

        preparer = conn.dialect.identifier_preparer
        statement = (
            f"LOAD DATA LOCAL INFILE %s INTO TABLE {preparer.format_table(table)} CHARACTER SET utf8mb4 "
            "FIELDS TERMINATED BY '\\t' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' "
            f"({', '.join(preparer.quote(c) for c in columns)})"
        )
        dbapi_error = conn.dialect.loaded_dbapi.Error
        cursor = conn.connection.cursor()
        try:
            with tempfile.TemporaryDirectory() as directory:
                path = os.path.join(directory, "rows.tsv")
                pacsv.write_csv(
                    tsv_table(table, frame, columns),
                    path,
                    pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="needed", null_string="\\N"),
                )
                cursor.execute(statement, (path,))
                loaded = cursor.rowcount
            cursor.execute("SELECT @@warning_count")
            (warnings,) = cursor.fetchone() or (0,)
            if warnings or loaded != len(frame):
                cursor.execute("SHOW WARNINGS LIMIT 3")
                raise WarehouseError(
                    f"{table.name}: LOAD DATA loaded {loaded} of {len(frame)} rows with "
                    f"{warnings} warning(s), e.g. {list(cursor.fetchall())}"
                )
        except dbapi_error as exc:
            raise DBAPIError.instance("LOAD DATA ...", None, exc, dbapi_error, dialect=conn.dialect) from exc
        except (AttributeError, OSError) as exc:
            # pymysql fails this way when the server goes away while it streams the file: report it
            # as the lost connection it is (retried, then a WarehouseError like any other write).
            lost = conn.dialect.loaded_dbapi.OperationalError(2013, f"Lost connection during LOAD DATA: {exc!r}")
            raise DBAPIError.instance("LOAD DATA ...", None, lost, dbapi_error, dialect=conn.dialect) from exc
        finally:
            cursor.close()

    def _delete_keys(self, conn: Connection, table: sa.Table, keys: pd.DataFrame) -> int:
        if not len(keys):
            return 0
        key_cols = list(keys.columns)
        deleted = 0
        if len(key_cols) == 1:
            col = table.c[key_cols[0]]
            values = keys[key_cols[0]].tolist()
            for offset in range(0, len(values), 1000):
                deleted += conn.execute(sa.delete(table).where(col.in_(values[offset : offset + 1000]))).rowcount or 0
            return deleted
        tuples = [tuple(r) for r in keys.itertuples(index=False, name=None)]
        for offset in range(0, len(tuples), 500):
            batch = tuples[offset : offset + 500]
            stmt = sa.delete(table).where(sa.tuple_(*(table.c[c] for c in key_cols)).in_(batch))
            deleted += conn.execute(stmt).rowcount or 0
        return deleted

    def _upsert_log(self, conn: Connection, asset: str, windows: list[datetime], log_rows: list[dict]) -> None:
        if not windows:
            return
        col = partition_log.c.window_start
        conn.execute(
            sa.delete(partition_log).where(partition_log.c.asset == asset, col >= windows[0], col <= windows[-1])
        )
        conn.execute(partition_log.insert(), log_rows)

    def lock_table(self, conn: Connection, table_name: str) -> None:
        """Serialise writers of one table within ``conn``'s transaction: the lock every partition write
        of the table takes (MySQL named lock, released when the transaction ends; SQLite locks the
        database itself)."""
        if not self.is_mysql:
            return
        got = conn.execute(
            sa.text("SELECT GET_LOCK(:name, :timeout)"), {"name": f"crypto_write:{table_name}", "timeout": 120}
        ).scalar()
        if got != 1:
            raise WarehouseError(f"{table_name}: could not take the write lock within 120s")
        # The named lock belongs to the session: release it when this transaction ends.
        sa.event.listen(conn, "commit", _release_lock(table_name), once=True)
        sa.event.listen(conn, "rollback", _release_lock(table_name), once=True)

    @contextmanager
    def named_lock(self, name: str, timeout_s: int = 120) -> Iterator[None]:
        """Hold a lock named ``name`` across processes for the block (work outside the warehouse's
        own transactions, such as a lake write). MySQL: ``GET_LOCK`` on a connection of its own;
        SQLite: an exclusive ``flock`` on a file next to the database."""
        if self.is_mysql:
            with self.engine.connect() as conn:
                got = conn.execute(
                    sa.text("SELECT GET_LOCK(:name, :timeout)"), {"name": f"crypto:{name}", "timeout": timeout_s}
                ).scalar()
                if got != 1:
                    raise WarehouseError(f"could not take the lock {name!r} within {timeout_s}s")
                try:
                    yield
                finally:
                    conn.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": f"crypto:{name}"})
            return
        database = self.engine.url.database
        directory = Path(database).parent if database and database != ":memory:" else Path(tempfile.gettempdir())
        path = directory / f".lock-{name.replace(':', '-').replace('/', '-')}"
        with open(path, "a+") as handle:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise WarehouseError(f"could not take the lock {name!r} within {timeout_s}s") from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ reads
    def read_frame(self, statement: sa.Executable | str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run a SELECT and return its rows as a DataFrame (datetime columns as ``datetime64``)."""
        if isinstance(statement, str):
            statement = sa.text(statement)
        with self.engine.connect() as conn:
            result = conn.execute(statement, dict(params or {}))
            frame = pd.DataFrame.from_records(result.fetchall(), columns=list(result.keys()))
        return _typed(frame, statement)

    def read_window(
        self,
        table_name: str,
        start: datetime,
        end: datetime,
        columns: Sequence[str] | None = None,
        *,
        equal: Mapping[str, Any] | None = None,
    ) -> pd.DataFrame:
        """The rows of ``table_name`` whose time column (its contract's) is in [start, end): ``columns``
        of them (all by default), only those whose columns equal ``equal``'s values."""
        table = self.table(table_name)
        contract = contract_of(table_name)
        if contract is None:
            raise WarehouseError(f"{table_name} has no windows to read")
        low, high = contract.time_bounds(to_naive_utc(start), to_naive_utc(end))
        column = table.c[contract.time_column]
        stmt = sa.select(*(table.c[c] for c in columns or table.columns.keys())).where(column >= low, column < high)
        for name, value in (equal or {}).items():
            stmt = stmt.where(table.c[name] == value)
        return self.read_frame(stmt)

    def present_values(self, table_name: str, column: str, values: Sequence[Any], chunk: int = 500) -> set[Any]:
        """Which of ``values`` the column ``column`` of ``table_name`` holds (read ``chunk`` values a query)."""
        table = self.table(table_name)
        found: set[Any] = set()
        with self.engine.connect() as conn:
            for offset in range(0, len(values), chunk):
                wanted = list(values[offset : offset + chunk])
                found.update(v for (v,) in conn.execute(sa.select(table.c[column]).where(table.c[column].in_(wanted))))
        return found

    def committed_windows(self, asset: str, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """The ``partition_log`` rows of ``asset`` (optionally within [start, end))."""
        stmt = sa.select(partition_log).where(partition_log.c.asset == asset)
        if start is not None:
            stmt = stmt.where(partition_log.c.window_start >= to_naive_utc(start))
        if end is not None:
            stmt = stmt.where(partition_log.c.window_start < to_naive_utc(end))
        return self.read_frame(stmt.order_by(partition_log.c.window_start))

    def uncommitted_windows(
        self, asset: str, start: datetime, end: datetime, window: timedelta = WINDOW
    ) -> list[datetime]:
        """The windows of [start, end) that ``partition_log`` holds no row of ``asset`` for, oldest first."""
        committed = self.committed_windows(asset, start, end)
        return absent_windows(committed["window_start"] if len(committed) else (), start, end, window)

    def latest_committed(self, asset: str) -> datetime | None:
        """The start of the latest committed window of ``asset``, or None."""
        return self._committed_bound(sa.func.max, asset)

    def first_committed(self, asset: str) -> datetime | None:
        """The start of the first committed window of ``asset``, or None."""
        return self._committed_bound(sa.func.min, asset)

    def _committed_bound(self, bound: Callable[..., sa.ColumnElement], asset: str) -> datetime | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(bound(partition_log.c.window_start)).where(partition_log.c.asset == asset)
            ).scalar()

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))


def _typed(frame: pd.DataFrame, statement: sa.Executable) -> pd.DataFrame:
    """Give numeric and datetime columns their dtypes even when every value is NULL."""
    declared = {c.key: c.type for c in getattr(statement, "selected_columns", [])}
    for name in frame.columns:
        column_type = declared.get(name)
        if isinstance(column_type, sa.Float) or (
            column_type is None and frame[name].dtype == object and frame[name].map(type).isin([float, int]).any()
        ):
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
        elif isinstance(column_type, sa.DateTime) or (
            frame[name].dtype == object and frame[name].map(lambda v: type(v) is datetime).any()
        ):
            frame[name] = pd.to_datetime(frame[name])
    return frame


def _create_mysql_database(engine: Engine) -> None:
    name = engine.url.database
    if not name:
        return
    url = engine.url
    server_url = sa.engine.URL.create(url.drivername, url.username, url.password, url.host, url.port, query=url.query)
    server = sa.create_engine(server_url, poolclass=sa.pool.NullPool)
    try:
        with server.connect() as conn:
            quoted = conn.dialect.identifier_preparer.quote(name)
            conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS {quoted} CHARACTER SET utf8mb4")
    finally:
        server.dispose()


def _is_date_only(column_type: sa.types.TypeEngine) -> bool:
    """Whether a column holds dates without a time of day."""
    return isinstance(column_type, sa.Date) and not isinstance(column_type, sa.DateTime)


# LOAD DATA's escapes (ESCAPED BY '\\'), the escape character itself first.
_TSV_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


def tsv_table(table: sa.Table, frame: pd.DataFrame, columns: Sequence[str]) -> pa.Table:
    """``frame`` as LOAD DATA input: times as text, NULL for missing or non-finite numbers, text escaped.

    Every column is converted by Arrow's kernels (a cast renders times, ``replace_substring``
    escapes text), with no Python loop over the rows: this conversion is most of the client's
    share of a bulk load.
    """

    arrays = {}
    for name in columns:
        column_type = table.c[name].type
        series = frame[name]
        if isinstance(column_type, (sa.DateTime, sa.Date)) or pd.api.types.is_datetime64_any_dtype(series):
            times = pa.array(naive_utc_times(series).to_numpy(dtype="datetime64[us]"))
            if _is_date_only(column_type):
                times = pc.cast(times, pa.date32())
            arrays[name] = pc.cast(times, pa.string())  # "YYYY-MM-DD[ HH:MM:SS.ffffff]"
        elif isinstance(column_type, (sa.Float, sa.Integer)):
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            arrays[name] = pa.array(values, mask=~np.isfinite(values))
        else:
            # astype("string") renders non-text values (numbers, booleans) as str() does, keeping missing ones missing.
            text = pa.array(series.astype("string"), type=pa.string(), from_pandas=True)
            for char, escaped in _TSV_ESCAPES:
                text = pc.replace_substring(text, char, escaped)
            arrays[name] = text
    return pa.table(arrays)


def _release_lock(table_name: str):
    def release(conn: Connection) -> None:
        try:
            conn.exec_driver_sql("SELECT RELEASE_LOCK(%s)", (f"crypto_write:{table_name}",))
        except Exception:  # the connection is gone: the server released the lock with it
            log.debug("RELEASE_LOCK failed for %s", table_name, exc_info=True)

    return release


def _pandas_freq(step: timedelta) -> str:
    return f"{int(step.total_seconds())}s"


def _make_engine(url: str, echo: bool = False) -> Engine:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, echo=echo, connect_args={"timeout": 60, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        return engine
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() in ("mysql", "mariadb"):
        connect_args = {
            "connect_timeout": 10,
            "read_timeout": 600,
            "write_timeout": 600,
            "charset": "utf8mb4",
            "local_infile": True,
        }
        return sa.create_engine(
            url,
            echo=echo,
            pool_pre_ping=True,
            pool_recycle=1800,
            isolation_level="READ COMMITTED",
            connect_args=connect_args,
        )
    return sa.create_engine(url, echo=echo, pool_pre_ping=True)


_WAREHOUSES: dict[str, Warehouse] = {}
_WAREHOUSES_LOCK = threading.Lock()


def get_warehouse(url: str) -> Warehouse:
    """The process-wide :class:`Warehouse` for ``url`` (one engine and pool a database)."""
    with _WAREHOUSES_LOCK:
        wh = _WAREHOUSES.get(url)
        if wh is None:
            wh = _WAREHOUSES[url] = Warehouse(url)
        return wh


def dispose_warehouse(url: str) -> None:
    """Close and forget the process-wide :class:`Warehouse` for ``url`` (after dropping its database)."""
    with _WAREHOUSES_LOCK:
        wh = _WAREHOUSES.pop(url, None)
    if wh is not None:
        wh.dispose()
