"""Asset checks on every table of the table contract.

Each table gets one ``@multi_asset_check`` (one step, one read of the run's window range) running
the check kinds :data:`TABLE_CHECKS` gives its :class:`~resources.storage.schema.TableContract`
(whose key, time column and window the checks read). A check that runs inside a partitioned run
reads the run's window range (one window, or a backfill's day); run on its own (from the UI's
"Execute checks"), it reads the last day up to the latest committed window.

Blocking checks (``AssetCheckSeverity.ERROR``, ``blocking=True``) stop downstream assets of the
same run from computing on bad data: duplicate or null keys, impossible prices, sentiment scores
out of range. The others report (coverage, gaps, label mix, NaN ratio) and feed the alerts.

The checks are not partitioned (``partitions_def`` on checks is a preview in Dagster 1.13, and a
run over a range of windows records such a check with no partition); each result carries the
window range it looked at in its metadata instead.

A table whose asset is not in the ``Definitions`` gets no checks: :func:`build_table_checks`
takes the asset list, so an asset that lands later is checked as soon as it is wired in.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import SupportsInt

import dagster as dg
import numpy as np
import pandas as pd
import sqlalchemy as sa

from resources.config.settings import setting_default
from resources.config.universe import Coin, load_universe
from resources.sources.coingecko import MARKET_FIELDS
from resources.sources.market_history import MAX_AGE as HISTORY_MAX_AGE
from resources.sources.simulated import SIMULATED_FUNDING_CAP
from resources.sources.simulated import SOURCE as SIMULATED
from resources.storage.dagster_resources import WarehouseResource
from resources.storage.feature_specs import FEATURE_NAMES, SPARSE_FEATURES
from resources.storage.schema import CONTRACTS, DERIVATIVES, FEATURES, PRICES, SENTIMENT, TableContract
from resources.storage.warehouse import Warehouse, to_naive_utc
from resources.storage.windows import window_starts

# A check run outside a partitioned run (the UI's "Execute checks") looks at this much history.
STANDALONE_SPAN = timedelta(days=1)
# The gap check looks this far back from the end of the checked range.
GAP_HORIZON = timedelta(days=1)
MIN_COVERAGE = 0.9
# A 5-minute close more than 3x, or less than a third, of the previous one is taken as impossible
# (a unit or decimal error, a wrong pair), not as a market move.
MAX_JUMP_FACTOR = 3.0
MAX_NAN_RATIO = 0.2
# The label mix is suspicious when one label holds more than this share of at least this many rows.
MAX_DOMINANT_LABEL_SHARE = 0.95
MIN_ROWS_FOR_LABEL_MIX = 50
PRICE_COLUMNS = ("current_price", "open", "high", "low", "close")
#: The largest funding rate per interval a live perpetual may show: above the widest cap Binance, OKX
#: and Bybit document (they set caps per contract and change them, so the check holds every exchange
#: to this platform bound, and an exchange with a cap of its own in FUNDING_CAPS to that cap).
FUNDING_RATE_BOUND = 0.05
#: Documented funding caps per exchange (the ``exchange`` column), as a fraction per interval.
FUNDING_CAPS: Mapping[str, float] = MappingProxyType({SIMULATED: SIMULATED_FUNDING_CAP})
#: The largest gap between a window's mark and index close (a fraction of the index): the exchanges
#: derive the mark from the index, so a wider gap is a wrong pair or a unit error, not a market.
MAX_PREMIUM = 0.05
#: The features the NaN-ratio check counts: all but the sparse ones and the gap count itself.
DENSE_FEATURES = frozenset(FEATURE_NAMES) - SPARSE_FEATURES - {"bars_missing"}


@dataclass(frozen=True)
class CheckInput:
    """What a check looks at: the table, its time column and the window range [start, end)."""

    warehouse: Warehouse
    table: sa.Table
    time_column: str
    start: datetime
    end: datetime
    window: timedelta
    partitions_start: datetime | None
    #: The metadata of the asset's materialization in this run ({} when run on its own).
    run_metadata: Mapping[str, object] = field(default_factory=dict)
    #: The symbols every window should hold (the price source's universe).
    universe: frozenset[str] = field(default_factory=lambda: universe_symbols(load_universe()))
    #: ``CRYPTO_SNAPSHOT_MAX_AGE_S``: the age bound of a CoinGecko snapshot's market fields.
    snapshot_max_age_s: float = setting_default("snapshot_max_age_s")
    #: The coins that must have a perpetual row in every window, when known up front (the simulated
    #: market's); None: the run's metadata (or the range's rows) say.
    perpetuals: frozenset[str] | None = None

    def in_range(self, *columns: sa.ColumnElement, start: datetime | None = None) -> sa.Select:
        """A SELECT of ``columns`` over [start, end) of the time column."""
        column = self.table.c[self.time_column]
        low, high = start or self.start, self.end
        if isinstance(column.type, sa.Date) and not isinstance(column.type, sa.DateTime):
            return sa.select(*columns).where(column >= low.date(), column < high.date())
        return sa.select(*columns).where(column >= low, column < high)

    def base_metadata(self) -> dict[str, object]:
        return {"window_start": self.start.isoformat(), "window_end": self.end.isoformat()}


Evaluation = Callable[[CheckInput], tuple[bool, str, dict[str, object]]]


@dataclass(frozen=True)
class CheckKind:
    """One kind of check: its name, what it guards, whether it blocks, and its evaluation."""

    name: str
    description: str
    blocking: bool
    severity: dg.AssetCheckSeverity
    evaluate: Evaluation


#: Every check kind by name, in the order they are declared below.
CHECK_KINDS: dict[str, CheckKind] = {}


def check_kind(
    description: str, *, blocking: bool, severity: dg.AssetCheckSeverity | None = None
) -> Callable[[Evaluation], Evaluation]:
    """Declare the decorated evaluation a check kind named after it (severity: ERROR when blocking,
    else WARN)."""

    def declare(evaluate: Evaluation) -> Evaluation:
        if severity is not None:
            level = severity
        else:
            level = dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN
        CHECK_KINDS[evaluate.__name__] = CheckKind(evaluate.__name__, description, blocking, level, evaluate)
        return evaluate

    return declare


# ---------------------------------------------------------------------------------- evaluations
@check_kind("No null key columns and no duplicate keys in the run's windows.", blocking=True)
def unique_non_null_keys(data: CheckInput) -> tuple[bool, str, dict[str, object]]:
    """No row of the range has a null key column, and no key appears twice."""
    keys = [data.table.c[c.name] for c in data.table.primary_key.columns]
    with data.warehouse.engine.connect() as conn:
        rows = conn.execute(data.in_range(sa.func.count())).scalar() or 0
        nulls = conn.execute(data.in_range(sa.func.count()).where(sa.or_(*(k.is_(None) for k in keys)))).scalar() or 0
        grouped = data.in_range(*keys).group_by(*keys).having(sa.func.count() > 1).subquery()
        duplicates = conn.execute(sa.select(sa.func.count()).select_from(grouped)).scalar() or 0
    passed = nulls == 0 and duplicates == 0
    text = f"{rows} rows; {nulls} with a null key; {duplicates} duplicated key(s)"
    return (
        passed,
        text,
        {
            "rows": int(rows),
            "null_key_rows": int(nulls),
            "duplicate_keys": int(duplicates),
            "key": ", ".join(k.name for k in keys),
        },
    )


@check_kind(
    "Every window of the last day (since the first one committed) is in partition_log "
    "(the gap-healing sensor refills missing ones).",
    blocking=False,
)
def no_window_gaps(data: CheckInput) -> tuple[bool, str, dict[str, object]]:
    """Every window of the last day up to the range's end, since the first window ever committed,
    is committed in ``partition_log`` (windows before the platform first ran are not gaps)."""
    start = data.end - max(GAP_HORIZON, data.end - data.start)
    if data.partitions_start is not None:
        start = max(start, data.partitions_start)
    first = data.warehouse.first_committed(data.table.name)
    start = min(max(start, first), data.end) if first is not None else data.end
    expected = window_starts(start, data.end, data.window)
    missing = data.warehouse.uncommitted_windows(data.table.name, start, data.end, data.window)
    text = (
        f"all {len(expected)} windows since {start:%Y-%m-%d %H:%M} committed"
        if not missing
        else f"{len(missing)} of {len(expected)} windows since {start:%Y-%m-%d %H:%M} missing from partition_log"
    )
    return (
        not missing,
        text,
        {
            "gap_horizon_start": start.isoformat(),
            "windows_expected": len(expected),
            "windows_missing": len(missing),
            "missing_windows": dg.MetadataValue.json([w.isoformat() for w in missing[:20]]),
        },
    )


@check_kind(f"Each window holds at least {MIN_COVERAGE:.0%} of the universe's symbols.", blocking=False)
def symbol_coverage(data: CheckInput) -> tuple[bool, str, dict[str, object]]:
    """Every window of the range holds at least 90% of the universe's symbols."""
    universe = data.universe
    frame = data.warehouse.read_frame(data.in_range(data.table.c.symbol, data.table.c[data.time_column]).distinct())
    present = frame[frame["symbol"].isin(universe)] if len(frame) else frame
    windows = window_starts(data.start, data.end, data.window)
    counts = present.groupby(data.time_column)["symbol"].nunique() if len(present) else pd.Series(dtype=float)
    per_window = pd.Series([int(counts.get(pd.Timestamp(w), 0)) for w in windows], dtype=float) / len(universe)
    never = sorted(universe - set(present["symbol"])) if len(present) else sorted(universe)
    worst = float(per_window.min()) if len(per_window) else 0.0
    passed = worst >= MIN_COVERAGE
    text = (
        f"lowest coverage {worst:.1%} of {len(universe)} symbols over {len(windows)} window(s); "
        f"{len(never)} symbol(s) never present"
    )
    return (
        passed,
        text,
        {
            "universe_size": len(universe),
            "min_coverage": round(worst, 4),
            "mean_coverage": round(float(per_window.mean()), 4) if len(per_window) else 0.0,
            "windows_below_threshold": int((per_window < MIN_COVERAGE).sum()),
            "symbols_never_present": dg.MetadataValue.json(never[:50]),
        },
    )


