"""``/v1/features`` from the Delta Lake copy: which windows the lake serves, and reading them.

For a request's range, :meth:`LakeView.coverage` compares ``partition_log`` with ``lake_log`` in
one query: a committed window is served from the lake while the lake holds its current commit
(``lake_log.committed_at == partition_log.committed_at``); every other committed window (the
live edge not copied yet, a window re-committed since its copy) is read from MySQL by the usual
plan. The lake part reads the files the days, times and symbols may select (:func:`scan`, with
each file's footer parsed once per process: :class:`Fragments`), the requested columns only.
Both parts share the plan's Arrow schema and are merged in key order (symbol, timestamp), a group
of symbols at a time, so memory stays bounded by the group, not by the range; the lake's rows,
in key order within each day's file, are sent as slices of what was read (no sort copy). ``as_of`` reads only the lake, at the version it had at that time (time travel).

:class:`FeatureSource` has the reader interface :func:`api.gateway.tabular` uses (``next_key``,
``batches``, ``read_table``), so pagination, row limits, cursors and formats are those of every
other route. The same plan answers ``/v1/features/files`` (:func:`file_listing`): the lake files
and ranges for a client that reads them itself (:mod:`api.lake_files`).
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import sqlalchemy as sa
from deltalake import DeltaTable
from deltalake.fs import DeltaStorageHandler

from api.errors import ApiError
from api.key_order import in_key_order
from api.reads import Plan, Reader
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
from resources.storage.schema import FEATURES, lake_log, partition_log
from resources.storage.warehouse import to_naive_utc
from resources.storage.windows import WINDOW

log = logging.getLogger(__name__)

# The status of each as_of refusal. 404 when there is nothing at that time and never was (no lake
# table, or a lake created after as_of); 410 when the version existed and was vacuumed (retention).
_AS_OF_STATUS: dict[type[LakeError], int] = {AsOfInFuture: 400, NoLakeTable: 404, AsOfBeforeLake: 404, AsOfExpired: 410}

HIT, PARTIAL, BEHIND, MISSING = "hit", "partial", "behind", "missing"
# Values a merge group holds (symbols are grouped until their rows x columns reach it): about
# 512 MB of doubles, twice that while a group is sorted. Each group is one scan of the lake, so
# fewer, larger groups read less (a day's file holds every symbol).
GROUP_CELLS = 64_000_000
# Files are decoded a column per thread from this many columns on (the full catalog: 1.3x here),
# on one thread below (ten columns: 1.2x faster, as the threads' start costs more than they save).
THREADED_COLUMNS = 64
# Up to this many time ranges are pushed down as ranges; more become one IN list of windows.
MAX_RANGES = 64


@dataclass(frozen=True)
class Coverage:
    """Which committed windows of a request the lake serves, and which MySQL does."""

    lake: tuple[tuple[datetime, datetime], ...]
    rest: tuple[tuple[datetime, datetime], ...]
    status: str
    version: int  # the newest Delta version that wrote one of the lake's windows (-1: none)


def runs(windows: np.ndarray) -> tuple[tuple[datetime, datetime], ...]:
    """Sorted window starts (datetime64) as maximal ranges [first, last + 5 min) of consecutive windows."""
    if not len(windows):
        return ()
    step = np.timedelta64(int(WINDOW.total_seconds()), "s")
    breaks = np.flatnonzero(np.diff(windows) != step) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(windows)]]) - 1
    return tuple((_datetime(windows[a]), _datetime(windows[b] + step)) for a, b in zip(starts, ends))


def _datetime(value: np.datetime64) -> datetime:
    return to_naive_utc(value.astype("datetime64[us]").astype(datetime))


# Reads of one file's column chunks coalesced into few requests (a day's file holds every column).
PARQUET = pads.ParquetFileFormat(default_fragment_scan_options=pads.ParquetFragmentScanOptions(pre_buffer=True))


def _guarantee(day: Any, stats: dict[str, tuple[Any, Any]]) -> pc.Expression:
    """What a file's partition value and Delta statistics say of its rows: its day, and the range of
    each key column that has statistics (Delta keeps times in ms: the maximum is widened by 1 ms)."""
    expression = pc.field(DATE_COLUMN) == pa.scalar(day, pa.date32())
    for column, (low, high) in stats.items():
        if low is None or high is None:
            continue
        if column == TIME_COLUMN:
            low, high = pa.scalar(low, TIME_TYPE), pa.scalar(high + timedelta(milliseconds=1), TIME_TYPE)
        expression = expression & (pc.field(column) >= low) & (pc.field(column) <= high)
    return expression


@dataclass(frozen=True)
class Snapshot:
    """A version of the lake table as the gateway reads it.

    ``plain``: its files are plain Parquet (no deletion vectors, no column mapping), so a reader
    may read them itself (``/v1/features/files``); ``sizes``: each file's size in bytes, by its
    path relative to the table's root."""

    dataset: pads.Dataset
    sizes: dict[str, int]
    plain: bool
    footers: Footers


