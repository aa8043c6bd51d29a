"""Compute the catalogued features for a range of 5-minute windows (pure: DataFrames in, DataFrame out).

Inputs are the raw tables as read from the warehouse: ``price_data_real`` rows from
``PRICE_LOOKBACK_WINDOWS - 1`` windows before the range's start, ``sentiment_data`` rows,
``macro_indicators`` rows and ``derivatives_data`` rows (see
:mod:`crypto_assets.features.derivatives_features`). The prices are laid out on a complete (symbol x 5-minute) grid: a
missing bar stays NaN (never forward-filled), and every feature of a window is computed from a
fixed number of bars ending at it (see :mod:`crypto_assets.features.kernels`), so its value is
the same whether the window is computed alone, inside a backfill range, or later again.

Rows: one per (symbol, window) for every symbol with at least one price bar among the window's
last ``PRICE_LOOKBACK_WINDOWS`` windows, even when the window's own bar is missing (its features
are then NULL and ``bars_missing`` says how much history is absent). Market-wide and
cross-sectional features use only the symbols that have a row in that window.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from crypto_assets.features import indicators as ta
from crypto_assets.features.derivatives_features import (
    DerivativesGrid,
    build_derivatives_grid,
    derivatives_features,
    derivatives_market_features,
    open_interest_value,
)
from crypto_assets.features.kernels import (
    NAN,
    Block,
    MissingCounts,
    cross_section_rank,
    cross_section_zscore,
    fir,
    rolling_extreme,
    rolling_sums,
    row_sums,
    safe_div,
    sample_var,
)
from resources.storage.feature_specs import (
    ADX_WINDOW,
    ALPHA_WINDOWS,
    ATR_WINDOW,
    CROSS_SECTION_RANKED,
    CROSS_SECTION_ZSCORED,
    DAY_WINDOWS,
    EMA_PERIODS,
    FAMILIES,
    FEATURE_NAMES,
    FEATURE_SET_VERSION,
    HOUR_WINDOWS,
    MACD_WINDOW,
    MACRO_AVAILABILITY_LAG,
    MACRO_SERIES,
    OBV_WINDOW,
    PRICE_LOOKBACK_WINDOWS,
    RETURN_HORIZONS,
    RSI_PERIODS,
    SENTIMENT_HALF_LIFE_WINDOWS,
    SENTIMENT_HORIZONS,
    SMA_PERIODS,
    features_in_family,
)
from resources.storage.windows import WINDOW

PRICE_INPUT_COLUMNS = (
    "symbol",
    "window_start",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "current_price",
    "market_cap",
    "volume_24h",
    "price_change_pct_24h",
)
SENTIMENT_INPUT_COLUMNS = ("symbol", "window_start", "item_id", "model", "sentiment_score", "confidence", "label")
MACRO_INPUT_COLUMNS = ("series_id", "observation_date", "value", "realtime_start")
#: Target windows computed together (bounded memory, cache-sized arrays); any value gives the same result.
DEFAULT_CHUNK_WINDOWS = 288
BTC = "BTC"
_WINDOW_NS = np.int64(WINDOW.total_seconds() * 1e9)
_WARMUP = PRICE_LOOKBACK_WINDOWS - 1


def history_start(start: datetime) -> datetime:
    """The first window whose price bar the range starting at ``start`` reads."""
    return start - _WARMUP * WINDOW


def sentiment_start(start: datetime) -> datetime:
    """The first window whose sentiment the range starting at ``start`` reads."""
    return start - (max(SENTIMENT_HORIZONS.values()) - 1) * WINDOW


# ------------------------------------------------------------------------------------------ grids
@dataclass
class PriceGrid:
    """Prices on a complete (symbol x window) grid: the warm-up windows, then the target windows."""

    symbols: np.ndarray
    times: np.ndarray  # datetime64[ns] window starts, length T
    arrays: dict[str, np.ndarray]  # (S, T), NaN where missing
    derived: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def btc(self) -> int | None:
        hits = np.flatnonzero(self.symbols == BTC)
        return int(hits[0]) if len(hits) else None


def _positions(times: pd.Series, first: np.datetime64, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid column of each time, and which times fall on the grid."""
    times_ns = pd.to_datetime(times).to_numpy(dtype="datetime64[ns]").astype(np.int64)
    offset = times_ns - first.astype("datetime64[ns]").astype(np.int64)
    column = offset // _WINDOW_NS
    on_grid = (offset % _WINDOW_NS == 0) & (column >= 0) & (column < length)
    return column, on_grid


def _positive(values: np.ndarray) -> np.ndarray:
    return np.where(values > 0, values, NAN)


def build_price_grid(prices: pd.DataFrame, start: datetime, end: datetime) -> PriceGrid:
    """Lay ``price_data_real`` rows on the grid of [history_start(start), end) (missing bars: NaN)."""
    first = np.datetime64(history_start(start), "ns")
    n_targets = int((end - start) / WINDOW)
    length = _WARMUP + n_targets
    times = first + np.arange(length, dtype=np.int64) * np.timedelta64(_WINDOW_NS, "ns")
    frame = prices.loc[:, [name for name in PRICE_INPUT_COLUMNS if name in prices.columns]]
    column, on_grid = (
        _positions(frame["window_start"], first, length) if len(frame) else (np.array([], int), np.array([], bool))
    )
    frame = frame.loc[on_grid]
    column = column[on_grid]
    row, labels = pd.factorize(frame["symbol"].astype(str), sort=True)
    symbols = np.asarray(labels, dtype=object)

    def scatter(name: str) -> np.ndarray:
        out = np.full((len(symbols), length), NAN)
        if name in frame.columns and len(frame):
            out[row, column] = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64, na_value=NAN)
        return out

    close = _positive(scatter("close"))
    current = _positive(scatter("current_price"))
    price = np.where(np.isnan(close), current, close)
    snapshot = np.where(~np.isnan(close), 0.0, np.where(~np.isnan(current), 1.0, NAN))
    volume = scatter("volume")
    volume_24h = scatter("volume_24h")
    arrays = {
        "price": price,
        "open": _positive(scatter("open")),
        "high": _positive(scatter("high")),
        "low": _positive(scatter("low")),
        "volume": np.where(volume >= 0, volume, NAN),
        "market_cap": _positive(scatter("market_cap")),
        "volume_24h": np.where(volume_24h >= 0, volume_24h, NAN),
        "change_pct_24h": scatter("price_change_pct_24h"),
        "snapshot": snapshot,
    }
    grid = PriceGrid(symbols=symbols, times=times, arrays=arrays)
    grid.derived = _derived(arrays)
    return grid