@check_kind(
    f"Prices positive, OHLC bars consistent, no close beyond x{MAX_JUMP_FACTOR:g} of the previous window's.",
    blocking=True,
)
def price_sanity(data: CheckInput) -> tuple[bool, str, dict[str, object]]:
    """Prices are positive, bars are consistent (low <= open, close <= high), and no close moves
    by more than a factor of 3 from the previous window's (compared across the range's start)."""
    t = data.table
    frame = data.warehouse.read_frame(
        data.in_range(
            t.c.symbol, t.c[data.time_column], *(t.c[c] for c in PRICE_COLUMNS), start=data.start - data.window
        )
    )
    in_range = frame[frame[data.time_column] >= pd.Timestamp(data.start)] if len(frame) else frame
    prices = in_range[list(PRICE_COLUMNS)]
    non_positive = int((prices <= 0).any(axis=1).sum())
    bars = in_range.dropna(subset=["open", "high", "low", "close"])
    tolerance = 1e-9
    inconsistent = int(
        (
            (bars["low"] > bars[["open", "close"]].min(axis=1) * (1 + tolerance))
            | (bars["high"] < bars[["open", "close"]].max(axis=1) * (1 - tolerance))
            | (bars["low"] > bars["high"])
        ).sum()
    )
    jumps = pd.DataFrame()
    if len(frame):
        ordered = frame.dropna(subset=["close"]).sort_values(["symbol", data.time_column])
        previous = ordered.groupby("symbol")[["close", data.time_column]].shift(1)
        consecutive = (ordered[data.time_column] - previous[data.time_column]) == pd.Timedelta(data.window)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_move = np.abs(np.log(ordered["close"] / previous["close"]))
        jumped = consecutive & (log_move > math.log(MAX_JUMP_FACTOR)) & (ordered["close"] > 0) & (previous["close"] > 0)
        jumps = ordered.loc[jumped, ["symbol", data.time_column, "close"]].assign(
            previous_close=previous.loc[jumped, "close"]
        )
    passed = non_positive == 0 and inconsistent == 0 and jumps.empty
    text = (
        f"{len(in_range)} rows; {non_positive} with a non-positive price; {inconsistent} inconsistent bar(s); "
        f"{len(jumps)} move(s) beyond x{MAX_JUMP_FACTOR:g} in one window"
    )
    examples = [
        {
            "symbol": r["symbol"],
            "window_start": pd.Timestamp(r[data.time_column]).isoformat(),
            "close": float(r["close"]),
            "previous_close": float(r["previous_close"]),
        }
        for r in jumps.head(10).to_dict("records")
    ]
    return (
        passed,
        text,
        {
            "rows": len(in_range),
            "non_positive_rows": non_positive,
            "inconsistent_bars": inconsistent,
            "impossible_jumps": len(jumps),
            "jump_examples": dg.MetadataValue.json(examples),
        },
    )


