"""The features lake as the gateway reads it: ``as_of`` (time travel) and the lake files of a request.

The lake answers two reads, each from one Delta version and nothing else: ``/v1/features?as_of=``
(the version of that time, read here: :class:`LakeRows`) and ``/v1/features/files`` (the files of
the latest version up to its newest window, for a client that reads them itself:
:func:`file_listing`). Which windows a version holds comes from the Delta log (its files' key
statistics), never from the warehouse: no read compares the two stores. Every other read, live
``/v1/features`` included, is the warehouse's (:mod:`api.reads`).

A read takes the files the days, times and symbols may select (:func:`scan`, with each file's
footer parsed once per process: :class:`Footers`), the requested columns only, and sends the rows
in key order (symbol, timestamp), a group of symbols at a time, as slices of what was read (no
sort copy). :class:`LakeRows` has the reader interface :func:`api.gateway.tabular` uses
(``next_key``, ``batches``, ``read_table``), so pagination, row limits, cursors and formats are
those of every other route.
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
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.fs import DeltaStorageHandler

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
# 512 MB of doubles, twice that while a group is sorted. Each group is one scan of the lake, so
# fewer, larger groups read less (a day's file holds every symbol).
GROUP_CELLS = 64_000_000
# Files are decoded a column per thread from this many columns on, on one thread below (for few
# columns the threads' start costs more than they save).
THREADED_COLUMNS = 64
# Commits of the Delta log searched for the latest lake write (maintenance commits carry no run id).
HISTORY_SEARCHED = 50


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
    path relative to the table's root; ``version``: its Delta version; ``newest``: the start of the
    newest window it holds (from its files' statistics; None when empty); ``rows``: its rows."""

    dataset: pads.Dataset
    sizes: dict[str, int]
    plain: bool
    footers: Footers
    version: int
    newest: datetime | None
    rows: int


# Files whose parsed footer the gateway keeps (their memory: docs/lake.md). A read of more files
# than this parses the rest again.
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
        column = f"max.{TIME_COLUMN}"
        latest = pc.max(actions[column]).as_py() if actions.num_rows and column in actions.column_names else None
        # Delta keeps times in ms: the newest window's start is the newest time to the minute.
        newest = to_naive_utc(latest).replace(second=0, microsecond=0) if latest is not None else None
        version, rows = table.version(), int(pc.sum(actions["num_records"]).as_py() or 0)
        if table.protocol().reader_features:  # deletion vectors, column mapping: delta-rs' own checks and reader
            return Snapshot(
                table.to_pyarrow_dataset(),
                sizes,
                plain=False,
                footers=self.footers,
                version=version,
                newest=newest,
                rows=rows,
            )
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
        return Snapshot(dataset, sizes, plain=True, footers=self.footers, version=version, newest=newest, rows=rows)


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
        self._fragments = Fragments(lake)
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
                        self._snapshot = self._fragments.snapshot(self._table)
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
        return self._fragments.snapshot(table, keep=False)

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


def _time_filter(ranges: Sequence[tuple[datetime, datetime]], *, days: bool = True) -> pc.Expression:
    """The rows of ``ranges``; ``days``: with the ``date`` partition terms (to prune files), else on
    ``timestamp`` alone (for rows read from a file, which holds no ``date`` column)."""

    def within(start: datetime, end: datetime) -> pc.Expression:
        if days:
            return range_filter(start, end)
        return (pc.field(TIME_COLUMN) >= pa.scalar(start, TIME_TYPE)) & (
            pc.field(TIME_COLUMN) < pa.scalar(end, TIME_TYPE)
        )

    expression = within(*ranges[0])
    for start, end in ranges[1:]:
        expression = expression | within(start, end)
    return expression


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
    footer ``footers`` keeps for the file (faster than a dataset scan of the same files, whose
    per-file machinery dominates small files). A file whose times lie inside one of the
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
        self._files = _time_filter([self._range])  # the files that may hold the rows
        self._rows = _time_filter([self._range], days=False)  # the rows, within a file
        if not every_symbol:
            named = pc.field("symbol").isin(self.symbols)
            self._files, self._rows = self._files & named, self._rows & named

    def files(self) -> list[tuple[str, int]]:
        """The files (path relative to the table's root, size in bytes) the rows are in: those their
        days, times and symbols may select."""
        if not self.symbols:
            return []
        sizes = self.snapshot.sizes
        return [(f.path, sizes[f.path]) for f in self.snapshot.dataset.get_fragments(filter=self._files)]

    def _read(
        self,
        columns: list[str],
        symbols: Sequence[str] | None,
        cursor: Sequence[Any] | None,
        stop: Sequence[Any] | None,
    ) -> pa.Table:
        files, rows = self._files, self._rows
        narrowed = False  # whether rows of the range are left out
        if symbols is not None and not (self.every_symbol and len(symbols) == len(self.symbols)):
            named = pc.field("symbol").isin(list(symbols))
            files, rows, narrowed = files & named, rows & named, True
        bound = _key_bound(cursor, stop)
        if bound is not None:
            files, rows, narrowed = files & bound, rows & bound, True
        whole = () if narrowed or not self.every_symbol else (self._range,)
        table = scan(self.snapshot.dataset, self.snapshot.footers, columns, files, rows, whole)
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
