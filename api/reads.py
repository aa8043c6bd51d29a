"""The gateway's reads of the warehouse: committed windows only, keyset cursors, Arrow record batches.

Every data read joins its table to ``partition_log`` on (asset, window), so a row is served only
once the transaction that wrote its window has committed. Reads are SQLAlchemy Core selects. On
MySQL/MariaDB a range is read through connectorx straight into Arrow, a keyset chunk of rows at a
time (one SELECT each, so each chunk is one consistent read of committed windows); on SQLite the
select is streamed with ``fetchmany``. Either way the rows come out as ``pyarrow.RecordBatch``
objects of the plan's schema, a bounded batch at a time.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from typing import Any, cast

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from api.errors import bad_request
from resources.storage.lake import LAKE_ASSET
from resources.storage.schema import CONTRACTS, CONTRACTS_BY_NAME, FEATURES, PRICES, TableContract, partition_log
from resources.storage.warehouse import Warehouse
from resources.storage.windows import WINDOW

log = logging.getLogger(__name__)

# Output kinds and their Arrow types.
SYMBOL, TIME, FLOAT, INT, STR, DATE = "symbol", "time", "float", "int", "str", "date"
STR_LIST = "str_list"  # a list of strings, stored as comma-separated text (news symbols)
ARROW_TYPES = {
    SYMBOL: pa.string(),
    STR: pa.string(),
    TIME: pa.timestamp("us", tz="UTC"),
    FLOAT: pa.float64(),
    INT: pa.int64(),
    DATE: pa.date32(),
    STR_LIST: pa.list_(pa.string()),
}
EARLIEST = datetime(1970, 1, 1)
LATEST = datetime(2200, 1, 1)


#: Every asset of the platform (``/v1/freshness`` lists each, also one that never ran): the tables
#: committed through ``partition_log``, and the lake copy of the features (from the Delta log).
ASSETS = (*(c.asset for c in CONTRACTS), LAKE_ASSET)


def column_kind(column: sa.Column) -> str:
    """The output kind of a table column."""
    if column.name == "symbol":
        return SYMBOL
    if isinstance(column.type, sa.DateTime):
        return TIME
    if isinstance(column.type, sa.Date):
        return DATE
    if isinstance(column.type, sa.Float):
        return FLOAT
    if isinstance(column.type, sa.Integer):
        return INT
    return STR


@dataclass
class OutputColumn:
    """One output column: its name, the SQL expression that yields it, and its kind."""

    name: str
    expr: sa.ColumnElement
    kind: str


@dataclass
class ReadPlan:
    """A read of the route ``/v1/<name>``: outputs, source, filters, ordering keys (also the cursor),
    optional grouping."""

    contract: TableContract
    name: str
    outputs: list[OutputColumn]
    source: sa.FromClause
    where: list[sa.ColumnElement]
    keys: list[OutputColumn]
    group_by: list[sa.ColumnElement] = field(default_factory=list)
    symbols: tuple[str, ...] | None = None

    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema of the batches this plan yields."""
        return pa.schema([pa.field(o.name, ARROW_TYPES[o.kind]) for o in self.outputs])


@dataclass(frozen=True)
class CommittedState:
    """What the warehouse has committed, as last seen: the version every cache key carries."""

    latest: dict[str, datetime]
    committed_at: datetime | None
    price_symbols: tuple[str, ...]
    feature_symbols: tuple[str, ...]
    seen_at: float

    @cached_property
    def symbols(self) -> tuple[str, ...]:
        """Every symbol with prices or features."""
        return tuple(sorted(set(self.price_symbols) | set(self.feature_symbols)))

    @cached_property
    def version(self) -> str:
        """Changes whenever any window of any asset commits (or is re-committed)."""
        stamp = self.committed_at.isoformat() if self.committed_at else "-"
        return stamp + "|" + ",".join(f"{a}={self.latest[a].isoformat()}" for a in sorted(self.latest))