@check_kind(
    "Market fields no older than their bound at the window's end; no stale CoinGecko snapshot left out in the run.",
    blocking=False,
)
def market_data_freshness(data: CheckInput) -> tuple[bool, str, dict[str, object]]:
    """Market fields are not older than their bound at the window's end (a snapshot's
    ``CRYPTO_SNAPSHOT_MAX_AGE_S``, the history's 25 h), and no stale CoinGecko snapshot was
    left out in this run (its coins' windows have bars but no market fields)."""
    t = data.table
    frame = data.warehouse.read_frame(
        data.in_range(t.c.source, t.c.close, t.c.market_data_age_s, *(t.c[c] for c in MARKET_FIELDS))
    )
    source = frame["source"].astype(str) if len(frame) else pd.Series(dtype=str)
    age = frame["market_data_age_s"] if len(frame) else pd.Series(dtype=float)
    snapshot = source.str.endswith("+coingecko") | source.eq("coingecko")
    history = source.str.endswith("+coingecko_history")
    bound = data.snapshot_max_age_s
    too_old = int(((snapshot & (age > bound)) | (history & (age > HISTORY_MAX_AGE.total_seconds()))).sum())
    live = frame[~source.eq("simulated")] if len(frame) else frame
    without = int((live["close"].notna() & live[list(MARKET_FIELDS)].isna().any(axis=1)).sum()) if len(live) else 0
    stale_value = data.run_metadata.get("stale_snapshot_count")
    stale_value = getattr(stale_value, "value", stale_value)  # an IntMetadataValue from the run, or a number
    stale = int(stale_value) if isinstance(stale_value, SupportsInt) else 0
    passed = too_old == 0 and stale == 0
    text = (
        f"{len(frame)} rows; {too_old} with market data older than its bound; {stale} stale snapshot(s) left "
        f"out in this run; {without} bar row(s) without every market field"
    )
    return (
        passed,
        text,
        {
            "rows": len(frame),
            "market_data_too_old": too_old,
            "stale_snapshots_left_out": stale,
            "bar_rows_without_market_fields": without,
            "snapshot_max_age_s": bound,
            "max_market_data_age_s": float(age.max()) if age.notna().any() else 0.0,
        },
    )