# Files whose parsed footer the gateway keeps: a day of the universe's 313 columns takes about
# 1.6 MiB of memory parsed (0.55 MiB for a 10-symbol day), so about 100 MiB; a year's every day
# kept would be 590 MiB. A read of more files than this parses the rest again.
FOOTERS = 64


class Footers:
    """The fragments whose footer pyarrow has parsed, for at most ``size`` files, the least
    recently read dropped first.

    A snapshot's fragments only prune files by their day and statistics and never parse a footer
    (pyarrow keeps a parsed footer on its fragment for the fragment's life, and a snapshot holds
    every file of its version); a scan reads each file through the fragment kept here, so a
    footer is parsed once while its file is read often and memory stays bounded however many
    days the lake holds. Shared by the request threads."""

    def __init__(self, size: int = FOOTERS):
        self.size = size
        self._kept: OrderedDict[str, pads.Fragment] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._kept)

    def fragment(self, listed: pads.Fragment) -> pads.Fragment:
        """The kept fragment of ``listed``'s file (made, with the same guarantee, if not kept)."""
        with self._lock:
            kept = self._kept.get(listed.path)
            if kept is not None:
                self._kept.move_to_end(listed.path)
                return kept
            kept = PARQUET.make_fragment(
                listed.path, filesystem=listed.filesystem, partition_expression=listed.partition_expression
            )
            self._kept[listed.path] = kept
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
            return kept


class Fragments:
    """The Parquet fragments of a lake table's files, kept across versions.

    A Delta file never changes once written, so its fragment is made once and reused by every
    later version and request (its parsed footer is kept apart, for the most recently read files:
    :class:`Footers`); a new version only adds the fragments of its new files. Each fragment carries its day and its key statistics
    (``symbol``, ``timestamp``) as its guarantee, so filters skip files without opening them. This
    is :meth:`DeltaTable.to_pyarrow_dataset`'s dataset without its per-request cost (it makes every
    fragment anew, with an expression over the statistics of every column) and, on a local lake,
    with pyarrow's own file system in place of the Python one.
    """

    def __init__(self, lake: FeatureLake):
        self.lake = lake
        self._made: dict[str, pads.Fragment] = {}
        self.footers = Footers()
        self._local = (
            pafs.SubTreeFileSystem(os.path.abspath(lake.uri.removeprefix("file://")), pafs.LocalFileSystem())
            if lake.is_local
            else None
        )

    def snapshot(self, table: DeltaTable, *, keep: bool = True) -> Snapshot:
        """The table's snapshot (dataset, file sizes) at its loaded version; ``keep``: forget the fragments of files it no
        longer holds (False for an ``as_of`` version, whose files are read once)."""
        actions = pa.table(table.get_add_actions(flatten=True))
        paths = actions["path"].to_pylist()
        sizes = dict(zip(paths, actions["size_bytes"].to_pylist()))
        if table.protocol().reader_features:  # deletion vectors, column mapping: delta-rs' own checks and reader
            return Snapshot(table.to_pyarrow_dataset(), sizes, plain=False, footers=self.footers)
        schema = pa.schema(table.schema().to_arrow())
        filesystem = self._local or pafs.PyFileSystem(
            DeltaStorageHandler(self.lake.uri, self.lake.storage_options or None, sizes)
        )
        days = actions[f"partition.{DATE_COLUMN}"].to_pylist()
        stats = {
            column: tuple(
                actions[name].to_pylist() if name in actions.column_names else [None] * len(paths)
                for name in (f"min.{column}", f"max.{column}")
            )
            for column in ("symbol", TIME_COLUMN)
        }
        # In time order (by day, then first time), so rows come out of a scan the way the merge
        # into key order copies fastest (a symbol's rows of consecutive days in consecutive runs).
        lows = stats[TIME_COLUMN][0]
        first = sorted(range(len(paths)), key=lambda i: (days[i], lows[i] is not None, lows[i] or 0, paths[i]))
        fragments = []
        for i in first:
            path = paths[i]
            fragment = self._made.get(path)
            if fragment is None:
                guarantee = _guarantee(days[i], {c: (low[i], high[i]) for c, (low, high) in stats.items()})
                fragment = PARQUET.make_fragment(path, filesystem=filesystem, partition_expression=guarantee)
                if keep:
                    self._made[path] = fragment
            fragments.append(fragment)
        if keep:
            held = set(paths)
            self._made = {p: f for p, f in self._made.items() if p in held}
        dataset = pads.FileSystemDataset(fragments, schema, PARQUET, filesystem)
        return Snapshot(dataset, sizes, plain=True, footers=self.footers)