# ---------------------------------------------------------------------------------- cursors
def encode_cursor(name: str, values: Sequence[Any]) -> str:
    """An opaque cursor of the route ``/v1/<name>``: the key of the first row of the next page."""
    encoded = [v.isoformat() if isinstance(v, (datetime, date)) else v for v in values]
    raw = orjson.dumps({"d": name, "k": encoded})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(name: str, keys: Sequence[OutputColumn], cursor: str) -> list[Any]:
    """The key values in ``cursor``; a 400 that says what to do when it is not one of ours."""
    hint = "pass the next_cursor (or X-Next-Cursor) value of the previous response unchanged"
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise bad_request(f"cursor is malformed: {hint}", "cursor") from None
    if not isinstance(payload, dict) or payload.get("d") != name or not isinstance(payload.get("k"), list):
        raise bad_request(f"cursor does not belong to /{name}: {hint}", "cursor")
    raw = payload["k"]
    if len(raw) != len(keys):
        raise bad_request(f"cursor is malformed: {hint}", "cursor")
    values: list[Any] = []
    for key, value in zip(keys, raw):
        if not isinstance(value, str) or not value or len(value) > 256:
            raise bad_request(f"cursor is malformed: {hint}", "cursor")
        if key.kind in (TIME, DATE):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                raise bad_request(f"cursor is malformed: {hint}", "cursor") from None
            if parsed.tzinfo is not None or not EARLIEST <= parsed < LATEST:
                raise bad_request(f"cursor is malformed: {hint}", "cursor")
            values.append(parsed.date() if key.kind == DATE else parsed)
        else:
            values.append(value)
    return values


def _lexicographic(
    keys: Sequence[OutputColumn], values: Sequence[Any], *, after: bool, strict: bool = False
) -> sa.ColumnElement:
    """Rows whose key is >= ``values`` (``after``; > where ``strict``) or < ``values`` in the plan's order."""
    clauses = []
    for i, key in enumerate(keys):
        equal = [keys[j].expr == values[j] for j in range(i)]
        last = i == len(keys) - 1
        if after:
            cmp = key.expr >= values[i] if last and not strict else key.expr > values[i]
        else:
            cmp = key.expr < values[i]
        clauses.append(sa.and_(*equal, cmp))
    return sa.or_(*clauses)


# ---------------------------------------------------------------------------------- filters
def resolve_choices(
    requested: str | None,
    known: Sequence[str],
    what: str,
    *,
    parameter: str,
    example: str,
    many: bool = True,
    listing: str | None = None,
) -> tuple[str, ...] | None:
    """The requested values of the filter ``parameter`` (comma-separated when ``many``, any case) checked
    against ``known``, the valid values of a ``what``.

    None when the filter is left out. An unknown value is a 400 that lists the valid ones (or says
    where they are listed: ``listing``).
    """
    if requested is None or not requested.strip():
        return None
    by_upper = {k.upper(): k for k in known}
    parts = requested.split(",") if many else [requested]
    wanted: list[str] = []
    unknown: list[str] = []
    for part in parts:
        name = part.strip()
        if not name:
            continue
        match = by_upper.get(name.upper())
        if match is None:
            unknown.append(name)
        elif match not in wanted:
            wanted.append(match)
    if unknown:
        shown = ", ".join(repr(u[:40]) for u in unknown[:5])
        if listing is None:
            listing = (
                f"valid: {', '.join(known[:20])}{', ...' if len(known) > 20 else ''}"
                if known
                else f"there are no {what} values in the warehouse yet"
            )
        plural = "(s)" if many and not what.endswith("s") else ""
        raise bad_request(f"{parameter}: unknown {what}{plural} {shown}: {listing}", parameter)
    if not wanted:
        raise bad_request(
            f"{parameter} is empty: give comma-separated values such as {example}, or leave it out", parameter
        )
    return tuple(wanted)


