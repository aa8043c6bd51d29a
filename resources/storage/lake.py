"""The Delta Lake copy of the committed features: writes, time travel and nightly maintenance.

``ml_features_materialized`` stays the system of record in the warehouse; the lake is a columnar
copy of its *committed* windows for fast reads (the gateway's ``/v1/features``, DuckDB, Polars,
Spark). Layout: one Delta table ``<CRYPTO_LAKE_URI>/ml_features`` partitioned by ``date`` (the
UTC day of ``timestamp``), with the warehouse table's columns (``symbol``, ``timestamp`` as
``timestamp[us, UTC]``, ``price``, every catalogued feature, ``feature_set_version``).

* :meth:`FeatureLake.sync` copies a window range from the warehouse: it reads the committed
  rows back from the warehouse (never from memory of the upstream step), replaces the range in
  one Delta commit (a predicate overwrite, so the lake never holds two copies of a key), and
  records in that commit's ``custom_metadata`` which warehouse commit
  (``partition_log.committed_at``) each window's rows come from. Writers of the lake serialise on
  a warehouse lock, and read ``partition_log`` before and after the rows, so a commit never names
  a warehouse commit whose rows it does not hold.
  A catalog with new features adds their columns to an existing lake (Delta schema evolution);
  rows written before read them as null.
* :meth:`FeatureLake.windows` answers which windows the lake holds and at which warehouse commit
  from the Delta log itself, newest commit first and only as far back as the range needs: the
  lake's log is its ledger (the gap sensor and the ``lake_matches_warehouse`` check read it).
* Concurrent writers on S3: deltalake 1.x commits with S3 conditional writes (``If-None-Match``),
  so no locking provider and no ``AWS_S3_ALLOW_UNSAFE_RENAME`` are needed; a commit that loses a
  race fails with ``CommitFailedError`` and nothing of it is visible.
* :meth:`FeatureLake.maintain` (nightly): rewrites each day with more than one file (the 5-minute
  appends and heals) as one file in ``symbol, timestamp`` order, vacuums files removed more than the
  retention ago and drops expired log entries; versions stay readable (``as_of``) for
  ``CRYPTO_LAKE_RETENTION_DAYS``.

No Dagster import: the gateway uses this module too.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from deltalake import ColumnProperties, CommitProperties, DeltaTable, WriterProperties, write_deltalake

from resources.config.settings import Settings
from resources.storage.schema import FEATURES, partition_log
from resources.storage.warehouse import Warehouse, to_naive_utc, utc_now
from resources.storage.windows import window_starts

log = logging.getLogger(__name__)

LAKE_TABLE = "ml_features"
#: The Dagster asset that writes the lake (crypto_assets/features/lake_asset.py).
LAKE_ASSET = "ml_features_lake"
DATE_COLUMN = "date"
#: The ``custom_metadata`` key of a sync commit holding ``{window: [warehouse committed_at, rows]}``.
COMMITS_KEY = "crypto.commits"
#: The columns of :meth:`FeatureLake.windows`.
WINDOW_COLUMNS = ["window_start", "committed_at", "row_count", "lake_version", "written_at"]
TIME_COLUMN = FEATURES.time_column
TIME_TYPE = pa.timestamp("us", tz="UTC")
#: The key columns: the only ones with statistics (Parquet footers and the Delta log), for file
#: and row-group pruning by symbol and time.
KEY_COLUMNS = ("symbol", TIME_COLUMN)
# Row groups small enough that a symbol filter skips most of a day's file (in key order); snappy, as
# feature doubles compress little and snappy decodes faster than zstd. The
# feature doubles have neither dictionaries (real-valued features repeat rarely: the dictionary
# page fills, the writer falls back to plain and the file holds both) nor statistics (no read
# filters on them): smaller files and footers, faster reads of the full catalog and faster writes
# (benchmarks/bench_lake_read.py; the figures in docs/benchmarks.md).
WRITER = WriterProperties(
    compression="SNAPPY",
    max_row_group_size=8192,
    default_column_properties=ColumnProperties(dictionary_enabled=False, statistics_enabled="NONE"),
    column_properties={
        "symbol": ColumnProperties(dictionary_enabled=True, statistics_enabled="CHUNK"),
        TIME_COLUMN: ColumnProperties(dictionary_enabled=False, statistics_enabled="CHUNK"),
        "feature_set_version": ColumnProperties(dictionary_enabled=True, statistics_enabled="NONE"),
    },
)


class LakeError(RuntimeError):
    """The lake cannot do what was asked (a time outside the kept versions, no table yet)."""


class NoLakeTable(LakeError):
    """There is no lake table yet: the first ``ml_features_lake`` run creates it."""


class AsOfInFuture(LakeError):
    """``as_of`` is later than now."""


class AsOfBeforeLake(LakeError):
    """``as_of`` is before the lake's first version: the lake did not exist yet."""