class LakeView:
    """The gateway's handle on the lake table: opened once, refreshed at most every ``ttl_s``."""

    def __init__(self, lake: FeatureLake, ttl_s: float = 1.0):
        self.lake = lake
        self.ttl_s = ttl_s
        self._table: DeltaTable | None = None
        self._snapshot: Snapshot | None = None
        self._snapshot_version = -1
        self._fragments = Fragments(lake)
        self._seen = 0.0
        self._lock = threading.Lock()

    def latest(self, min_version: int = -1) -> tuple[DeltaTable, Snapshot] | None:
        """The table at its latest version and its snapshot, or None while there is no lake table.

        Refreshed when older than ``ttl_s`` or than ``min_version`` (a window's rows must be read at
        least at the version that wrote them)."""
        with self._lock:
            stale = self._table is not None and self._table.version() < min_version
            if self._table is None or stale or time.monotonic() - self._seen > self.ttl_s:
                try:
                    if self._table is None:
                        self._table = self.lake.table()
                    else:
                        self._table.update_incremental()
                    if self._snapshot is None or self._table.version() != self._snapshot_version:
                        self._snapshot = self._fragments.snapshot(self._table)
                        self._snapshot_version = self._table.version()
                except LakeError:
                    self._table = self._snapshot = None
                except Exception as exc:  # storage unreachable: MySQL serves everything meanwhile
                    log.warning("lake at %s cannot be read (%s): serving from MySQL", self.lake.uri, exc)
                    self._table = self._snapshot = None
                self._seen = time.monotonic()
            if self._table is None or self._snapshot is None:
                return None
            return self._table, self._snapshot

    def as_of(self, when: datetime) -> tuple[Snapshot, datetime | None, int]:
        """The snapshot of the version the lake had at ``when``, its latest window and its version.

        Refused as :data:`_AS_OF_STATUS` says.
        """
        try:
            table = self.lake.table_as_of(when)
        except tuple(_AS_OF_STATUS) as exc:
            raise ApiError(_AS_OF_STATUS[type(exc)], str(exc), parameter="as_of") from None
        actions = pa.table(table.get_add_actions(flatten=True))
        column = f"max.{TIME_COLUMN}"
        latest = pc.max(actions[column]).as_py() if actions.num_rows and column in actions.column_names else None
        as_of = to_naive_utc(latest).replace(second=0, microsecond=0) if latest is not None else None
        return self._fragments.snapshot(table, keep=False), as_of, table.version()

    def coverage(self, reader: Reader, start: datetime, end: datetime, exists: bool) -> Coverage:
        """Split the committed windows of [start, end) into lake ranges and MySQL ranges.

        One aggregate first: when the lake holds every committed window of the range at its current
        commit (the usual case), the lake serves the whole range (it holds no window that is not
        committed) and no window is listed; otherwise the windows are listed and split into runs.
        """
        pl, ll = partition_log, lake_log
        reader.warehouse.table(ll.name)
        current = sa.and_(
            ll.c.table_name == FEATURES.name,
            ll.c.window_start == pl.c.window_start,
            ll.c.committed_at == pl.c.committed_at,
        )
        joined = pl.outerjoin(ll, current)
        within = (pl.c.asset == FEATURES.name, pl.c.window_start >= start, pl.c.window_start < end)
        totals = sa.select(sa.func.count(), sa.func.count(ll.c.lake_version), sa.func.max(ll.c.lake_version))
        committed, held, newest = reader.execute(totals.select_from(joined).where(*within))[0]
        version = int(newest) if newest is not None else -1
        if committed and committed == held and exists:
            return Coverage(((start, end),), (), HIT, version)
        if not held or not exists:
            status = MISSING if not exists or committed else HIT
            return Coverage((), ((start, end),) if committed else (), status, version)
        stmt = (
            sa.select(pl.c.window_start, ll.c.lake_version)
            .select_from(joined)
            .where(*within)
            .order_by(pl.c.window_start)
        )
        rows = reader.execute(stmt)
        windows = np.array([r[0] for r in rows], dtype="datetime64[us]")
        in_lake = np.array([r[1] is not None for r in rows], dtype=bool)
        lake, rest = runs(windows[in_lake]), runs(windows[~in_lake])
        if not in_lake[: int(np.flatnonzero(in_lake)[-1]) + 1].all():
            status = BEHIND  # a window older than the lake's newest is out of date or absent
        else:
            status = PARTIAL  # only the newest windows are not copied yet
        return Coverage(lake, rest, status, version)