@check_kind("Sentiment scores in [-1, 1], confidences in [0, 1].", blocking=True)
def score_range(data: CheckInput) -> tuple[bool, str, dict[str, object]]:
    """Sentiment scores lie in [-1, 1] and confidences in [0, 1]."""
    t = data.table
    frame = data.warehouse.read_frame(data.in_range(t.c.sentiment_score, t.c.confidence))
    bad_score = int((~frame["sentiment_score"].between(-1.0, 1.0)).sum()) if len(frame) else 0
    bad_confidence = int((~frame["confidence"].between(0.0, 1.0)).sum()) if len(frame) else 0
    passed = bad_score == 0 and bad_confidence == 0
    return (
        passed,
        (f"{len(frame)} rows; {bad_score} score(s) outside [-1, 1]; {bad_confidence} confidence(s) outside [0, 1]"),
        {"rows": len(frame), "scores_out_of_range": bad_score, "confidences_out_of_range": bad_confidence},
    )


@check_kind(
    f"No sentiment label holds more than {MAX_DOMINANT_LABEL_SHARE:.0%} of the rows (a stuck or broken model).",
    blocking=False,
)
def label_mix(data: CheckInput) -> tuple[bool, str, dict[str, object]]:
    """No single sentiment label holds more than 95% of the range's rows (a stuck or broken model)."""
    t = data.table
    frame = data.warehouse.read_frame(data.in_range(t.c.label, sa.func.count().label("n")).group_by(t.c.label))
    counts = {str(label): int(n) for label, n in zip(frame["label"], frame["n"], strict=True)}
    total = sum(counts.values())
    dominant, top = max(counts.items(), key=lambda kv: kv[1]) if counts else ("", 0)
    share = top / total if total else 0.0
    passed = total < MIN_ROWS_FOR_LABEL_MIX or share <= MAX_DOMINANT_LABEL_SHARE
    text = f"{total} rows; labels {counts}" if total else "no sentiment rows in range"
    if not passed:
        text = f"{share:.0%} of {total} rows are {dominant!r}; labels {counts}"
    return (
        passed,
        text,
        {
            "rows": total,
            "label_counts": dg.MetadataValue.json(counts),
            "dominant_label": dominant,
            "dominant_share": round(share, 4),
        },
    )