class AsOfExpired(LakeError):
    """``as_of`` is before the retention (``CRYPTO_LAKE_RETENTION_DAYS``): its version was vacuumed."""


@dataclass(frozen=True)
class LakeWrite:
    """What one :meth:`FeatureLake.sync` did."""

    rows: int
    windows: int
    windows_logged: int
    version: int
    read_seconds: float
    write_seconds: float
    seconds: float


def lake_schema(table: sa.Table) -> pa.Schema:
    """The lake's Arrow schema for the warehouse features table, plus the ``date`` partition column."""
    fields = []
    for column in table.columns:
        if column.name == TIME_COLUMN:
            fields.append(pa.field(column.name, TIME_TYPE, nullable=False))
        elif isinstance(column.type, sa.Float):
            fields.append(pa.field(column.name, pa.float64()))
        else:
            fields.append(pa.field(column.name, pa.string(), nullable=bool(column.nullable)))
    return pa.schema([*fields, pa.field(DATE_COLUMN, pa.date32(), nullable=False)])


def to_lake_table(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """Warehouse rows (Arrow, as connectorx or pandas give them) in the lake's schema: times as
    ``timestamp[us, UTC]``, NaN (SQLite's NULL in a float frame) as null, the ``date`` column added."""
    stamps = data[TIME_COLUMN]
    if not pa.types.is_timestamp(stamps.type):  # date64 (connectorx's DATETIME)
        stamps = pc.cast(pc.cast(stamps, pa.int64()), pa.timestamp("ms"))
    stamps = pc.cast(stamps, pa.timestamp("us", tz=stamps.type.tz)) if pa.types.is_timestamp(stamps.type) else stamps
    stamps = pc.cast(stamps, TIME_TYPE) if stamps.type.tz is None else stamps
    arrays = []
    for spec in schema:
        if spec.name == TIME_COLUMN:
            arrays.append(stamps)
        elif spec.name == DATE_COLUMN:
            arrays.append(pc.cast(pc.cast(stamps, pa.timestamp("us")), pa.date32()))
        elif pa.types.is_floating(spec.type):
            values = pc.cast(data[spec.name], pa.float64())
            arrays.append(pc.if_else(pc.is_nan(values), pa.scalar(None, pa.float64()), values))
        else:
            arrays.append(pc.cast(data[spec.name], pa.string()))
    return pa.Table.from_arrays(arrays, schema=schema)


def _literal(value: datetime) -> str:
    return f"'{value.strftime('%Y-%m-%dT%H:%M:%S.%f')}Z'"


def range_predicate(start: datetime, end: datetime) -> str:
    """The Delta predicate of the window range [start, end): the days (partition pruning), then the times."""
    last_day = (end - timedelta(microseconds=1)).date()
    return (
        f"{DATE_COLUMN} >= '{start.date().isoformat()}' AND {DATE_COLUMN} <= '{last_day.isoformat()}' "
        f"AND {TIME_COLUMN} >= {_literal(start)} AND {TIME_COLUMN} < {_literal(end)}"
    )


def range_filter(start: datetime, end: datetime) -> pc.Expression:
    """The pyarrow filter of [start, end) (naive UTC): the days first (partition pruning), then the times."""
    last_day = (end - timedelta(microseconds=1)).date()
    return (
        (pc.field(DATE_COLUMN) >= pa.scalar(start.date(), pa.date32()))
        & (pc.field(DATE_COLUMN) <= pa.scalar(last_day, pa.date32()))
        & (pc.field(TIME_COLUMN) >= pa.scalar(start, TIME_TYPE))
        & (pc.field(TIME_COLUMN) < pa.scalar(end, TIME_TYPE))
    )


class FeatureLake:
    """The features table of a lake root (a local directory or ``s3://bucket/prefix``)."""

    def __init__(self, root: str, storage_options: Mapping[str, str] | None = None, *, retention_days: int = 30):
        self.root = root.rstrip("/")
        self.uri = f"{self.root}/{LAKE_TABLE}"
        self.storage_options = dict(storage_options or {})
        self.retention_days = retention_days

    @classmethod
    def from_settings(cls, settings: Settings) -> FeatureLake:
        """The lake of ``CRYPTO_LAKE_URI`` (``$CRYPTO_HOME/lake`` by default) with its S3 settings."""
        return cls(settings.lake_location, dict(settings.lake_storage), retention_days=settings.lake_retention_days)

    @property
    def is_local(self) -> bool:
        return "://" not in self.root or self.root.startswith("file://")

    # ------------------------------------------------------------------ reading
    def exists(self) -> bool:
        """Whether the table has been created (its first write has committed)."""
        return DeltaTable.is_deltatable(self.uri, storage_options=self.storage_options or None)

    def table(self, version: int | None = None) -> DeltaTable:
        """The table at its latest version, or at ``version``; :class:`LakeError` when there is none yet."""
        if not self.exists():
            raise NoLakeTable(f"no lake table at {self.uri} yet: it is created by the first ml_features_lake run")
        return DeltaTable(self.uri, version=version, storage_options=self.storage_options or None)

    def first_version_at(self, table: DeltaTable) -> datetime | None:
        """When version 0 was written (naive UTC); None once its log entry has been cleaned up."""
        first = [int(entry["timestamp"]) for entry in table.history() if int(entry.get("version", -1)) == 0]
        return datetime.fromtimestamp(first[0] / 1000, tz=UTC).replace(tzinfo=None) if first else None

    def oldest_readable(self, table: DeltaTable, now: datetime | None = None) -> datetime:
        """The earliest time ``as_of`` may name (naive UTC): the table's oldest commit in its log, or the
        start of the retention (``CRYPTO_LAKE_RETENTION_DAYS``) when that is later."""
        first = min(int(entry["timestamp"]) for entry in table.history())
        oldest = datetime.fromtimestamp(first / 1000, tz=UTC).replace(tzinfo=None)
        return max(oldest, (now or utc_now()) - timedelta(days=self.retention_days))

    def table_as_of(self, as_of: datetime, now: datetime | None = None) -> DeltaTable:
        """The table as it was at ``as_of`` (naive UTC, Delta time travel).

        Raises :class:`AsOfInFuture`, :class:`NoLakeTable`, :class:`AsOfBeforeLake` (``as_of`` before
        the first version: the lake did not exist then) or :class:`AsOfExpired` (its version is
        past the retention)."""
        now = now or utc_now()
        if as_of > now:
            raise AsOfInFuture(
                f"as_of={as_of.isoformat()}Z is in the future (now {now.isoformat(timespec='seconds')}Z): "
                "use a past time"
            )
        table = self.table()
        first = self.first_version_at(table)
        if first is not None and as_of < first:
            raise AsOfBeforeLake(
                f"as_of={as_of.isoformat()}Z is before the lake's first version, written at "
                f"{first.isoformat(timespec='seconds')}Z: the lake did not exist yet; use a time after it"
            )
        oldest = self.oldest_readable(table, now)
        if as_of < oldest:
            raise AsOfExpired(
                f"as_of={as_of.isoformat()}Z is before the oldest version the lake keeps "
                f"({oldest.isoformat(timespec='seconds')}Z; versions are kept "
                f"{self.retention_days} days, CRYPTO_LAKE_RETENTION_DAYS): use a time after it"
            )
        table.load_as_version(as_of.replace(tzinfo=UTC))
        return table

    # ------------------------------------------------------------------ writing
    def sync(self, wh: Warehouse, start: datetime, end: datetime, run_id: str) -> LakeWrite:
        """Make the lake hold exactly the committed warehouse rows of [start, end), in one Delta commit
        that records each window's warehouse commit."""
        start, end = to_naive_utc(start), to_naive_utc(end)
        began = time.perf_counter()
        features = wh.table(FEATURES.name)
        with wh.named_lock(f"lake:{LAKE_TABLE}"):
            before = _commits(wh, start, end)
            rows = read_committed(wh, features, start, end)
            after = _commits(wh, start, end)
            read_seconds = time.perf_counter() - began
            data = to_lake_table(rows, lake_schema(features))
            # A window re-committed while its rows were read is left out of the commit's record:
            # it stays behind until the next sync of it.
            counts = _rows_per_window(data)
            stable = {w: c for w, c in after.items() if before.get(w) == c}
            record = {w.isoformat(): [c.isoformat(), int(counts.get(w, 0))] for w, c in sorted(stable.items())}
            written = time.perf_counter()
            write_deltalake(
                self.uri,
                data,
                mode="overwrite",
                predicate=range_predicate(start, end),
                # a feature added to the catalog becomes a column of the existing table (older rows: null)
                schema_mode="merge",
                partition_by=[DATE_COLUMN],
                storage_options=self.storage_options or None,
                configuration=self._configuration(),
                writer_properties=WRITER,
                commit_properties=CommitProperties(
                    custom_metadata={
                        "crypto.window_start": start.isoformat(),
                        "crypto.window_end": end.isoformat(),
                        "crypto.run_id": run_id,
                        "crypto.rows": str(data.num_rows),
                        COMMITS_KEY: json.dumps(record, separators=(",", ":")),
                    }
                ),
            )
            version = self.table().version()
            write_seconds = time.perf_counter() - written
        return LakeWrite(
            data.num_rows, len(after), len(stable), version, read_seconds, write_seconds, time.perf_counter() - began
        )

    def windows(self, start: datetime, end: datetime) -> pd.DataFrame:
        """The windows of [start, end) the lake holds, from its Delta log: ``window_start``, the warehouse
        ``committed_at`` its rows were copied at, ``row_count``, the ``lake_version`` that wrote them and
        when (``written_at``), by window.

        The newest sync commit whose range holds a window decides: it copied the window's committed
        rows, or left the window out (not committed, or re-committed while read). The log is read
        newest first, only as far back as the range needs; a window last written before the log's
        retention (``CRYPTO_LAKE_RETENTION_DAYS``) counts as absent."""
        start, end = to_naive_utc(start), to_naive_utc(end)
        todo = set(window_starts(start, end, FEATURES.window))
        rows: list[tuple[datetime, datetime, int, int, datetime]] = []
        table = self.table() if todo and self.exists() else None
        seen, limit = 0, min(len(todo), 1024) + 16  # enough where each window has its own commit (live runs)
        while table is not None and todo:
            history = table.history(limit)
            for entry in history[seen:]:
                if "crypto.window_start" not in entry:  # compaction, or a commit not of a sync
                    continue
                first = max(start, datetime.fromisoformat(entry["crypto.window_start"]))
                last = min(end, datetime.fromisoformat(entry["crypto.window_end"]))
                covered = todo.intersection(window_starts(first, last, FEATURES.window)) if first < last else set()
                if not covered:
                    continue
                todo -= covered
                record = json.loads(entry.get(COMMITS_KEY, "{}"))
                at = datetime.fromtimestamp(int(entry["timestamp"]) / 1000, tz=UTC).replace(tzinfo=None)
                for w in covered:
                    if w.isoformat() in record:
                        committed, count = record[w.isoformat()]
                        rows.append((w, datetime.fromisoformat(committed), count, int(entry["version"]), at))
            if len(history) < limit:
                break
            seen, limit = len(history), limit * 2
        return pd.DataFrame(sorted(rows), columns=WINDOW_COLUMNS)

    def _configuration(self) -> dict[str, str]:
        interval = f"interval {self.retention_days} days"
        return {
            "delta.deletedFileRetentionDuration": interval,
            "delta.logRetentionDuration": interval,
            # File statistics of the keys only: every reader turns each file's statistics into a
            # filter expression (pyarrow: one per column and file), and no read filters on a feature.
            "delta.dataSkippingStatsColumns": ",".join(KEY_COLUMNS),
        }

    # ------------------------------------------------------------------ maintenance
    def maintain(self, wh: Warehouse) -> dict[str, Any]:
        """Nightly: rewrite each day with several files as one file in key order, vacuum, checkpoint
        and drop expired log entries."""
        if not self.exists():
            return {"skipped": "no lake table yet"}
        began = time.perf_counter()
        with wh.named_lock(f"lake:{LAKE_TABLE}"):
            table = self.table()
            if table.metadata().configuration != {**table.metadata().configuration, **self._configuration()}:
                table.alter.set_table_properties(self._configuration())
            actions = pa.table(table.get_add_actions(flatten=True)).to_pandas()
            per_day = actions.groupby(f"partition.{DATE_COLUMN}").size() if len(actions) else pd.Series(dtype=int)
            days = sorted(_day_text(d) for d, n in per_day.items() if n > 1)
            for day in days:
                self._compact(table, day)
            table.update_incremental()
            vacuumed = table.vacuum(
                retention_hours=self.retention_days * 24, dry_run=False, enforce_retention_duration=False
            )
            table.create_checkpoint()
            table.cleanup_metadata()
            version = table.version()
        return {
            "days_compacted": len(days),
            "files_added": len(days),
            "files_removed": int(sum(per_day[d] for d in per_day.index if _day_text(d) in days)),
            "files_vacuumed": len(vacuumed),
            "version": version,
            "seconds": round(time.perf_counter() - began, 3),
        }

    def _compact(self, table: DeltaTable, day: str) -> None:
        """Replace ``day``'s files by one file of its rows in (symbol, timestamp) order, in one commit.

        Not delta-rs' Z-order: the key order is what a symbol filter prunes best (a row group holds
        a few symbols, not every symbol's share of an interval) and what the gateway streams
        without a sort (a symbol's rows of a day are one run). A predicate overwrite of the same
        rows, so a reader of any version sees the same rows (a WRITE commit, not an OPTIMIZE one).
        """
        rows = table.to_pyarrow_table(filters=pc.field(DATE_COLUMN) == pa.scalar(date.fromisoformat(day), pa.date32()))
        write_deltalake(
            table,
            rows.sort_by([("symbol", "ascending"), (TIME_COLUMN, "ascending")]),
            mode="overwrite",
            predicate=f"{DATE_COLUMN} = '{day}'",
            partition_by=[DATE_COLUMN],
            writer_properties=WRITER,
            commit_properties=CommitProperties(custom_metadata={"crypto.compacted": day}),
        )
        table.update_incremental()


def _day_text(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)[:10]


def _commits(wh: Warehouse, start: datetime, end: datetime) -> dict[datetime, datetime]:
    """``partition_log.committed_at`` of the features' committed windows in [start, end)."""
    committed = wh.committed_windows(FEATURES.name, start, end)
    return (
        {to_naive_utc(w): to_naive_utc(c) for w, c in zip(committed["window_start"], committed["committed_at"])}
        if len(committed)
        else {}
    )


def read_committed(wh: Warehouse, features: sa.Table, start: datetime, end: datetime) -> pa.Table:
    """The committed rows of [start, end) (their window is in ``partition_log``), in key order, as
    Arrow: through connectorx on MySQL/MariaDB, through SQLAlchemy elsewhere."""
    pl = partition_log
    stmt = (
        sa.select(*features.columns)
        .select_from(
            features.join(pl, sa.and_(pl.c.asset == FEATURES.name, pl.c.window_start == features.c[TIME_COLUMN]))
        )
        .where(features.c[TIME_COLUMN] >= start, features.c[TIME_COLUMN] < end)
        .order_by(features.c.symbol, features.c[TIME_COLUMN])
    )
    if wh.connectorx_url() is not None:
        return wh.read_connectorx(stmt, arrow=True)
    frame = wh.read_frame(stmt)
    if not len(frame):
        return pa.Table.from_pylist([], schema=lake_schema(features).remove(len(features.columns)))
    frame[TIME_COLUMN] = pd.to_datetime(frame[TIME_COLUMN])
    return pa.Table.from_pandas(frame, preserve_index=False)


def _rows_per_window(data: pa.Table) -> dict[datetime, int]:
    counts = pc.value_counts(pc.cast(data[TIME_COLUMN], pa.timestamp("us"))).to_pylist()
    return {c["values"]: c["counts"] for c in counts}