def _time_filter(ranges: Sequence[tuple[datetime, datetime]], *, days: bool = True) -> pc.Expression:
    """The rows of ``ranges``; ``days``: with the ``date`` partition terms (to prune files), else on
    ``timestamp`` alone (for rows read from a file, which holds no ``date`` column)."""

    def within(start: datetime, end: datetime) -> pc.Expression:
        if days:
            return range_filter(start, end)
        return (pc.field(TIME_COLUMN) >= pa.scalar(start, TIME_TYPE)) & (
            pc.field(TIME_COLUMN) < pa.scalar(end, TIME_TYPE)
        )

    if len(ranges) <= MAX_RANGES:
        expression = within(*ranges[0])
        for start, end in ranges[1:]:
            expression = expression | within(start, end)
        return expression
    windows = [
        w
        for start, end in ranges
        for w in np.arange(
            np.datetime64(start, "us"), np.datetime64(end, "us"), np.timedelta64(int(WINDOW.total_seconds()), "s")
        )
    ]
    values = pa.array(np.array(windows, dtype="datetime64[us]")).cast(TIME_TYPE)
    return within(ranges[0][0], ranges[-1][1]) & pc.field(TIME_COLUMN).isin(values)


def _time_bounds(metadata: pq.FileMetaData) -> tuple[datetime, datetime] | None:
    """The first and last ``timestamp`` of a Parquet file from its row groups' statistics (naive
    UTC), or None without statistics."""
    if TIME_COLUMN not in metadata.schema.names:
        return None
    column = metadata.schema.names.index(TIME_COLUMN)
    lows, highs = [], []
    for group in range(metadata.num_row_groups):
        stats = metadata.row_group(group).column(column).statistics
        if stats is None or not stats.has_min_max:
            return None
        lows.append(stats.min)
        highs.append(stats.max)
    if not lows:
        return None
    return to_naive_utc(min(lows)), to_naive_utc(max(highs))