# ---------------------------------------------------------------------------------- reader
class Reader:
    """Runs plans against one warehouse and keeps a short-lived view of what is committed."""

    def __init__(self, warehouse: Warehouse, state_ttl_s: float = 1.0):
        self.warehouse = warehouse
        self.engine = warehouse.engine
        self.state_ttl_s = state_ttl_s
        self._state: CommittedState | None = None
        self._known: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
        self._lock = threading.Lock()
        self._known_lock = threading.Lock()

    # ---------------------------------------------------------------- committed state
    def cached_state(self, max_age_s: float | None = None) -> CommittedState | None:
        """The committed state as last read, if no older than ``max_age_s`` (the state TTL by default); else None."""
        max_age = self.state_ttl_s if max_age_s is None else max_age_s
        current = self._state
        if current is not None and time.monotonic() - current.seen_at <= max_age:
            return current
        return None

    def state(self, max_age_s: float | None = None) -> CommittedState:
        """The committed state, refreshed when older than ``max_age_s`` (the state TTL by default)."""
        current = self.cached_state(max_age_s)
        if current is not None:
            return current
        with self._lock:
            current = self.cached_state(max_age_s)
            if current is not None:
                return current
            self._state = self._read_state(self._state)
            return self._state

    def _read_state(self, previous: CommittedState | None) -> CommittedState:
        pl = partition_log
        with self.engine.connect() as conn:
            latest = {
                a: w
                for a, w in conn.execute(sa.select(pl.c.asset, sa.func.max(pl.c.window_start)).group_by(pl.c.asset))
                if w is not None
            }
            committed_at = conn.execute(sa.select(sa.func.max(pl.c.committed_at))).scalar()
            if previous is not None and previous.committed_at == committed_at and previous.latest == latest:
                return CommittedState(
                    latest, committed_at, previous.price_symbols, previous.feature_symbols, time.monotonic()
                )
            prices = self.warehouse.table(PRICES.name)
            price_symbols = tuple(
                sorted(s for (s,) in conn.execute(sa.select(prices.c.symbol).group_by(prices.c.symbol)))
            )
            features = self.features_table()
            feature_symbols = tuple(
                sorted(s for (s,) in conn.execute(sa.select(features.c.symbol).group_by(features.c.symbol)))
            )
        return CommittedState(latest, committed_at, price_symbols, feature_symbols, time.monotonic())

    def features_table(self) -> sa.Table:
        """``ml_features_materialized``, with a column per catalogued feature."""
        return self.warehouse.table(FEATURES.name)

    # ---------------------------------------------------------------- validation helpers
    def resolve_symbols(self, requested: str | None, known: Sequence[str]) -> tuple[str, ...] | None:
        """The requested symbols (comma-separated, any case) checked against ``known``; None = all."""
        return resolve_choices(
            requested,
            known,
            "symbol",
            parameter="symbols",
            example="BTC,ETH",
            listing="GET /v1/symbols lists the symbols served",
        )

    def known_values(self, state: CommittedState, table: sa.Table, column: str) -> tuple[str, ...]:
        """The distinct values of ``table.column``, read once per committed state (a filter's valid values)."""
        key = (table.name, column)
        cached = self._known.get(key)
        if cached is not None and cached[0] == state.version:
            return cached[1]
        with self._known_lock:
            cached = self._known.get(key)
            if cached is None or cached[0] != state.version:
                rows = self.execute(sa.select(table.c[column]).group_by(table.c[column]))
                cached = self._known[key] = (state.version, tuple(sorted(v for (v,) in rows if v is not None)))
        return cached[1]

    # ---------------------------------------------------------------- plans
    def committed_source(self, table: sa.Table, contract: TableContract) -> tuple[sa.FromClause, sa.ColumnElement]:
        """``table`` joined to its committed windows (one ``partition_log`` row per window)."""
        pl = partition_log.alias("committed")
        condition = sa.and_(pl.c.asset == contract.asset, pl.c.window_start == table.c[contract.time_column])
        return table.join(pl, condition), pl.c.window_start

    def table_plan(
        self,
        contract: TableContract,
        table: sa.Table,
        columns: Sequence[str],
        *,
        symbols: tuple[str, ...] | None,
        start: datetime | date,
        end: datetime | date,
        equal: Mapping[str, Any] | None = None,
        mentioning: tuple[str, ...] | None = None,
    ) -> ReadPlan:
        """Rows of ``table`` in [start, end) from committed windows, ordered by the contract's read order.

        ``symbols``: only rows about these (the contract's symbol column); ``equal``: only rows whose
        columns hold these values (a tuple: any of them); ``mentioning``: only rows whose list column
        names one of these symbols.
        """
        if contract.daily:
            pl = partition_log
            committed = sa.exists().where(
                pl.c.asset == contract.asset, sa.func.date(pl.c.window_start) == table.c[contract.time_column]
            )
            source: sa.FromClause = table
            where: list[sa.ColumnElement[Any]] = [committed]
        else:
            source, _ = self.committed_source(table, contract)
            where = []
        time_col = table.c[contract.time_column]
        where += [time_col >= start, time_col < end]
        for name, value in (equal or {}).items():
            where.append(table.c[name].in_(value) if isinstance(value, tuple) else table.c[name] == value)
        if mentioning:
            listed = sa.literal(",") + sa.func.replace(table.c[contract.list_columns[0]], " ", "") + sa.literal(",")
            where.append(sa.or_(*(listed.like(f"%,{s},%") for s in mentioning)))
        if symbols is not None and contract.symbol_column:
            where.append(table.c[contract.symbol_column].in_(symbols))
        outputs = [
            OutputColumn(name, table.c[name], STR_LIST if name in contract.list_columns else column_kind(table.c[name]))
            for name in columns
        ]
        keys = [OutputColumn(name, table.c[name], column_kind(table.c[name])) for name in contract.order]
        return ReadPlan(contract, contract.dataset, outputs, source, where, keys, symbols=symbols)

    def sentiment_aggregate_plan(self, base: ReadPlan) -> ReadPlan:
        """Per (symbol, window) of ``base``'s sentiment rows: item count, mean and confidence-weighted
        score, mean confidence, positives and negatives."""
        table = self.warehouse.table(base.contract.name)
        score, confidence = table.c.sentiment_score, table.c.confidence
        weight = sa.func.sum(confidence)

        def floating(expr: sa.ColumnElement) -> sa.ColumnElement:
            return sa.type_coerce(expr, sa.Float(precision=53))

        def integer(expr: sa.ColumnElement) -> sa.ColumnElement:
            return sa.type_coerce(sa.func.coalesce(expr, 0), sa.Integer)

        outputs = [
            OutputColumn("symbol", table.c.symbol, SYMBOL),
            OutputColumn("window_start", table.c.window_start, TIME),
            OutputColumn("items", integer(sa.func.count()), INT),
            OutputColumn("mean_score", floating(sa.func.avg(score)), FLOAT),
            OutputColumn(
                "weighted_score",
                floating(sa.case((weight > 0, sa.func.sum(score * confidence) / weight), else_=sa.null())),
                FLOAT,
            ),
            OutputColumn("mean_confidence", floating(sa.func.avg(confidence)), FLOAT),
            OutputColumn("positive", integer(sa.func.sum(sa.case((score > 0, 1), else_=0))), INT),
            OutputColumn("negative", integer(sa.func.sum(sa.case((score < 0, 1), else_=0))), INT),
        ]
        return ReadPlan(
            base.contract,
            "sentiment_aggregates",
            outputs,
            base.source,
            base.where,
            outputs[:2],
            group_by=[table.c.symbol, table.c.window_start],
            symbols=base.symbols,
        )

    # ---------------------------------------------------------------- small reads
    def latest_coin_ids(self, state: CommittedState) -> dict[str, str]:
        """Each price symbol's CoinGecko id, as of its latest window."""
        prices = self.warehouse.table(PRICES.name)
        coin_ids: dict[str, str] = {}
        if not state.price_symbols:
            return coin_ids
        latest = sa.select(prices.c.symbol, sa.func.max(prices.c.window_start).label("w")).group_by(prices.c.symbol)
        pairs = [(s, w) for s, w in self.execute(latest)]
        for offset in range(0, len(pairs), 200):
            chunk = pairs[offset : offset + 200]
            stmt = sa.select(prices.c.symbol, prices.c.coin_id).where(
                sa.or_(*(sa.and_(prices.c.symbol == s, prices.c.window_start == w) for s, w in chunk))
            )
            coin_ids.update({s: c for s, c in self.execute(stmt)})
        return coin_ids

    def latest_rows(
        self,
        contract: TableContract,
        state: CommittedState,
        wanted: tuple[str, ...] | None,
        columns: Sequence[str],
        served: Sequence[str],
    ) -> list[dict[str, Any]]:
        """``columns`` of each wanted symbol's (all ``served`` symbols': None) latest committed row of the
        contract's table: the rows of its latest committed window, then older ones for the symbols absent
        from it."""
        as_of = state.latest.get(contract.asset)
        if as_of is None:
            return []
        table = self.warehouse.table(contract.name)
        time_column = table.c[contract.time_column]
        selected = [table.c[name] for name in columns]
        stmt = sa.select(*selected).where(time_column == as_of)
        if wanted is not None:
            stmt = stmt.where(table.c.symbol.in_(wanted))
        rows = _records(self.execute(stmt.order_by(table.c.symbol)))
        missing = sorted(set(wanted if wanted is not None else served) - {r["symbol"] for r in rows})
        if missing:
            source, committed_window = self.committed_source(table, contract)
            latest = (
                sa.select(table.c.symbol, sa.func.max(committed_window).label("w"))
                .select_from(source)
                .where(table.c.symbol.in_(missing))
                .group_by(table.c.symbol)
            ).subquery()
            older = sa.select(*selected).join(
                latest, sa.and_(table.c.symbol == latest.c.symbol, time_column == latest.c.w)
            )
            rows += _records(self.execute(older))
            rows.sort(key=lambda r: r["symbol"])
        return rows

    def commit_log(self, state: CommittedState) -> dict[str, tuple[Any, int, int]]:
        """Per asset with a committed window: its latest ``partition_log`` row, its windows and its rows."""
        pl = partition_log
        totals = {
            a: (n, r)
            for a, n, r in self.execute(
                sa.select(pl.c.asset, sa.func.count(), sa.func.coalesce(sa.func.sum(pl.c.row_count), 0)).group_by(
                    pl.c.asset
                )
            )
        }
        out: dict[str, tuple[Any, int, int]] = {}
        for asset, window_start in state.latest.items():
            rows = self.execute(sa.select(pl).where(pl.c.asset == asset, pl.c.window_start == window_start))
            windows, total_rows = totals.get(asset, (0, 0))
            out[asset] = (rows[0] if rows else None, int(windows), int(total_rows))
        return out

    # ---------------------------------------------------------------- execution
    def next_key(self, plan: ReadPlan, cursor: Sequence[Any] | None, limit: int) -> list[Any] | None:
        """The key of the row after the first ``limit`` rows from ``cursor``, or None if there is none."""
        stmt = (
            sa.select(*(k.expr.label(f"k{i}") for i, k in enumerate(plan.keys)))
            .select_from(plan.source)
            .where(*plan.where)
        )
        if cursor is not None:
            stmt = stmt.where(_lexicographic(plan.keys, cursor, after=True))
        if plan.group_by:
            stmt = stmt.group_by(*plan.group_by)
        stmt = _join_in_order(stmt).order_by(*(k.expr for k in plan.keys)).offset(limit).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else list(row)

    def _select(
        self,
        plan: ReadPlan,
        outputs: Sequence[sa.ColumnElement],
        cursor: Sequence[Any] | None,
        stop: Sequence[Any] | None,
        *,
        strict: bool = False,
    ) -> sa.Select:
        stmt = sa.select(*outputs).select_from(plan.source).where(*plan.where)
        if cursor is not None:
            stmt = stmt.where(_lexicographic(plan.keys, cursor, after=True, strict=strict))
        if stop is not None:
            stmt = stmt.where(_lexicographic(plan.keys, stop, after=False))
        if plan.group_by:
            stmt = stmt.group_by(*plan.group_by)
        return _join_in_order(stmt).order_by(*(k.expr for k in plan.keys))

    def batches(
        self, plan: ReadPlan, cursor: Sequence[Any] | None, stop: Sequence[Any] | None, batch_rows: int = 20_000
    ) -> Iterator[pa.RecordBatch]:
        """The plan's rows from ``cursor`` (inclusive) to ``stop`` (exclusive) as record batches."""
        if self.warehouse.connectorx_url() is not None:
            yield from self._connectorx_batches(plan, cursor, stop, batch_rows)
            return
        stmt = self._select(plan, [o.expr.label(o.name) for o in plan.outputs], cursor, stop)
        schema = plan.schema
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, max_row_buffer=batch_rows).execute(stmt)
            while True:
                rows = result.fetchmany(batch_rows)
                if not rows:
                    break
                columns = list(zip(*rows))
                arrays = [_to_arrow(col, o.kind) for col, o in zip(columns, plan.outputs)]
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)

    def _connectorx_batches(
        self, plan: ReadPlan, cursor: Sequence[Any] | None, stop: Sequence[Any] | None, batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        """:meth:`batches` through connectorx: keyset chunks of ``batch_rows``, each one SELECT."""
        key_names = [f"_key{i}" for i in range(len(plan.keys))]
        outputs = [o.expr.label(o.name) for o in plan.outputs]
        outputs += [k.expr.label(name) for k, name in zip(plan.keys, key_names)]
        schema = plan.schema
        after, strict = cursor, False
        while True:
            select = self._select(plan, outputs, after, stop, strict=strict).limit(batch_rows)
            chunk = cast(pa.Table, self.warehouse.read_connectorx(select, arrow=True))
            if chunk.num_rows == 0:
                return
            arrays = [_arrow_column(chunk.column(o.name), o.kind) for o in plan.outputs]
            yield pa.RecordBatch.from_arrays([a.combine_chunks() for a in arrays], schema=schema)
            if chunk.num_rows < batch_rows:
                return
            after = [chunk.column(name)[chunk.num_rows - 1].as_py() for name in key_names]
            strict = True

    def read_table(
        self, plan: ReadPlan, cursor: Sequence[Any] | None = None, stop: Sequence[Any] | None = None
    ) -> pa.Table:
        """All of the plan's rows in one Arrow table (for bounded reads such as a JSON page)."""
        return pa.Table.from_batches(list(self.batches(plan, cursor, stop)), schema=plan.schema)

    def execute(self, statement: sa.Executable) -> list[sa.Row]:
        """Run a small bounded SELECT and return all its rows."""
        with self.engine.connect() as conn:
            return list(conn.execute(statement))


def _records(rows: list[sa.Row]) -> list[dict[str, Any]]:
    """Rows as dicts with plain ``str`` keys (SQLAlchemy's names are a ``str`` subclass orjson refuses)."""
    return [{f"{k}": v for k, v in row._asdict().items()} for row in rows]


def _join_in_order(stmt: sa.Select) -> sa.Select:
    """On MySQL/MariaDB, read the data table first (its key order is the output order) and look each
    row's window up in ``partition_log``; left to itself the optimizer may start from
    ``partition_log`` and sort the whole range in a temporary table."""
    return stmt.prefix_with("STRAIGHT_JOIN", dialect="mysql").prefix_with("STRAIGHT_JOIN", dialect="mariadb")


def _to_arrow(values: Sequence[Any], kind: str) -> pa.Array:
    if kind == TIME:
        values = [datetime.fromisoformat(v) if isinstance(v, str) else v for v in values]
    elif kind == DATE:
        values = [date.fromisoformat(v[:10]) if isinstance(v, str) else v for v in values]
    elif kind == FLOAT:
        try:  # floats (and None) as the driver returns DOUBLE columns: converted by Arrow in one call
            return pa.array(values, type=ARROW_TYPES[FLOAT])
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # a Decimal (an aggregate on MySQL)
            values = [None if v is None else float(v) for v in values]
    elif kind == STR_LIST:
        values = [None if v is None else [part.strip() for part in v.split(",") if part.strip()] for v in values]
    return pa.array(values, type=ARROW_TYPES[kind])


def _arrow_column(column: pa.ChunkedArray, kind: str) -> pa.ChunkedArray:
    """A connectorx column as the plan's Arrow type (its naive DATETIME values are UTC)."""
    if kind == STR_LIST:
        return pa.chunked_array([_to_arrow(column.to_pylist(), kind)])
    if kind == TIME and column.type != ARROW_TYPES[TIME]:
        column = pc.cast(column, pa.timestamp("us"))
    return pc.cast(column, ARROW_TYPES[kind])


def window_end(asset: str, start: datetime) -> datetime:
    """The end of the committed window of ``asset`` that starts at ``start`` (macro windows are days)."""
    contract = CONTRACTS_BY_NAME.get(asset)
    return contract.window_end(start) if contract else start + WINDOW
