"""The features lake as the gateway reads it: ``as_of`` (time travel) and the lake files of a request.

The lake answers two reads, each from one Delta version and nothing else: ``/v1/features?as_of=``
(the version of that time, read here: :class:`LakeRows`) and ``/v1/features/files`` (the files of
the latest version up to its newest window, for a client that reads them itself:
:func:`file_listing`). Which windows and files a version holds comes from the Delta log (its add
actions' partition values and key statistics), never from the warehouse: no read compares the two
stores. Every other read, live ``/v1/features`` included, is the warehouse's (:mod:`api.reads`).

An ``as_of`` read scans the version's pyarrow dataset (delta-rs' ``to_pyarrow_dataset``) with the
requested columns, the days, times, symbols and cursor pushed down, and sends the rows in key order
(symbol, timestamp), a group of symbols at a time. :class:`LakeRows` has the reader interface
:func:`api.gateway.tabular` uses (``next_key``, ``batches``, ``read_table``), so pagination, row
limits, cursors and formats are those of every other route.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from deltalake import DeltaTable

from api.errors import ApiError
from api.key_order import in_key_order
from api.reads import ReadPlan
from resources.storage.lake import (
    DATE_COLUMN,
    TIME_COLUMN,
    TIME_TYPE,
    AsOfBeforeLake,
    AsOfExpired,
    AsOfInFuture,
    FeatureLake,
    LakeError,
    NoLakeTable,
    range_filter,
)
from resources.storage.warehouse import to_naive_utc
from resources.storage.windows import WINDOW

log = logging.getLogger(__name__)

# The status of each as_of refusal. 404 when there is nothing at that time and never was (no lake
# table, or a lake created after as_of); 410 when the version existed and was vacuumed (retention).
_AS_OF_STATUS: dict[type[LakeError], int] = {AsOfInFuture: 400, NoLakeTable: 404, AsOfBeforeLake: 404, AsOfExpired: 410}

# Values a merge group holds (symbols are grouped until their rows x columns reach it): about
# 512 MB of doubles, twice that while a group is sorted.
GROUP_CELLS = 64_000_000
# Commits of the Delta log searched for the latest lake write (maintenance commits carry no run id).
HISTORY_SEARCHED = 50


@dataclass(frozen=True)
class LakeFile:
    """One data file of a version, as its add action describes it: its path (relative to the
    table's root), size, day (partition) and key statistics (None where the log has none)."""

    path: str
    size: int
    day: date
    symbols: tuple[str | None, str | None]
    times: tuple[datetime | None, datetime | None]

    def may_hold(self, start: datetime, end: datetime, symbols: Sequence[str] | None) -> bool:
        """Whether the file may hold rows of [start, end) of ``symbols`` (None: any symbol)."""
        if not start.date() <= self.day <= (end - timedelta(microseconds=1)).date():
            return False
        low, high = self.times
        if low is not None and high is not None and (low >= end or high + timedelta(milliseconds=1) < start):
            return False  # Delta keeps times in ms: the maximum is widened by 1 ms
        first, last = self.symbols
        if symbols is None or first is None or last is None:
            return True
        return any(first <= symbol <= last for symbol in symbols)


@dataclass(frozen=True)
class Snapshot:
    """A version of the lake table as the gateway reads it.

    ``plain``: its files are plain Parquet (no deletion vectors, no column mapping), so a reader
    may read them itself (``/v1/features/files``); ``newest``: the start of the newest window it
    holds (from its files' statistics; None when empty)."""

    dataset: pads.Dataset
    files: tuple[LakeFile, ...]
    plain: bool
    version: int
    newest: datetime | None
    rows: int


def snapshot_of(table: DeltaTable) -> Snapshot:
    """The snapshot of ``table`` at its loaded version, from its add actions."""
    actions = pa.table(table.get_add_actions(flatten=True))

    def column(name: str) -> list[Any]:
        return actions[name].to_pylist() if name in actions.column_names else [None] * actions.num_rows

    times = [
        (None if low is None else to_naive_utc(low), None if high is None else to_naive_utc(high))
        for low, high in zip(column(f"min.{TIME_COLUMN}"), column(f"max.{TIME_COLUMN}"))
    ]
    files = tuple(
        LakeFile(path, size, day, symbols, span)
        for path, size, day, symbols, span in zip(
            column("path"),
            column("size_bytes"),
            column(f"partition.{DATE_COLUMN}"),
            zip(column("min.symbol"), column("max.symbol")),
            times,
        )
    )
    highs = [high for _, high in times if high is not None]
    # Delta keeps times in ms: the newest window's start is the newest time to the minute.
    newest = max(highs).replace(second=0, microsecond=0) if highs else None
    return Snapshot(
        dataset=table.to_pyarrow_dataset(),
        files=files,
        plain=not table.protocol().reader_features,  # deletion vectors, column mapping: delta-rs' reader only
        version=table.version(),
        newest=newest,
        rows=int(pc.sum(actions["num_records"]).as_py() or 0) if actions.num_rows else 0,
    )


class LakeCommit(NamedTuple):
    """The lake's latest write as ``/v1/freshness`` lists an asset (the fields of a ``partition_log`` row)."""

    window_start: datetime
    row_count: int
    run_id: str | None
    code_version: str | None
    committed_at: datetime


class LakeView:
    """The gateway's handle on the lake table: opened once, refreshed at most every ``ttl_s``."""

    def __init__(self, lake: FeatureLake, ttl_s: float = 1.0):
        self.lake = lake
        self.ttl_s = ttl_s
        self._table: DeltaTable | None = None
        self._snapshot: Snapshot | None = None
        self._seen = 0.0
        self._lock = threading.Lock()
        self._freshness: tuple[int, tuple[LakeCommit, int, int] | None] = (-1, None)

    def latest(self) -> Snapshot | None:
        """The snapshot of the table's latest version (refreshed when older than ``ttl_s``), or None
        while there is no lake table or it cannot be read."""
        with self._lock:
            if self._table is None or time.monotonic() - self._seen > self.ttl_s:
                try:
                    if self._table is None:
                        self._table = self.lake.table()
                    else:
                        self._table.update_incremental()
                    if self._snapshot is None or self._table.version() != self._snapshot.version:
                        self._snapshot = snapshot_of(self._table)
                except LakeError:
                    self._table = self._snapshot = None
                except Exception as exc:  # storage unreachable: the files route answers "not direct"
                    log.warning("lake at %s cannot be read (%s)", self.lake.uri, exc)
                    self._table = self._snapshot = None
                self._seen = time.monotonic()
            return self._snapshot

    def as_of(self, when: datetime) -> Snapshot:
        """The snapshot of the version the lake had at ``when``; refused as :data:`_AS_OF_STATUS` says."""
        try:
            table = self.lake.table_as_of(when)
        except tuple(_AS_OF_STATUS) as exc:
            raise ApiError(_AS_OF_STATUS[type(exc)], str(exc), parameter="as_of") from None
        return snapshot_of(table)

    def freshness(self) -> tuple[LakeCommit, int, int] | None:
        """The lake's latest write, its windows and its rows, from the Delta log and the files' times
        (read once a version); None while the lake holds nothing."""
        snapshot = self.latest()
        if snapshot is None or snapshot.newest is None:
            return None
        version, known = self._freshness
        if version == snapshot.version:
            return known
        with self._lock:
            table = self._table
            history = table.history(HISTORY_SEARCHED) if table is not None else []
        written = next((entry for entry in history if "crypto.run_id" in entry), None)
        stamps = pc.value_counts(snapshot.dataset.to_table(columns=[TIME_COLUMN])[TIME_COLUMN])
        newest = pa.scalar(snapshot.newest.replace(tzinfo=UTC), TIME_TYPE)
        at_newest = pc.sum(pc.if_else(pc.equal(stamps.field("values"), newest), stamps.field("counts"), 0)).as_py()
        committed = datetime.fromtimestamp(int(written["timestamp"]) / 1000, tz=UTC) if written else None
        commit = LakeCommit(
            snapshot.newest,
            int(at_newest or 0),
            written["crypto.run_id"] if written else None,
            None,
            committed.replace(tzinfo=None) if committed else snapshot.newest,
        )
        known = (commit, len(stamps), snapshot.rows)
        self._freshness = (snapshot.version, known)
        return known


def _key_bound(cursor: Sequence[Any] | None, stop: Sequence[Any] | None) -> pc.Expression | None:
    """Rows with key >= ``cursor`` and < ``stop`` in (symbol, timestamp) order."""
    symbol, stamp = pc.field("symbol"), pc.field(TIME_COLUMN)
    bounds = []
    if cursor is not None:
        at = pa.scalar(cursor[1], TIME_TYPE)
        bounds.append((symbol > cursor[0]) | ((symbol == cursor[0]) & (stamp >= at)))
    if stop is not None:
        at = pa.scalar(stop[1], TIME_TYPE)
        bounds.append((symbol < stop[0]) | ((symbol == stop[0]) & (stamp < at)))
    if not bounds:
        return None
    return bounds[0] if len(bounds) == 1 else bounds[0] & bounds[1]


class LakeRows:
    """The rows of a features plan in [start, end) from one lake snapshot (an ``as_of`` read, a listing's files).

    ``every_symbol``: the plan asks for every symbol the lake can hold, so no symbol filter is needed."""

    def __init__(self, plan: ReadPlan, snapshot: Snapshot, start: datetime, end: datetime, *, every_symbol: bool):
        self.plan = plan
        self.snapshot = snapshot
        self.windows = int((end - start) / WINDOW)
        self.symbols = tuple(sorted(plan.symbols or ()))
        self.columns = [o.name for o in plan.outputs]
        self.every_symbol = every_symbol
        self._range = (start, end)

    def files(self) -> list[tuple[str, int]]:
        """The files (path relative to the table's root, size in bytes) the rows may be in: those
        their days, times and symbols may select."""
        if not self.symbols:
            return []
        symbols = None if self.every_symbol else self.symbols
        return [(f.path, f.size) for f in self.snapshot.files if f.may_hold(*self._range, symbols)]

    def _read(
        self,
        columns: list[str],
        symbols: Sequence[str] | None,
        cursor: Sequence[Any] | None,
        stop: Sequence[Any] | None,
    ) -> pa.Table:
        rows = range_filter(*self._range)
        wanted = self.symbols if symbols is None else symbols
        if not (self.every_symbol and len(wanted) == len(self.symbols)):
            rows = rows & pc.field("symbol").isin(list(wanted))
        bound = _key_bound(cursor, stop)
        if bound is not None:
            rows = rows & bound
        table = self.snapshot.dataset.to_table(columns=columns, filter=rows)
        schema = pa.schema([self.plan.schema.field(name) for name in columns])
        return pa.Table.from_arrays([table[name] for name in columns], schema=schema)

    # ------------------------------------------------------------------ the reader interface
    def next_key(self, plan: ReadPlan, cursor: Sequence[Any] | None, limit: int) -> list[Any] | None:
        """The key of the row after the first ``limit`` rows from ``cursor``, or None.

        No scan when the range cannot hold more than ``limit`` rows (at most one row a symbol and
        window); otherwise the keys are read (two columns) and counted.
        """
        if not self.symbols or self.windows * len(self.symbols) <= limit:
            return None
        names = [k.name for k in plan.keys]
        keys = self._read(names, None, cursor, None)
        if keys.num_rows <= limit:
            return None
        ordered = pa.Table.from_batches(list(in_key_order(keys, 1 << 20)), schema=keys.schema)
        return [ordered["symbol"][limit].as_py(), to_naive_utc(ordered[TIME_COLUMN][limit].as_py())]

    def batches(
        self, plan: ReadPlan, cursor: Sequence[Any] | None, stop: Sequence[Any] | None, batch_rows: int = 65_536
    ) -> Iterator[pa.RecordBatch]:
        """The rows from ``cursor`` to ``stop`` in key order, a group of symbols at a time (symbols
        after the cursor's, up to the stop's; a group's size reckoned at one row a window)."""
        symbols = [s for s in self.symbols if (cursor is None or s >= cursor[0]) and (stop is None or s <= stop[0])]
        per_group = max(1, GROUP_CELLS // max(1, self.windows * len(self.columns)))
        for offset in range(0, len(symbols), per_group):
            group = self._read(self.columns, symbols[offset : offset + per_group], cursor, stop)
            yield from in_key_order(group, batch_rows)

    def read_table(
        self, plan: ReadPlan, cursor: Sequence[Any] | None = None, stop: Sequence[Any] | None = None
    ) -> pa.Table:
        """All rows from ``cursor`` to ``stop`` in one table (a JSON page)."""
        return pa.Table.from_batches(list(self.batches(plan, cursor, stop)), schema=plan.schema)


def file_listing(
    view: LakeView,
    plan: ReadPlan,
    start: datetime,
    end: datetime,
    data_as_of: datetime | None,
    as_of: datetime | None,
    *,
    every_symbol: bool,
) -> dict[str, Any]:
    """The ``/v1/features/files`` answer: the files of one lake version that hold the request's rows
    (``as_of``: the version of then; else the latest, up to its newest window), the rows to keep of
    them (``lake_ranges``, ``symbols``) and the range after the lake's newest window, to read through
    ``/v1/features`` (``rest_ranges``: the windows committed since the last lake write). Where the
    files may not be read directly (no lake, none of the range in it, files that are not plain
    Parquet), ``direct: false`` and the whole range is to be read through ``/v1/features``."""
    snapshot = view.as_of(as_of) if as_of is not None else view.latest()
    body: dict[str, Any] = {
        "direct": False,
        "as_of": snapshot.newest if as_of is not None and snapshot is not None else data_as_of,
        "lake_version": snapshot.version if snapshot is not None else None,
        # A local table by its absolute path: the client opens it from its own working directory.
        "table_uri": os.path.abspath(view.lake.uri.removeprefix("file://")) if view.lake.is_local else view.lake.uri,
        "columns": plan.schema.names,
        "arrow_schema": base64.b64encode(plan.schema.serialize().to_pybytes()).decode(),
        "symbols": None,
        "lake_ranges": [],
        "rest_ranges": [{"start": start, "end": end}],
        "files": [],
    }
    if snapshot is None or snapshot.newest is None or not snapshot.plain:
        return body
    lake_end = end if as_of is not None else min(end, snapshot.newest + WINDOW)
    if lake_end <= start:
        return body
    rows = LakeRows(plan, snapshot, start, lake_end, every_symbol=every_symbol)
    body.update(
        direct=True,
        symbols=None if every_symbol else list(rows.symbols),
        lake_ranges=[{"start": start, "end": lake_end}],
        rest_ranges=[{"start": lake_end, "end": end}] if lake_end < end else [],
        files=[{"path": path, "size_bytes": size} for path, size in rows.files()],
    )
    return body