def scan(
    dataset: pads.Dataset,
    footers: Footers,
    columns: list[str],
    files: pc.Expression,
    rows: pc.Expression,
    whole: Sequence[tuple[datetime, datetime]] = (),
) -> pa.Table:
    """The rows of ``dataset`` that ``rows`` selects, in its fragments' order, ``columns`` only.

    The files are those ``files`` may select (by their days and key statistics), read with the
    footer ``footers`` keeps for the file (four times faster than a dataset scan of the same files
    here, whose per-file machinery dominates small files). A file whose times lie inside one of the
    ``whole`` ranges is read whole (every row is wanted); of any other, the row groups ``files`` may
    select by their statistics, its rows filtered by ``rows``.
    A file that lacks a column (written before the column existed) is read by pyarrow's scan,
    which fills it with nulls.
    """
    wanted = list(dict.fromkeys([*columns, "symbol", TIME_COLUMN]))
    threads = len(wanted) >= THREADED_COLUMNS
    parts = []
    for listed in dataset.get_fragments(filter=files):
        fragment = footers.fragment(listed)
        metadata = fragment.metadata
        if not set(wanted) <= set(metadata.schema.names):
            parts.append(fragment.to_table(schema=dataset.schema, columns=columns, filter=files))
            continue
        bounds = _time_bounds(metadata)
        inside = bounds is not None and any(start <= bounds[0] and bounds[1] < end for start, end in whole)
        source = pq.ParquetFile(fragment.filesystem.open_input_file(fragment.path), metadata=metadata, pre_buffer=True)
        if inside:
            table = source.read(columns=wanted, use_threads=threads)
        else:  # only the row groups whose statistics may match (a symbol's rows are a few of a day's)
            groups = [g.id for g in fragment.subset(filter=files, schema=dataset.schema).row_groups]
            if not groups:
                continue
            table = source.read_row_groups(groups, columns=wanted, use_threads=threads).filter(rows)
        parts.append(table.select(columns))
    if not parts:
        return dataset.schema.empty_table().select(columns)
    return pa.concat_tables(parts)


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


@dataclass(frozen=True)
class FileList:
    """A features request as files to read: the lake files of its lake ranges (path relative to the
    table's root, size in bytes), the rows to keep of them (the ranges, and ``symbols``, None for
    every one), and the committed ranges the lake does not hold at their current commit."""

    files: tuple[tuple[str, int], ...]
    lake_ranges: tuple[tuple[datetime, datetime], ...]
    rest_ranges: tuple[tuple[datetime, datetime], ...]
    symbols: tuple[str, ...] | None