def _lag1(values: np.ndarray) -> np.ndarray:
    out = np.full(values.shape, NAN)
    out[..., 1:] = values[..., :-1]
    return out


def _derived(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-bar series every window reuses (element-wise, so exact whatever the grid's extent)."""
    price, high, low, open_, volume = arrays["price"], arrays["high"], arrays["low"], arrays["open"], arrays["volume"]
    prev_price = _lag1(price)
    prev_volume = _lag1(volume)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_price = np.log(price)
        log_return = log_price - _lag1(log_price)
        ratio = price / prev_price
        change = price - prev_price
        volume_change = volume - prev_volume
        typical = (high + low + price) / 3.0
        hl2 = np.log(high / low) ** 2
        co2 = np.log(price / open_) ** 2
        true_range = np.maximum(np.maximum(high - low, np.abs(high - prev_price)), np.abs(low - prev_price))
        squared = log_return * log_return
        return {
            "prev_price": prev_price,
            "log_return": log_return,
            "log_return2": squared,
            "log_return3": squared * log_return,
            "log_return4": squared * squared,
            "downside2": np.minimum(log_return, 0.0) ** 2,
            "upside2": np.maximum(log_return, 0.0) ** 2,
            "abs_log_return": np.abs(log_return),
            "ratio": ratio,
            "change": change,
            "gain": np.maximum(change, 0.0),
            "loss": np.maximum(-change, 0.0),
            "volume_change": volume_change,
            "log_volume": np.log(volume + 1.0),
            "log_volume_ratio": np.log(volume / prev_volume + 1.0),
            "weighted_move": np.abs(ratio - 1.0) * volume,
            "typical": typical,
            "typical_volume": typical * volume,
            "dollar_volume": volume * price,
            "true_range": true_range,
            "hl2": hl2,
            "gk": 0.5 * hl2 - (2.0 * math.log(2.0) - 1.0) * co2,
        }


@dataclass
class SentimentGrid:
    """Per-(symbol, window) sentiment aggregates on the price grid (0 where there are no items)."""

    count: np.ndarray
    score: np.ndarray
    bullish: np.ndarray
    bearish: np.ndarray
    confidence: np.ndarray


def build_sentiment_grid(sentiment: pd.DataFrame | None, grid: PriceGrid) -> SentimentGrid:
    """Aggregate ``sentiment_data`` rows per (symbol, window) of ``grid``.

    An item scored by several models counts once: its score, bullish/bearish votes and confidence
    are averaged over the models. Labels are compared case-insensitively.
    """
    shape = (len(grid.symbols), len(grid.times))
    zeros = {name: np.zeros(shape) for name in ("count", "score", "bullish", "bearish", "confidence")}
    if sentiment is None or not len(sentiment) or not len(grid.symbols):
        return SentimentGrid(**zeros)
    frame = sentiment.loc[sentiment["symbol"].isin(grid.symbols)]
    column, on_grid = _positions(frame["window_start"], grid.times[0], shape[1])
    frame = frame.loc[on_grid].assign(column=column[on_grid])
    if not len(frame):
        return SentimentGrid(**zeros)
    label = frame["label"].astype(str).str.lower()
    frame = frame.assign(
        score=pd.to_numeric(frame["sentiment_score"], errors="coerce").astype(float),
        bullish=(label == "bullish").astype(float),
        bearish=(label == "bearish").astype(float),
        confidence=pd.to_numeric(frame["confidence"], errors="coerce").astype(float),
        item_id=frame["item_id"].astype(str),
        model=frame["model"].astype(str) if "model" in frame.columns else "",
    ).sort_values(["symbol", "column", "item_id", "model"], kind="mergesort")
    items = frame.groupby(["symbol", "column", "item_id"], sort=True)[
        ["score", "bullish", "bearish", "confidence"]
    ].mean()
    cells = items.groupby(level=["symbol", "column"], sort=True).agg(
        count=("score", "size"),
        score=("score", "sum"),
        bullish=("bullish", "sum"),
        bearish=("bearish", "sum"),
        confidence=("confidence", "sum"),
    )
    row = np.searchsorted(grid.symbols, cells.index.get_level_values("symbol").to_numpy(dtype=object))
    col = cells.index.get_level_values("column").to_numpy(dtype=np.int64)
    for name, target in zeros.items():
        target[row, col] = cells[name].to_numpy(dtype=np.float64)
    return SentimentGrid(**zeros)


# ------------------------------------------------------------------------------------------ macro
@dataclass(frozen=True)
class MacroState:
    """One series' observations in order of availability, with the latest two known at each step."""

    available_at: np.ndarray  # datetime64[ns], ascending
    latest_date: np.ndarray  # datetime64[ns] observation date of the latest known observation
    latest_value: np.ndarray
    previous_value: np.ndarray  # the observation before the latest (by date), NaN if none
    year_ago_value: np.ndarray  # the observation dated exactly a year before the latest, NaN if none


def prepare_macro(macro: pd.DataFrame | None) -> dict[str, MacroState]:
    """Index ``macro_indicators`` rows per catalogued series for point-in-time lookups.

    An observation with ``realtime_start`` D becomes known at D + ``MACRO_AVAILABILITY_LAG``.
    Observations without a value (FRED's ".") are ignored: the previous value stays the latest.
    """
    states: dict[str, MacroState] = {}
    if macro is None or not len(macro):
        return states
    frame = macro.loc[macro["series_id"].isin(list(MACRO_SERIES))].copy()
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    frame = frame.loc[frame["value"].notna() & np.isfinite(frame["value"])]
    frame["observation_date"] = pd.to_datetime(frame["observation_date"]).astype("datetime64[ns]")
    frame["available_at"] = pd.to_datetime(frame["realtime_start"]).astype("datetime64[ns]") + pd.Timedelta(
        MACRO_AVAILABILITY_LAG
    )
    for series_id, rows in frame.groupby("series_id", sort=True):
        rows = rows.sort_values(["available_at", "observation_date"], kind="mergesort")
        observed = rows["observation_date"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        available = rows["available_at"].to_numpy(dtype="datetime64[ns]")
        values = rows["value"].to_numpy(dtype=float)
        by_date = dict(zip(observed.tolist(), values.tolist()))
        available_since = dict(zip(observed.tolist(), available.astype(np.int64).tolist()))
        # after each observation becomes known: the newest observation date and the one before it
        known: list[int] = []
        latest, previous = [], []
        for obs in observed.tolist():
            bisect.insort(known, obs)
            latest.append(known[-1])
            previous.append(by_date[known[-2]] if len(known) > 1 else NAN)
        latest_dates = np.array(latest, dtype=np.int64).astype("datetime64[ns]")
        year_ago = (pd.DatetimeIndex(latest_dates) - pd.DateOffset(years=1)).to_numpy(dtype="datetime64[ns]")
        year_ago_value = [
            by_date[ago] if ago in available_since and available_since[ago] <= at else NAN
            for ago, at in zip(year_ago.astype(np.int64).tolist(), available.astype(np.int64).tolist())
        ]
        states[str(series_id)] = MacroState(
            available_at=available,
            latest_date=latest_dates,
            latest_value=np.array([by_date[date] for date in latest], dtype=float),
            previous_value=np.array(previous, dtype=float),
            year_ago_value=np.array(year_ago_value, dtype=float),
        )
    return states


def macro_asof(states: Mapping[str, MacroState], window_ends: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """For each catalogued series: latest, previous and year-ago values known at each window end."""
    out: dict[str, dict[str, np.ndarray]] = {}
    count = len(window_ends)
    for series_id, spec in MACRO_SERIES.items():
        state = states.get(series_id)
        values = {key: np.full(count, NAN) for key in ("latest", "previous", "year_ago")}
        if state is not None and len(state.available_at):
            index = np.searchsorted(state.available_at, window_ends, side="right") - 1
            known = index >= 0
            safe = np.where(known, index, 0)
            age = window_ends - state.latest_date[safe]
            fresh = known & (age <= np.timedelta64(spec.max_age_days, "D"))
            values["latest"] = np.where(fresh, state.latest_value[safe], NAN)
            values["previous"] = np.where(fresh, state.previous_value[safe], NAN)
            values["year_ago"] = np.where(fresh, state.year_ago_value[safe], NAN)
        out[series_id] = values
    return out


# ------------------------------------------------------------------------------------------ families
@dataclass
class _Chunk:
    grid: PriceGrid
    block: Block
    missing: MissingCounts
    sentiment: SentimentGrid
    macro: Mapping[str, MacroState]
    derivatives: DerivativesGrid
    out: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def derivatives_block(self) -> Block:
        """The derivatives grid's columns of this chunk's target windows."""
        return self.derivatives.block(self.block.lo - _WARMUP, self.block.hi - _WARMUP)

    def at(self, name: str, lag: int = 0) -> np.ndarray:
        source = self.grid.arrays.get(name)
        if source is None:
            source = self.grid.derived[name]
        return self.block.at(source, lag)

    def series(self, name: str) -> np.ndarray:
        source = self.grid.arrays.get(name)
        return source if source is not None else self.grid.derived[name]

    def complete(self, names: tuple[str, ...], length: int) -> np.ndarray:
        return self.missing.complete(self.block, names, length)

    def put(self, name: str, values: np.ndarray, mask: np.ndarray | None = None) -> None:
        if mask is not None:
            values = np.where(mask, values, NAN)
        self.out[name] = values


def _returns(chunk: _Chunk) -> None:
    price = chunk.at("price")
    with np.errstate(divide="ignore", invalid="ignore"):
        for label, lag in RETURN_HORIZONS.items():
            chunk.put(f"ret_{label}", price / chunk.at("price", lag) - 1.0)
        for lag in (1, 2):
            chunk.put(f"ret_5m_lag{lag}", chunk.at("price", lag) / chunk.at("price", lag + 1) - 1.0)
    chunk.put("ret_24h_snapshot", chunk.at("change_pct_24h") / 100.0)


def _volatility(chunk: _Chunk) -> None:
    block = chunk.block
    moments = rolling_sums(
        lambda lag: {
            "ret": chunk.at("log_return", lag),
            "ret2": chunk.at("log_return2", lag),
            "ret3": chunk.at("log_return3", lag),
            "ret4": chunk.at("log_return4", lag),
        },
        (HOUR_WINDOWS, 48, DAY_WINDOWS),
    )
    semi = rolling_sums(lambda lag: {"down": chunk.at("downside2", lag), "up": chunk.at("upside2", lag)}, (48,))[48]
    ranges = rolling_sums(
        lambda lag: {"hl2": chunk.at("hl2", lag), "gk": chunk.at("gk", lag)}, (HOUR_WINDOWS, 48, DAY_WINDOWS)
    )
    highs = rolling_extreme(block, chunk.series("high"), (HOUR_WINDOWS, 48, DAY_WINDOWS), largest=True)
    lows = rolling_extreme(block, chunk.series("low"), (HOUR_WINDOWS, 48, DAY_WINDOWS), largest=False)
    price = chunk.at("price")
    rv = {}
    for label, width in (("1h", HOUR_WINDOWS), ("4h", 48), ("1d", DAY_WINDOWS)):
        total = moments[width]
        rv[label] = np.sqrt(sample_var(total["ret"], total["ret2"], width))
        chunk.put(f"rv_{label}", rv[label])
        chunk.put(f"parkinson_vol_{label}", np.sqrt(ranges[width]["hl2"] / (4.0 * width * math.log(2.0))))
        chunk.put(f"range_{label}", (highs[width] - lows[width]) / price)
        if width != DAY_WINDOWS:
            chunk.put(f"garman_klass_vol_{label}", np.sqrt(np.maximum(ranges[width]["gk"] / width, 0.0)))
    chunk.put("downside_vol_4h", np.sqrt(semi["down"] / 48))
    chunk.put("upside_vol_4h", np.sqrt(semi["up"] / 48))
    chunk.put("rv_ratio_1h_1d", safe_div(rv["1h"], rv["1d"]))
    skew, kurt = _skew_kurt(moments[DAY_WINDOWS], DAY_WINDOWS)
    chunk.put("ret_skew_1d", skew)
    chunk.put("ret_kurt_1d", kurt)


def _skew_kurt(sums: Mapping[str, np.ndarray], count: int) -> tuple[np.ndarray, np.ndarray]:
    """Bias-corrected sample skewness and excess kurtosis from raw power sums (pandas' formulas)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = sums["ret"] / count
        variance = sums["ret2"] / count - mean * mean
        third_moment = sums["ret3"] / count - mean * mean * mean - 3.0 * mean * variance
        fourth_moment = sums["ret4"] / count - mean**4 - 6.0 * variance * mean * mean - 4.0 * third_moment * mean
        defined = variance > 1e-14
        std = np.sqrt(np.where(defined, variance, 1.0))
        skew = (math.sqrt(count * (count - 1.0)) * third_moment) / ((count - 2.0) * std * std * std)
        kurt = ((count * count - 1.0) * fourth_moment / (variance * variance) - 3.0 * (count - 1.0) ** 2) / (
            (count - 2.0) * (count - 3.0)
        )
    return np.where(defined, skew, NAN), np.where(defined, kurt, NAN)


def _candle(chunk: _Chunk) -> None:
    open_, high, low, close = chunk.at("open"), chunk.at("high"), chunk.at("low"), chunk.at("price")
    span = high - low + 1e-12
    top = np.maximum(open_, close)
    bottom = np.minimum(open_, close)
    with np.errstate(divide="ignore", invalid="ignore"):
        chunk.put("kmid", (close - open_) / open_)
        chunk.put("klen", (high - low) / open_)
        chunk.put("kmid2", (close - open_) / span)
        chunk.put("kup", (high - top) / open_)
        chunk.put("kup2", (high - top) / span)
        chunk.put("klow", (bottom - low) / open_)
        chunk.put("klow2", (bottom - low) / span)
        chunk.put("ksft", (2.0 * close - high - low) / open_)
        chunk.put("ksft2", (2.0 * close - high - low) / span)
        chunk.put("open0", open_ / close)
        chunk.put("high0", high / close)
        chunk.put("low0", low / close)


def _rolling(chunk: _Chunk) -> None:
    """Qlib Alpha158's rolling operators, with sums shifted by the window's own value for accuracy."""
    block = chunk.block
    series = {
        name: chunk.series(name)
        for name in (
            "price",
            "volume",
            "log_volume",
            "ratio",
            "log_volume_ratio",
            "change",
            "volume_change",
            "weighted_move",
        )
    }
    price_now = block.at(series["price"])
    log_volume_now = block.at(series["log_volume"])
    ratio_now = block.at(series["ratio"])
    log_volume_ratio_now = block.at(series["log_volume_ratio"])
    volume_now = block.at(series["volume"])
    weighted_move_now = block.at(series["weighted_move"])

    def terms(lag: int) -> dict[str, np.ndarray]:
        price_then = block.at(series["price"], lag)
        price_diff = price_then - price_now
        log_volume_diff = block.at(series["log_volume"], lag) - log_volume_now
        ratio_diff = block.at(series["ratio"], lag) - ratio_now
        log_volume_ratio_diff = block.at(series["log_volume_ratio"], lag) - log_volume_ratio_now
        price_change = block.at(series["change"], lag)
        volume_change = block.at(series["volume_change"], lag)
        volume_diff = block.at(series["volume"], lag) - volume_now
        weighted_move_diff = block.at(series["weighted_move"], lag) - weighted_move_now
        return {
            "price": price_diff,
            "price2": price_diff * price_diff,
            "lag_price": lag * price_diff,
            "less": price_then < price_now,
            "equal": price_then == price_now,
            "log_volume": log_volume_diff,
            "log_volume2": log_volume_diff * log_volume_diff,
            "price_log_volume": log_volume_diff * price_diff,
            "ratio": ratio_diff,
            "log_volume_ratio": log_volume_ratio_diff,
            "ratio2": ratio_diff * ratio_diff,
            "log_volume_ratio2": log_volume_ratio_diff * log_volume_ratio_diff,
            "ratio_log_volume_ratio": ratio_diff * log_volume_ratio_diff,
            "up": price_change > 0,
            "down": price_change < 0,
            "gain": np.maximum(price_change, 0.0),
            "loss": np.maximum(-price_change, 0.0),
            "abs": np.abs(price_change),
            "volume": volume_diff,
            "volume2": volume_diff * volume_diff,
            "weighted_move": weighted_move_diff,
            "weighted_move2": weighted_move_diff * weighted_move_diff,
            "vgain": np.maximum(volume_change, 0.0),
            "vloss": np.maximum(-volume_change, 0.0),
            "vabs": np.abs(volume_change),
        }

    sums = rolling_sums(terms, ALPHA_WINDOWS)
    highs = rolling_extreme(block, chunk.series("high"), ALPHA_WINDOWS, largest=True)
    lows = rolling_extreme(block, chunk.series("low"), ALPHA_WINDOWS, largest=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        for width in ALPHA_WINDOWS:
            total = sums[width]
            price_ok = chunk.complete(("price",), width)
            change_ok = chunk.complete(("price",), width + 1)
            pv_ok = chunk.complete(("price", "volume"), width)
            pv1_ok = chunk.complete(("price", "volume"), width + 1)
            vol_ok = chunk.complete(("volume",), width)
            vol1_ok = chunk.complete(("volume",), width + 1)
            hl_ok = chunk.complete(("high", "low"), width)
            chunk.put(f"roc_{width}", block.at(series["price"], width) / price_now)
            chunk.put(f"ma_{width}", (price_now + total["price"] / width) / price_now, price_ok)
            chunk.put(f"std_{width}", np.sqrt(sample_var(total["price"], total["price2"], width)) / price_now, price_ok)
            time_spread = width * (width * width - 1) / 12.0
            time_price_cov = (width - 1) / 2.0 * total["price"] - total["lag_price"]
            price_spread = total["price2"] - total["price"] * total["price"] / width
            slope = time_price_cov / time_spread
            chunk.put(f"beta_{width}", slope / price_now, price_ok)
            chunk.put(
                f"rsqr_{width}",
                np.where(price_spread > 0, time_price_cov * time_price_cov / (time_spread * price_spread), NAN),
                price_ok,
            )
            chunk.put(f"resi_{width}", (-total["price"] / width - slope * (width - 1) / 2.0) / price_now, price_ok)
            chunk.put(f"max_{width}", highs[width] / price_now)
            chunk.put(f"min_{width}", lows[width] / price_now)
            ordered = np.sort(block.window(series["price"], width), axis=-1)
            for name, quantile in (("qtlu", 0.8), ("qtld", 0.2)):
                position = quantile * (width - 1)
                low_index = int(math.floor(position))
                fraction = position - low_index
                lower = ordered[..., low_index]
                value = lower if fraction == 0 else lower + (ordered[..., low_index + 1] - lower) * fraction
                chunk.put(f"{name}_{width}", value / price_now, price_ok)
            chunk.put(f"rank_{width}", (total["less"] + (total["equal"] + 1.0) / 2.0) / width, price_ok)
            chunk.put(
                f"rsv_{width}", (price_now - lows[width]) / (highs[width] - lows[width] + 1e-12), hl_ok & price_ok
            )
            imax = np.argmax(block.window(chunk.series("high"), width), axis=-1) + 1.0
            imin = np.argmin(block.window(chunk.series("low"), width), axis=-1) + 1.0
            chunk.put(f"imax_{width}", imax / width, chunk.complete(("high",), width))
            chunk.put(f"imin_{width}", imin / width, chunk.complete(("low",), width))
            chunk.put(f"imxd_{width}", (imax - imin) / width, hl_ok)
            chunk.put(f"corr_{width}", _corr(total, "price", "log_volume", width), pv_ok)
            chunk.put(f"cord_{width}", _corr(total, "ratio", "log_volume_ratio", width), pv1_ok)
            cntp = total["up"] / width
            cntn = total["down"] / width
            chunk.put(f"cntp_{width}", cntp, change_ok)
            chunk.put(f"cntn_{width}", cntn, change_ok)
            chunk.put(f"cntd_{width}", cntp - cntn, change_ok)
            moved = total["abs"] + 1e-12
            chunk.put(f"sump_{width}", total["gain"] / moved, change_ok)
            chunk.put(f"sumn_{width}", total["loss"] / moved, change_ok)
            chunk.put(f"sumd_{width}", (total["gain"] - total["loss"]) / moved, change_ok)
            chunk.put(f"vma_{width}", (volume_now + total["volume"] / width) / (volume_now + 1e-12), vol_ok)
            chunk.put(
                f"vstd_{width}",
                np.sqrt(sample_var(total["volume"], total["volume2"], width)) / (volume_now + 1e-12),
                vol_ok,
            )
            chunk.put(
                f"wvma_{width}",
                np.sqrt(sample_var(total["weighted_move"], total["weighted_move2"], width))
                / (weighted_move_now + total["weighted_move"] / width + 1e-12),
                pv1_ok,
            )
            vmoved = total["vabs"] + 1e-12
            chunk.put(f"vsump_{width}", total["vgain"] / vmoved, vol1_ok)
            chunk.put(f"vsumn_{width}", total["vloss"] / vmoved, vol1_ok)
            chunk.put(f"vsumd_{width}", (total["vgain"] - total["vloss"]) / vmoved, vol1_ok)


def _corr(sums: Mapping[str, np.ndarray], first: str, second: str, count: int) -> np.ndarray:
    """Pearson correlation of ``first`` and ``second`` from their (shifted) sums, their squares'
    (``first2``, ``second2``) and their products' (``first_second``); NULL when either side has no spread."""
    sum_x, sum_y = sums[first], sums[second]
    cov = sums[f"{first}_{second}"] - sum_x * sum_y / count
    var_x = sums[f"{first}2"] - sum_x * sum_x / count
    var_y = sums[f"{second}2"] - sum_y * sum_y / count
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((var_x > 0) & (var_y > 0), cov / np.sqrt(var_x * var_y), NAN)


def _talib(chunk: _Chunk) -> None:
    block = chunk.block
    price = chunk.series("price")
    high, low = chunk.series("high"), chunk.series("low")
    price_now = block.at(price)
    hlc = ("high", "low", "price")
    for period in RSI_PERIODS:
        length = 10 * period
        chunk.put(
            f"rsi_{period}",
            ta.rsi(block, chunk.series("gain"), chunk.series("loss"), period, length),
            chunk.complete(("price",), length),
        )
    line_w, signal_w = ta.macd_weights(MACD_WINDOW)
    macd_ok = chunk.complete(("price",), MACD_WINDOW)
    line = fir(block, price, line_w)
    signal = fir(block, price, signal_w)
    hist = line - signal
    for part, values in (("line", line), ("signal", signal), ("hist", hist)):
        chunk.put(f"macd_{part}", values, macd_ok)
        chunk.put(f"macd_{part}_rel", values / price_now, macd_ok)
    twenty = rolling_sums(
        lambda lag: {"price": block.at(price, lag) - price_now, "price2": (block.at(price, lag) - price_now) ** 2},
        (20,),
    )[20]
    mean = price_now + twenty["price"] / 20
    population_var = (twenty["price2"] - twenty["price"] * twenty["price"] / 20) / 20
    upper, middle, lower = ta.bollinger(mean, population_var)
    chunk.put("bb_upper", upper)
    chunk.put("bb_middle", middle)
    chunk.put("bb_lower", lower)
    chunk.put("bb_width", safe_div(upper - lower, middle))
    chunk.put("bb_pctb", ta.percent_b(price_now, upper, lower))
    atr_ok = chunk.complete(hlc, ATR_WINDOW)
    atr = fir(block, chunk.series("true_range"), ta.atr_weights(14, ATR_WINDOW))
    chunk.put("atr_14", atr, atr_ok)
    chunk.put("natr_14", safe_div(atr, price_now) * 100.0, atr_ok)
    adx, plus_di, minus_di = ta.adx_di(block, high, low, price, 14, ADX_WINDOW)
    adx_ok = chunk.complete(hlc, ADX_WINDOW)
    chunk.put("adx_14", adx, adx_ok)
    chunk.put("plus_di_14", plus_di, adx_ok)
    chunk.put("minus_di_14", minus_di, adx_ok)
    chunk.put("cci_14", ta.cci(block, chunk.series("typical"), 14), chunk.complete(hlc, 14))
    chunk.put(
        "mfi_14",
        ta.money_flow_index(block, chunk.series("typical"), chunk.series("volume"), 14),
        chunk.complete(hlc + ("volume",), 15),
    )
    highest = rolling_extreme(block, high, (14,), largest=True)[14]
    lowest = rolling_extreme(block, low, (14,), largest=False)[14]
    chunk.put("willr_14", ta.williams_r(highest, lowest, price_now), chunk.complete(hlc, 14))
    slow_k, slow_d = ta.stochastic(block, high, low, price)
    stoch_ok = chunk.complete(hlc, 9)
    chunk.put("stoch_k", slow_k, stoch_ok)
    chunk.put("stoch_d", slow_d, stoch_ok)
    chunk.put("roc_pct_10", ta.rate_of_change(price_now, block.at(price, 10)))
    chunk.put("mom_10", price_now - block.at(price, 10))
    obv, total = ta.on_balance_volume(block, price, chunk.series("volume"), OBV_WINDOW)
    obv_ok = chunk.complete(("price", "volume"), OBV_WINDOW)
    chunk.put("obv_1d", obv, obv_ok)
    chunk.put("obv_1d_norm", safe_div(obv, total), obv_ok)
    chunk.put(
        "ultosc", ta.ultimate_oscillator(block, high, low, price, chunk.series("prev_price")), chunk.complete(hlc, 29)
    )
    up, down = ta.aroon(block, high, low, 25)
    chunk.put("aroon_up_25", up, chunk.complete(("high",), 26))
    chunk.put("aroon_down_25", down, chunk.complete(("low",), 26))
    for period in EMA_PERIODS:
        length = 5 * period
        ema = fir(block, price, ta.ema_weights(period, length))
        chunk.put(f"ema_ratio_{period}", safe_div(price_now, ema), chunk.complete(("price",), length))
    smas = rolling_sums(lambda lag: {"price": block.at(price, lag) - price_now}, SMA_PERIODS)
    for period in SMA_PERIODS:
        chunk.put(f"sma_ratio_{period}", safe_div(price_now, price_now + smas[period]["price"] / period))


def _volume(chunk: _Chunk) -> None:
    cap = chunk.at("market_cap")
    volume_24h = chunk.at("volume_24h")
    with np.errstate(divide="ignore", invalid="ignore"):
        chunk.put("log_market_cap", np.log(cap))
        chunk.put("log_volume_24h", np.log(_positive(volume_24h)))
        chunk.put("turnover_24h", volume_24h / cap)
        chunk.put("mcap_change_1h", cap / chunk.at("market_cap", HOUR_WINDOWS) - 1.0)
        chunk.put("mcap_change_1d", cap / chunk.at("market_cap", DAY_WINDOWS) - 1.0)
        chunk.put("volume_24h_change_1d", volume_24h / chunk.at("volume_24h", DAY_WINDOWS) - 1.0)
    log_volume_now = chunk.at("log_volume")
    sums = rolling_sums(
        lambda lag: {
            "volume": chunk.at("volume", lag),
            "dollar": chunk.at("dollar_volume", lag),
            "typical_volume": chunk.at("typical_volume", lag),
            "log_volume": chunk.at("log_volume", lag) - log_volume_now,
            "log_volume2": (chunk.at("log_volume", lag) - log_volume_now) ** 2,
            "abs_return": chunk.at("abs_log_return", lag),
        },
        (HOUR_WINDOWS, DAY_WINDOWS),
    )
    hour, day = sums[HOUR_WINDOWS], sums[DAY_WINDOWS]
    std = np.sqrt(sample_var(day["log_volume"], day["log_volume2"], DAY_WINDOWS))
    chunk.put("vol_z_1d", safe_div(-day["log_volume"] / DAY_WINDOWS, std))
    chunk.put("vol_ratio_1h_1d", safe_div(hour["volume"] / HOUR_WINDOWS, day["volume"] / DAY_WINDOWS))
    with np.errstate(divide="ignore", invalid="ignore"):
        chunk.put("log_dollar_volume_1h", np.log(_positive(hour["dollar"])))
    chunk.put(
        "amihud_1d",
        safe_div(day["abs_return"], day["dollar"]) * 1e6,
        chunk.complete(("price", "volume"), DAY_WINDOWS + 1),
    )
    price = chunk.at("price")
    for label, part in (("1h", hour), ("1d", day)):
        vwap = safe_div(part["typical_volume"], part["volume"])
        chunk.put(f"vwap_dev_{label}", safe_div(price, vwap) - 1.0)


def _derivatives(chunk: _Chunk) -> None:
    values = derivatives_features(
        chunk.derivatives, chunk.derivatives_block, chunk.at("volume_24h"), chunk.at("market_cap")
    )
    for name, series in values.items():
        chunk.put(name, series)


def _derivatives_market(chunk: _Chunk, has_row: np.ndarray) -> None:
    weights = open_interest_value(chunk.derivatives, chunk.derivatives_block)
    for name, values in derivatives_market_features(chunk.out["funding_rate_ann"], weights, has_row).items():
        chunk.put(name, values)


def _quality(chunk: _Chunk) -> np.ndarray:
    missing = chunk.missing.count(chunk.block, "price", PRICE_LOOKBACK_WINDOWS)
    chunk.put("bars_missing", missing)
    chunk.put("bars_missing_1h", chunk.missing.count(chunk.block, "price", HOUR_WINDOWS))
    chunk.put("price_from_snapshot", chunk.at("snapshot"))
    return missing < PRICE_LOOKBACK_WINDOWS


def _calendar(chunk: _Chunk) -> None:
    window_ns = chunk.block.at(chunk.grid.times).astype("datetime64[ns]").astype(np.int64)
    day_ns = 86_400 * 10**9
    day_fraction = (window_ns % day_ns) / day_ns
    weekday = ((window_ns // day_ns) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    week_fraction = (weekday + day_fraction) / 7.0
    chunk.put("hour_sin", np.sin(2 * np.pi * day_fraction)[None, :])
    chunk.put("hour_cos", np.cos(2 * np.pi * day_fraction)[None, :])
    chunk.put("dow_sin", np.sin(2 * np.pi * week_fraction)[None, :])
    chunk.put("dow_cos", np.cos(2 * np.pi * week_fraction)[None, :])


def _sentiment(chunk: _Chunk, has_row: np.ndarray) -> None:
    block = chunk.block
    sentiment = chunk.sentiment
    decay = 0.5 ** (np.arange(DAY_WINDOWS) / SENTIMENT_HALF_LIFE_WINDOWS)
    sums = rolling_sums(
        lambda lag: {
            "count": block.at(sentiment.count, lag),
            "score": block.at(sentiment.score, lag),
            "bullish": block.at(sentiment.bullish, lag),
            "bearish": block.at(sentiment.bearish, lag),
            "confidence": block.at(sentiment.confidence, lag),
            "wscore": decay[lag] * block.at(sentiment.score, lag),
            "wcount": decay[lag] * block.at(sentiment.count, lag),
        },
        tuple(SENTIMENT_HORIZONS.values()),
    )
    for label, width in SENTIMENT_HORIZONS.items():
        total = sums[width]
        chunk.put(f"sent_mean_{label}", safe_div(total["score"], total["count"]))
        chunk.put(f"sent_count_{label}", total["count"])
        chunk.put(f"sent_bull_share_{label}", safe_div(total["bullish"], total["count"]))
        chunk.put(f"sent_bear_share_{label}", safe_div(total["bearish"], total["count"]))
    day = sums[DAY_WINDOWS]
    hour = sums[HOUR_WINDOWS]
    chunk.put("sent_decayed_6h", safe_div(day["wscore"], day["wcount"]))
    chunk.put("sent_conf_mean_24h", safe_div(day["confidence"], day["count"]))
    chunk.put("sent_count_surge_1h", safe_div(hour["count"], day["count"] / 24.0))
    for label, total in (("1h", hour), ("24h", day)):
        score, _ = row_sums(total["score"], has_row)
        count, _ = row_sums(total["count"], has_row)
        chunk.put(f"mkt_sent_mean_{label}", safe_div(score, count)[None, :])


def _market(chunk: _Chunk, has_row: np.ndarray) -> None:
    block = chunk.block
    out = chunk.out
    btc = chunk.grid.btc
    nan_row = np.full((1, block.n), NAN)

    def btc_value(values: np.ndarray) -> np.ndarray:
        """BTC's value in each window where BTC has a row (the same for every symbol)."""
        return np.where(has_row[btc], values[btc], NAN)[None, :] if btc is not None else nan_row

    for label in ("5m", "1h", "4h", "1d"):
        chunk.put(f"btc_ret_{label}", btc_value(out[f"ret_{label}"]))
        lag = RETURN_HORIZONS[label]
        ret = out[f"ret_{label}"]
        weight = chunk.at("market_cap", lag)
        valid = has_row & ~np.isnan(ret) & ~np.isnan(weight)
        num, _ = row_sums(weight * ret, valid)
        den, _ = row_sums(weight, valid)
        chunk.put(f"mkt_ret_{label}", safe_div(num, den)[None, :])
    for label in ("1h", "1d"):
        ret = out[f"ret_{label}"]
        total, count = row_sums(ret, has_row & ~np.isnan(ret))
        chunk.put(f"mkt_ew_ret_{label}", safe_div(total, count)[None, :])
        chunk.put(f"excess_ret_{label}", ret - out[f"mkt_ret_{label}"])
    log_return = chunk.series("log_return")
    if btc is not None:
        btc_return = log_return[btc : btc + 1]
        cross = rolling_sums(
            lambda lag: {
                "ret": block.at(log_return, lag),
                "btc_ret": block.at(btc_return, lag),
                "ret2": block.at(log_return, lag) ** 2,
                "btc_ret2": block.at(btc_return, lag) ** 2,
                "ret_btc_ret": block.at(log_return, lag) * block.at(btc_return, lag),
            },
            (48, DAY_WINDOWS),
        )
    for label, width in (("4h", 48), ("1d", DAY_WINDOWS)):
        if btc is None:
            chunk.put(f"beta_btc_{label}", np.full((len(chunk.grid.symbols), block.n), NAN))
            chunk.put(f"corr_btc_{label}", np.full((len(chunk.grid.symbols), block.n), NAN))
            continue
        cross_sums = cross[width]
        cov = cross_sums["ret_btc_ret"] - cross_sums["ret"] * cross_sums["btc_ret"] / width
        var_btc = cross_sums["btc_ret2"] - cross_sums["btc_ret"] * cross_sums["btc_ret"] / width
        chunk.put(f"beta_btc_{label}", safe_div(cov, np.where(var_btc > 0, var_btc, 0.0)))
        chunk.put(f"corr_btc_{label}", _corr(cross_sums, "ret", "btc_ret", width))
    chunk.put("btc_rv_1d", btc_value(out["rv_1d"]))
    ret = out["ret_1h"]
    valid = has_row & ~np.isnan(ret)
    ups, count = row_sums((ret > 0).astype(np.float64), valid)
    chunk.put("mkt_breadth_1h", safe_div(ups, count)[None, :])
    total, _ = row_sums(ret, valid)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / count
        squares, _ = row_sums((ret - mean) ** 2, valid)
        dispersion = np.where(count >= 2, np.sqrt(squares / (count - 1)), NAN)
    chunk.put("mkt_dispersion_1h", dispersion[None, :])
    cap = chunk.at("market_cap")
    total_cap, _ = row_sums(cap, has_row & ~np.isnan(cap))
    chunk.put("btc_dominance", safe_div(btc_value(cap), total_cap[None, :]))


def _macro(chunk: _Chunk) -> None:
    ends = chunk.block.at(chunk.grid.times).astype("datetime64[ns]") + np.timedelta64(_WINDOW_NS, "ns")
    values = macro_asof(chunk.macro, ends)

    def put(name: str, series: np.ndarray) -> None:
        chunk.put(name, series[None, :])

    with np.errstate(divide="ignore", invalid="ignore"):
        for series_id, name, kind in (
            ("DGS10", "macro_dgs10", "chg"),
            ("DFF", "macro_dff", "chg"),
            ("DTWEXBGS", "macro_usd_broad", "ret"),
            ("^GSPC", "macro_sp500", "ret"),
            ("^VIX", "macro_vix", "chg"),
            ("DX-Y.NYB", "macro_dxy", "ret"),
            ("GC=F", "macro_gold", "ret"),
        ):
            series_values = values[series_id]
            put(name, series_values["latest"])
            put(
                f"{name}_{kind}",
                series_values["latest"] - series_values["previous"]
                if kind == "chg"
                else series_values["latest"] / series_values["previous"] - 1.0,
            )
        put("macro_term_spread", values["DGS10"]["latest"] - values["DFF"]["latest"])
        cpi = values["CPIAUCSL"]
        put("macro_cpi_yoy", (cpi["latest"] / cpi["year_ago"] - 1.0) * 100.0)
        put("macro_cpi_mom", cpi["latest"] / cpi["previous"] - 1.0)


_PER_SYMBOL: tuple[Callable[[_Chunk], None], ...] = (
    _returns,
    _volatility,
    _candle,
    _rolling,
    _talib,
    _volume,
    _derivatives,
)


def _compute_block(chunk: _Chunk) -> np.ndarray:
    """Fill ``chunk.out`` with every catalogued feature for the block; return the row mask (symbols, windows)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for family in _PER_SYMBOL:
            family(chunk)
        has_row = _quality(chunk)
        _sentiment(chunk, has_row)
        for name, values in list(chunk.out.items()):
            if values.shape[0] == len(chunk.grid.symbols):
                chunk.out[name] = np.where(has_row, values, NAN)
        _market(chunk, has_row)
        _derivatives_market(chunk, has_row)
        _calendar(chunk)
        _macro(chunk)
        for name in CROSS_SECTION_RANKED:
            chunk.put(f"cs_rank_{name}", cross_section_rank(chunk.out[name]))
        for name in CROSS_SECTION_ZSCORED:
            chunk.put(f"cs_z_{name}", cross_section_zscore(chunk.out[name]))
    return has_row


def compute_features(
    prices: pd.DataFrame,
    sentiment: pd.DataFrame | None,
    macro: pd.DataFrame | None,
    start: datetime,
    end: datetime,
    *,
    derivatives: pd.DataFrame | None = None,
    chunk_windows: int = DEFAULT_CHUNK_WINDOWS,
) -> pd.DataFrame:
    """Every catalogued feature for each (symbol, window) in [start, end).

    ``prices`` must hold the ``price_data_real`` rows from :func:`history_start` (``start``) to
    ``end``; ``sentiment`` the ``sentiment_data`` rows from :func:`sentiment_start` (may be empty);
    ``macro`` the ``macro_indicators`` rows (may be empty); ``derivatives`` the ``derivatives_data``
    rows from :func:`~crypto_assets.features.derivatives_features.derivatives_start` (None or empty:
    every derivatives feature NULL). Rows outside those ranges are ignored.
    Returns the rows of ``ml_features_materialized`` in key order (symbol, timestamp).
    """
    if (end - start) % WINDOW or end <= start:
        raise ValueError(f"[{start}, {end}) is not a whole number of 5-minute windows")
    grid = build_price_grid(prices, start, end)
    n_symbols = len(grid.symbols)
    n_targets = int((end - start) / WINDOW)
    index = {name: i for i, name in enumerate(FEATURE_NAMES)}
    # every chunk writes every feature of every symbol in its columns: no need to pre-fill
    values = np.empty((len(FEATURE_NAMES), n_symbols, n_targets))
    rows = np.zeros((n_symbols, n_targets), dtype=bool)
    if n_symbols:
        missing = MissingCounts({name: grid.arrays[name] for name in ("price", "open", "high", "low", "volume")})
        sentiment_grid = build_sentiment_grid(sentiment, grid)
        macro_states = prepare_macro(macro)
        derivatives_grid = build_derivatives_grid(derivatives, grid.symbols, start, end)
        for first_column in range(_WARMUP, _WARMUP + n_targets, chunk_windows):
            block = Block(first_column, min(first_column + chunk_windows, _WARMUP + n_targets))
            chunk = _Chunk(grid, block, missing, sentiment_grid, macro_states, derivatives_grid)
            has_row = _compute_block(chunk)
            unknown = set(chunk.out) ^ set(FEATURE_NAMES)
            if unknown:
                raise RuntimeError(f"computed features differ from the catalog: {sorted(unknown)}")
            columns = slice(block.lo - _WARMUP, block.hi - _WARMUP)
            rows[:, columns] = has_row
            for name, result in chunk.out.items():
                values[index[name], :, columns] = result
            missing.forget(block)
    return _assemble(grid, values, rows, n_targets)


def _assemble(grid: PriceGrid, values: np.ndarray, rows: np.ndarray, n_targets: int) -> pd.DataFrame:
    """The rows (symbol-major, so in key order) as a frame; the features stay one float block."""
    keep = rows.ravel()
    flat = values.reshape(len(FEATURE_NAMES), -1)
    block = flat if keep.all() else flat[:, keep]
    frame = pd.DataFrame(block.T, columns=list(FEATURE_NAMES), copy=False)
    targets = grid.times[_WARMUP : _WARMUP + n_targets]
    frame.insert(0, "symbol", np.repeat(grid.symbols, n_targets)[keep].astype(object))
    frame.insert(1, "timestamp", np.tile(targets, len(grid.symbols))[keep].astype("datetime64[us]"))
    frame.insert(2, "price", grid.arrays["price"][:, _WARMUP : _WARMUP + n_targets].ravel()[keep])
    frame["feature_set_version"] = FEATURE_SET_VERSION
    return frame


def nan_ratio_by_family(frame: pd.DataFrame) -> dict[str, float]:
    """Share of NULL values per feature family over ``frame`` (for run metadata)."""
    ratios: dict[str, float] = {}
    for family in FAMILIES:
        names = [spec.name for spec in features_in_family(family)]
        values = frame[names].to_numpy(dtype=np.float64) if len(frame) else np.empty((0, len(names)))
        ratios[family] = round(float(np.isnan(values).mean()), 4) if values.size else 0.0
    return ratios


__all__ = [
    "compute_features",
    "build_price_grid",
    "build_sentiment_grid",
    "prepare_macro",
    "macro_asof",
    "history_start",
    "sentiment_start",
    "nan_ratio_by_family",
    "PRICE_INPUT_COLUMNS",
    "SENTIMENT_INPUT_COLUMNS",
    "MACRO_INPUT_COLUMNS",
]