@check_kind(
    f"No feature is missing in more than {MAX_NAN_RATIO:.0%} of the rows.",
    blocking=False,
    severity=dg.AssetCheckSeverity.ERROR,
)
def feature_nan_ratio(data: CheckInput) -> tuple[bool, str, dict[str, object]]:
    """No dense feature is missing (NaN/NULL) in more than 20% of the range's warmed-up rows.

    Sparse features (sentiment with no news, macro before a series' first release) are NULL by
    design and left out; rows whose lookback has missing bars (``bars_missing > 0``: warm-up or a
    gap) are left out too, since their window-based features are NULL by design.
    """
    t = data.table
    features = [c for c in t.columns if c.name in DENSE_FEATURES]
    counts = [sa.func.count(c).label(c.name) for c in features]
    query = data.in_range(sa.func.count().label("__rows__"), *counts)
    if "bars_missing" in t.c:
        query = query.where(t.c.bars_missing == 0)
    with data.warehouse.engine.connect() as conn:
        row = conn.execute(query).one()._mapping
    rows = int(row["__rows__"] or 0)
    ratios = {c.name: (1.0 - int(row[c.name] or 0) / rows) if rows else 0.0 for c in features}
    worst = sorted(ratios.items(), key=lambda kv: kv[1], reverse=True)
    over = [name for name, ratio in worst if ratio > MAX_NAN_RATIO]
    passed = not over
    text = (
        f"{rows} rows, {len(features)} features; worst {worst[0][0]} {worst[0][1]:.1%} missing"
        if worst and rows
        else f"{rows} rows"
    )
    if over:
        text = f"{len(over)} feature(s) over {MAX_NAN_RATIO:.0%} missing: {', '.join(over[:10])}"
    return (
        passed,
        text,
        {
            "rows": rows,
            "features": len(features),
            "features_over_threshold": dg.MetadataValue.json(over),
            "worst_nan_ratios": dg.MetadataValue.json({k: round(v, 4) for k, v in worst[:10]}),
        },
    )


def _metadata_list(metadata: Mapping[str, object], name: str) -> list[str] | None:
    """A list the run's materialization metadata holds under ``name`` (a JSON value), None if absent."""
    value = metadata.get(name)
    value = getattr(value, "data", value)  # a JsonMetadataValue from the run, or a plain list
    return [str(v) for v in value] if isinstance(value, list) else None