class FeatureSource:
    """The rows of a features plan: lake ranges from the Delta table, the rest from MySQL."""

    def __init__(
        self,
        reader: Reader,
        plan: Plan,
        snapshot: Snapshot | None,
        lake_ranges: Sequence[tuple[datetime, datetime]],
        rest_ranges: Sequence[tuple[datetime, datetime]],
        *,
        every_symbol: bool = False,
    ):
        self.reader = reader
        self.windows = sum(int((end - start) / WINDOW) for start, end in (*lake_ranges, *rest_ranges))
        self.plan = plan
        self.snapshot = snapshot if lake_ranges else None
        self.symbols = tuple(sorted(plan.symbols or ()))
        self.columns = [o.name for o in plan.outputs]
        # ``every_symbol``: the plan asks for every symbol the lake can hold, so no symbol filter is needed.
        self.every_symbol = every_symbol
        self._lake_filter: pc.Expression | None = None  # the files that may hold the rows
        self._row_filter: pc.Expression | None = None  # the rows, within a file
        self._lake_ranges = tuple(lake_ranges)
        if self.snapshot is not None and self.symbols:
            self._lake_filter = _time_filter(lake_ranges)
            self._row_filter = _time_filter(lake_ranges, days=False)
            if not every_symbol:
                named = pc.field("symbol").isin(self.symbols)
                self._lake_filter, self._row_filter = self._lake_filter & named, self._row_filter & named
        self._rest_ranges = tuple(rest_ranges)
        self._rest = self._rest_plan(plan, rest_ranges)

    def files(self) -> FileList | None:
        """The lake files the lake ranges' rows are in (those their days, times and symbols may
        select), for a reader that reads them itself; None when it may not (no lake part, or files
        that are not plain Parquet)."""
        if self.snapshot is None or not self.snapshot.plain or self._lake_filter is None:
            return None
        sizes = self.snapshot.sizes
        paths = [fragment.path for fragment in self.snapshot.dataset.get_fragments(filter=self._lake_filter)]
        return FileList(
            files=tuple((path, sizes[path]) for path in paths),
            lake_ranges=self._lake_ranges,
            rest_ranges=self._rest_ranges,
            symbols=None if self.every_symbol else self.symbols,
        )

    def _rest_plan(self, plan: Plan, ranges: Sequence[tuple[datetime, datetime]]) -> Plan | None:
        if not ranges or not self.symbols:
            return None
        column = self.reader.features_table().c[TIME_COLUMN]
        within = sa.or_(*(sa.and_(column >= start, column < end) for start, end in ranges))
        return Plan(plan.dataset, plan.outputs, plan.source, [*plan.where, within], plan.keys, symbols=plan.symbols)

    def _lake_part(
        self,
        columns: list[str],
        symbols: Sequence[str] | None,
        cursor: Sequence[Any] | None,
        stop: Sequence[Any] | None,
    ) -> pa.Table | None:
        if self._lake_filter is None or self._row_filter is None or self.snapshot is None:
            return None
        files, rows = self._lake_filter, self._row_filter
        narrowed = False  # whether rows beyond the time ranges are left out
        if symbols is not None and not (self.every_symbol and len(symbols) == len(self.symbols)):
            named = pc.field("symbol").isin(list(symbols))
            files, rows, narrowed = files & named, rows & named, True
        bound = _key_bound(cursor, stop)
        if bound is not None:
            files, rows, narrowed = files & bound, rows & bound, True
        whole = () if narrowed or not self.every_symbol else self._lake_ranges
        return scan(self.snapshot.dataset, self.snapshot.footers, columns, files, rows, whole)

    def _rest_part(
        self, outputs_plan: Plan | None, cursor: Sequence[Any] | None, stop: Sequence[Any] | None
    ) -> pa.Table | None:
        if outputs_plan is None:
            return None
        return self.reader.read_table(outputs_plan, cursor, stop)

    def _combined(self, schema: pa.Schema, parts: Sequence[pa.Table | None]) -> pa.Table:
        """The parts in ``schema`` in one table (not yet in key order)."""
        tables = [
            pa.Table.from_arrays([part[name] for name in schema.names], schema=schema)
            for part in parts
            if part is not None and part.num_rows
        ]
        if not tables:
            return schema.empty_table()
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def keys(self, cursor: Sequence[Any] | None) -> pa.Table:
        """The (symbol, timestamp) keys from ``cursor`` on, in order."""
        key_outputs = self.plan.keys
        schema = pa.schema([self.plan.schema.field(k.name) for k in key_outputs])
        rest = None
        if self._rest is not None:
            rest = Plan(
                self._rest.dataset,
                key_outputs,
                self._rest.source,
                self._rest.where,
                key_outputs,
                symbols=self._rest.symbols,
            )
        combined = self._combined(
            schema, [self._lake_part(schema.names, None, cursor, None), self._rest_part(rest, cursor, None)]
        )
        return pa.Table.from_batches(list(in_key_order(combined, 1 << 20)), schema=schema)

    # ------------------------------------------------------------------ the Reader interface
    def next_key(self, plan: Plan, cursor: Sequence[Any] | None, limit: int) -> list[Any] | None:
        """The key of the row after the first ``limit`` rows from ``cursor``, or None.

        No scan when the ranges cannot hold more than ``limit`` rows (at most one row a symbol and
        window); otherwise the keys are read (two columns) and counted.
        """
        if self.windows * len(self.symbols) <= limit:
            return None
        keys = self.keys(cursor)
        if keys.num_rows <= limit:
            return None
        return [keys["symbol"][limit].as_py(), to_naive_utc(keys[TIME_COLUMN][limit].as_py())]

    def batches(
        self, plan: Plan, cursor: Sequence[Any] | None, stop: Sequence[Any] | None, batch_rows: int = 65_536
    ) -> Iterator[pa.RecordBatch]:
        """The rows from ``cursor`` to ``stop`` in key order, merged a group of symbols at a time
        (symbols after the cursor's, up to the stop's; a group's size reckoned at one row a window)."""
        symbols = [s for s in self.symbols if (cursor is None or s >= cursor[0]) and (stop is None or s <= stop[0])]
        per_group = max(1, GROUP_CELLS // max(1, self.windows * len(self.columns)))
        for offset in range(0, len(symbols), per_group):
            yield from self._group(symbols[offset : offset + per_group], cursor, stop, batch_rows)

    def _group(
        self, symbols: list[str], cursor: Sequence[Any] | None, stop: Sequence[Any] | None, batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        rest = None
        if self._rest is not None:
            column = self.reader.features_table().c.symbol
            rest = Plan(
                self._rest.dataset,
                self._rest.outputs,
                self._rest.source,
                [*self._rest.where, column.in_(symbols)],
                self._rest.keys,
                symbols=tuple(symbols),
            )
        table = self._combined(
            self.plan.schema,
            [self._lake_part(self.columns, symbols, cursor, stop), self._rest_part(rest, cursor, stop)],
        )
        yield from in_key_order(table, batch_rows)

    def read_table(
        self, plan: Plan, cursor: Sequence[Any] | None = None, stop: Sequence[Any] | None = None
    ) -> pa.Table:
        """All rows from ``cursor`` to ``stop`` in one table (a JSON page)."""
        return pa.Table.from_batches(list(self.batches(plan, cursor, stop)), schema=plan.schema)


@dataclass(frozen=True)
class FeatureRead:
    """How a features request is served: its row source, the lake headers and its ``X-Data-As-Of``."""

    source: Reader | FeatureSource
    headers: dict[str, str]
    as_of: datetime | None


def plan_feature_read(
    view: LakeView,
    reader: Reader,
    plan: Plan,
    start: datetime,
    end: datetime,
    data_as_of: datetime | None,
    as_of: datetime | None,
    *,
    every_symbol: bool = False,
) -> FeatureRead:
    """Choose where each committed window of a features request comes from (``as_of``: the lake's
    version at that time, nothing from MySQL). ``every_symbol``: the request named no symbols, so
    the lake's rows need no symbol filter."""
    if as_of is not None:
        snapshot, latest, version = view.as_of(as_of)
        source = FeatureSource(reader, plan, snapshot, [(start, end)], [])
        return FeatureRead(source, {"X-Lake": HIT, "X-Lake-Version": str(version)}, latest)
    opened = view.latest()
    coverage = view.coverage(reader, start, end, exists=opened is not None)
    if opened is not None and opened[0].version() < coverage.version:
        opened = view.latest(min_version=coverage.version)
        if opened is None or opened[0].version() < coverage.version:  # cannot catch up: MySQL serves it all
            return FeatureRead(reader, {"X-Lake": BEHIND}, data_as_of)
    headers = {"X-Lake": coverage.status}
    if opened is None or not coverage.lake or len(coverage.rest) > MAX_RANGES:
        if opened is not None and coverage.lake:
            headers["X-Lake"] = BEHIND
        return FeatureRead(reader, headers, data_as_of)
    table, snapshot = opened
    headers["X-Lake-Version"] = str(table.version())
    source = FeatureSource(reader, plan, snapshot, coverage.lake, coverage.rest, every_symbol=every_symbol)
    return FeatureRead(source, headers, data_as_of)


def file_listing(view: LakeView, read: FeatureRead, plan: Plan, start: datetime, end: datetime) -> dict[str, Any]:
    """The ``/v1/features/files`` answer for a planned read: the lake files to read, the rows to keep
    of them and the ranges to read through ``/v1/features`` (``direct``); or, where the files may
    not be read directly, ``direct: false`` and the whole request to be read through ``/v1/features``."""
    listing = read.source.files() if isinstance(read.source, FeatureSource) else None
    version = read.headers.get("X-Lake-Version")
    body: dict[str, Any] = {
        "direct": listing is not None,
        "as_of": read.as_of,
        "lake": read.headers["X-Lake"],
        "lake_version": int(version) if version is not None else None,
        # A local table by its absolute path: the client opens it from its own working directory.
        "table_uri": os.path.abspath(view.lake.uri.removeprefix("file://")) if view.lake.is_local else view.lake.uri,
        "columns": plan.schema.names,
        "arrow_schema": base64.b64encode(plan.schema.serialize().to_pybytes()).decode(),
        "symbols": None,
        "lake_ranges": [],
        "rest_ranges": [{"start": start, "end": end}],
        "files": [],
    }
    if listing is not None:
        body.update(
            symbols=list(listing.symbols) if listing.symbols is not None else None,
            lake_ranges=[{"start": a, "end": b} for a, b in listing.lake_ranges],
            rest_ranges=[{"start": a, "end": b} for a, b in listing.rest_ranges],
            files=[{"path": path, "size_bytes": size} for path, size in listing.files],
        )
    return body