def _max_or_zero(values: pd.Series) -> float:
    """The largest of ``values`` (0.0 when none is known)."""
    top = values.max()
    return float(top) if pd.notna(top) else 0.0


@check_kind(
    f"Each window holds a row for at least {MIN_COVERAGE:.0%} of the coins with a perpetual on the configured "
    "exchanges.",
    blocking=False,
)
def perpetual_coverage(data: CheckInput) -> tuple[bool, str, dict[str, object]]:
    """Every window of the range holds a row for at least 90% of the coins with a perpetual swap.

    The coins expected are those with a perpetual on the configured exchanges: offline, the
    simulated market's perpetuals (known up front); live, the coins the run served plus those it
    reports missing (an exchange lists the perpetual but refused or failed it), so a coin that no
    exchange lists is never expected, and a listed coin an exchange stopped answering for is. A
    check run on its own, live, expects the coins served somewhere in the range. No coin with a
    perpetual (no exchange configured) passes: nothing is expected.
    """
    t = data.table
    frame = data.warehouse.read_frame(data.in_range(t.c.symbol, t.c[data.time_column]).distinct())
    seen = set(frame["symbol"]) if len(frame) else set()
    served = _metadata_list(data.run_metadata, "symbols_served")
    missing = _metadata_list(data.run_metadata, "symbols_missing")
    if data.perpetuals is not None:
        expected, basis = set(data.perpetuals), "the simulated market's perpetuals"
    elif served is not None:
        expected, basis = set(served) | set(missing or ()), "the coins the run served or reported missing"
    else:
        expected, basis = seen, "the coins served in the range"
    windows = window_starts(data.start, data.end, data.window)
    present = frame[frame["symbol"].isin(expected)] if len(frame) else frame
    counts = present.groupby(data.time_column)["symbol"].nunique() if len(present) else pd.Series(dtype=float)
    per_window = pd.Series([int(counts.get(pd.Timestamp(w), 0)) for w in windows], dtype=float)
    share = per_window / len(expected) if expected else pd.Series(1.0, index=per_window.index)
    worst = float(share.min()) if len(share) else 1.0
    never = sorted(expected - seen)
    passed = worst >= MIN_COVERAGE
    text = (
        f"lowest coverage {worst:.1%} of {len(expected)} coins with a perpetual ({basis}) over {len(windows)} "
        f"window(s); {len(never)} never present"
        if expected
        else "no coin has a perpetual on the configured exchanges"
    )
    return (
        passed,
        text,
        {
            "perpetuals_expected": len(expected),
            "expected_from": basis,
            "min_coverage": round(worst, 4),
            "windows_below_threshold": int((share < MIN_COVERAGE).sum()),
            "symbols_never_present": dg.MetadataValue.json(never[:50]),
        },
    )


@check_kind(
    f"Funding within the exchange's cap (or |rate| <= {FUNDING_RATE_BOUND:g}), open interest non-negative, mark "
    f"within {MAX_PREMIUM:.0%} of index, funding settled before the window's end.",
    blocking=False,
    severity=dg.AssetCheckSeverity.ERROR,
)
def derivatives_sanity(data: CheckInput) -> tuple[bool, str, dict[str, object]]:
    """Every row of the range is a plausible perpetual: the funding rate in force and the predicted
    one within the exchange's documented cap (:data:`FUNDING_CAPS`) or else the platform bound
    :data:`FUNDING_RATE_BOUND`; open interest (contracts and notional) non-negative; the mark close
    within :data:`MAX_PREMIUM` of the index close; the funding settlement before the window's end
    and the open-interest observation no later than it (point in time). Not blocking: a premium
    past the bound in a crash is rare but real, and the features of the run need not wait on it.
    """
    t = data.table
    frame = data.warehouse.read_frame(
        data.in_range(
            t.c.symbol,
            t.c[data.time_column],
            t.c.exchange,
            t.c.mark_close,
            t.c.index_close,
            t.c.funding_rate,
            t.c.next_funding_rate,
            t.c.funding_time,
            t.c.open_interest,
            t.c.open_interest_value,
            t.c.open_interest_at,
        )
    )
    if frame.empty:
        return True, "no derivatives rows in range", {"rows": 0}
    cap = frame["exchange"].map(lambda e: FUNDING_CAPS.get(str(e), FUNDING_RATE_BOUND)) * (1 + 1e-9)
    over_cap = (frame["funding_rate"].abs() > cap) | (frame["next_funding_rate"].abs() > cap)
    negative_oi = (frame["open_interest"] < 0) | (frame["open_interest_value"] < 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        premium = (frame["mark_close"] / frame["index_close"] - 1.0).abs()
    wide = premium > MAX_PREMIUM
    window_end = pd.to_datetime(frame[data.time_column]) + pd.Timedelta(data.window)
    late = (pd.to_datetime(frame["funding_time"]) >= window_end) | (
        pd.to_datetime(frame["open_interest_at"]) > window_end
    )
    bad = over_cap | negative_oi | wide | late
    examples = [
        {
            "symbol": r["symbol"],
            "window_start": pd.Timestamp(r[data.time_column]).isoformat(),
            "exchange": r["exchange"],
        }
        for r in frame.loc[bad].head(10).to_dict("records")
    ]
    text = (
        f"{len(frame)} rows; {int(over_cap.sum())} funding rate(s) over the cap; {int(negative_oi.sum())} negative "
        f"open interest; {int(wide.sum())} mark(s) beyond {MAX_PREMIUM:.0%} of index; {int(late.sum())} funding or "
        "open interest from after the window's end"
    )
    return (
        not bad.any(),
        text,
        {
            "rows": len(frame),
            "funding_over_cap": int(over_cap.sum()),
            "negative_open_interest": int(negative_oi.sum()),
            "premium_beyond_bound": int(wide.sum()),
            "after_window_end": int(late.sum()),
            "max_abs_funding_rate": _max_or_zero(frame["funding_rate"].abs()),
            "max_abs_premium": _max_or_zero(premium),
            "examples": dg.MetadataValue.json(examples),
        },
    )


#: The checks of particular tables, beyond the key check every table gets and the gap check every
#: 5-minute table gets.
_TABLE_KINDS: Mapping[TableContract, tuple[str, ...]] = {
    PRICES: ("price_sanity", "symbol_coverage", "market_data_freshness"),
    SENTIMENT: ("score_range", "label_mix"),
    FEATURES: ("feature_nan_ratio", "symbol_coverage"),
    DERIVATIVES: ("derivatives_sanity", "perpetual_coverage"),
}
#: The check kinds of every table of the contract.
TABLE_CHECKS: Mapping[TableContract, tuple[str, ...]] = MappingProxyType(
    {
        c: ("unique_non_null_keys", *_TABLE_KINDS.get(c, ()), *(() if c.daily else ("no_window_gaps",)))
        for c in CONTRACTS
    }
)


# ---------------------------------------------------------------------------------- definitions
def checked_range(
    context: dg.AssetCheckExecutionContext,
    partitions_def: dg.PartitionsDefinition | None,
    contract: TableContract,
    warehouse: Warehouse,
) -> tuple[datetime, datetime] | None:
    """The window range a check looks at: the run's partition range, else the last committed day."""
    op = context.op_execution_context
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition) and (
        op.has_partition_key_range or op.has_partition_key
    ):
        first, last = (
            (op.partition_key_range.start, op.partition_key_range.end)
            if op.has_partition_key_range
            else (op.partition_key, op.partition_key)
        )
        start = partitions_def.time_window_for_partition_key(first).start
        end = partitions_def.time_window_for_partition_key(last).end
        return to_naive_utc(start), to_naive_utc(end)
    latest = warehouse.latest_committed(contract.asset)
    if latest is None:
        return None
    end = contract.window_end(to_naive_utc(latest))
    return end - STANDALONE_SPAN, end


def _run_materialization_metadata(context: dg.AssetCheckExecutionContext, asset: str) -> Mapping[str, object]:
    """The metadata of ``asset``'s latest materialization, if this run made it."""
    entry = context.instance.get_latest_materialization_event(dg.AssetKey(asset))
    if entry is None or entry.run_id != context.op_execution_context.run_id or entry.asset_materialization is None:
        return {}
    return entry.asset_materialization.metadata


def universe_symbols(coins: Sequence[Coin]) -> frozenset[str]:
    """The symbols of ``coins``: what ``symbol_coverage`` expects in every window."""
    return frozenset(coin.symbol for coin in coins)


def build_table_check(
    contract: TableContract,
    partitions_def: dg.PartitionsDefinition | None,
    universe: frozenset[str] | None = None,
    snapshot_max_age_s: float = setting_default("snapshot_max_age_s"),
    perpetuals: frozenset[str] | None = None,
) -> dg.AssetChecksDefinition:
    """One multi-asset check (one step) running every check of ``contract``'s table over the run's
    windows, expecting the symbols of ``universe`` (the shipped universe's by default) and, for the
    derivatives, a perpetual of each of ``perpetuals`` (None: of the coins the run served or missed)."""
    expected = universe if universe is not None else universe_symbols(load_universe())
    kinds = [CHECK_KINDS[name] for name in TABLE_CHECKS[contract]]
    partitions_start = (
        to_naive_utc(partitions_def.start) if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition) else None
    )

    @dg.multi_asset_check(
        name=f"{contract.asset}_checks",
        specs=[
            dg.AssetCheckSpec(kind.name, asset=contract.asset, description=kind.description, blocking=kind.blocking)
            for kind in kinds
        ],
        can_subset=True,
        description=f"Data-quality checks of the {contract.name} table over the run's windows.",
    )
    def table_checks(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
        wh = warehouse.get()
        window_range = checked_range(context, partitions_def, contract, wh)
        run_metadata = _run_materialization_metadata(context, contract.asset)
        for check_key in context.selected_asset_check_keys:
            kind = CHECK_KINDS[check_key.name]
            if window_range is None:
                yield dg.AssetCheckResult(
                    asset_key=check_key.asset_key,
                    check_name=kind.name,
                    passed=True,
                    severity=kind.severity,
                    description="nothing committed yet",
                )
                continue
            data = CheckInput(
                wh,
                wh.table(contract.name),
                contract.time_column,
                *window_range,
                contract.window,
                partitions_start,
                run_metadata,
                expected,
                snapshot_max_age_s,
                perpetuals,
            )
            passed, text, metadata = kind.evaluate(data)
            yield dg.AssetCheckResult(
                asset_key=check_key.asset_key,
                check_name=kind.name,
                passed=bool(passed),
                severity=kind.severity,
                description=text,
                # The checks' metadata are plain numbers, strings, lists and dicts, which Dagster takes
                # as metadata values; its annotation names each kind, not a Mapping[str, object].
                metadata={**data.base_metadata(), **metadata},  # type: ignore[dict-item]
            )

    return table_checks


def build_table_checks(
    assets: Sequence[dg.AssetsDefinition],
    *,
    universe: Sequence[Coin] | None = None,
    snapshot_max_age_s: float = setting_default("snapshot_max_age_s"),
    perpetuals: frozenset[str] | None = None,
) -> list[dg.AssetChecksDefinition]:
    """The table checks of every table whose asset is among ``assets``, expecting the coins of
    ``universe`` (the price source's; the shipped universe by default) and a perpetual of each of
    ``perpetuals`` (known up front in simulated mode; None: each run's metadata says)."""
    by_key = {key.to_user_string(): asset for asset in assets for key in asset.keys}
    expected = universe_symbols(universe) if universe is not None else None
    return [
        build_table_check(c, by_key[c.asset].partitions_def, expected, snapshot_max_age_s, perpetuals)
        for c in TABLE_CHECKS
        if c.asset in by_key
    ]
