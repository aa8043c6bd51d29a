"""Compute the catalogued features for a range of 5-minute windows (pure: DataFrames in, DataFrame out).

Inputs are the raw tables as read from the warehouse: ``price_data_real`` rows from
``PRICE_LOOKBACK_WINDOWS - 1`` windows before the range's start, ``sentiment_data`` rows, and
``macro_indicators`` rows. The prices are laid out on a complete (symbol x 5-minute) grid: a
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
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TypeVar

import numpy as np
import pandas as pd

from crypto_assets.features import indicators as ta
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
    ns = pd.to_datetime(times).to_numpy(dtype="datetime64[ns]").astype(np.int64)
    offset = ns - first.astype("datetime64[ns]").astype(np.int64)
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
    frame = prices.loc[:, [c for c in PRICE_INPUT_COLUMNS if c in prices.columns]]
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


def _derived(a: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-bar series every window reuses (element-wise, so exact whatever the grid's extent)."""
    price, high, low, open_, volume = a["price"], a["high"], a["low"], a["open"], a["volume"]
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
            latest_value=np.array([by_date[d] for d in latest], dtype=float),
            previous_value=np.array(previous, dtype=float),
            year_ago_value=np.array(year_ago_value, dtype=float),
        )
    return states


def macro_asof(states: Mapping[str, MacroState], window_ends: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """For each catalogued series: latest, previous and year-ago values known at each window end."""
    out: dict[str, dict[str, np.ndarray]] = {}
    n = len(window_ends)
    for series_id, spec in MACRO_SERIES.items():
        state = states.get(series_id)
        values = {key: np.full(n, NAN) for key in ("latest", "previous", "year_ago")}
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
    out: dict[str, np.ndarray] = field(default_factory=dict)

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


def _returns(c: _Chunk) -> None:
    price = c.at("price")
    with np.errstate(divide="ignore", invalid="ignore"):
        for label, k in RETURN_HORIZONS.items():
            c.put(f"ret_{label}", price / c.at("price", k) - 1.0)
        for lag in (1, 2):
            c.put(f"ret_5m_lag{lag}", c.at("price", lag) / c.at("price", lag + 1) - 1.0)
    c.put("ret_24h_snapshot", c.at("change_pct_24h") / 100.0)


def _volatility(c: _Chunk) -> None:
    b = c.block
    moments = rolling_sums(
        lambda k: {
            "r": c.at("log_return", k),
            "r2": c.at("log_return2", k),
            "r3": c.at("log_return3", k),
            "r4": c.at("log_return4", k),
        },
        (HOUR_WINDOWS, 48, DAY_WINDOWS),
    )
    semi = rolling_sums(lambda k: {"down": c.at("downside2", k), "up": c.at("upside2", k)}, (48,))[48]
    ranges = rolling_sums(lambda k: {"hl2": c.at("hl2", k), "gk": c.at("gk", k)}, (HOUR_WINDOWS, 48, DAY_WINDOWS))
    highs = rolling_extreme(b, c.series("high"), (HOUR_WINDOWS, 48, DAY_WINDOWS), largest=True)
    lows = rolling_extreme(b, c.series("low"), (HOUR_WINDOWS, 48, DAY_WINDOWS), largest=False)
    price = c.at("price")
    rv = {}
    for label, n in (("1h", HOUR_WINDOWS), ("4h", 48), ("1d", DAY_WINDOWS)):
        m = moments[n]
        rv[label] = np.sqrt(sample_var(m["r"], m["r2"], n))
        c.put(f"rv_{label}", rv[label])
        c.put(f"parkinson_vol_{label}", np.sqrt(ranges[n]["hl2"] / (4.0 * n * math.log(2.0))))
        c.put(f"range_{label}", (highs[n] - lows[n]) / price)
        if n != DAY_WINDOWS:
            c.put(f"garman_klass_vol_{label}", np.sqrt(np.maximum(ranges[n]["gk"] / n, 0.0)))
    c.put("downside_vol_4h", np.sqrt(semi["down"] / 48))
    c.put("upside_vol_4h", np.sqrt(semi["up"] / 48))
    c.put("rv_ratio_1h_1d", safe_div(rv["1h"], rv["1d"]))
    skew, kurt = _skew_kurt(moments[DAY_WINDOWS], DAY_WINDOWS)
    c.put("ret_skew_1d", skew)
    c.put("ret_kurt_1d", kurt)


def _skew_kurt(m: Mapping[str, np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Bias-corrected sample skewness and excess kurtosis from raw power sums (pandas' formulas)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        a = m["r"] / n
        b = m["r2"] / n - a * a
        cc = m["r3"] / n - a * a * a - 3.0 * a * b
        d = m["r4"] / n - a**4 - 6.0 * b * a * a - 4.0 * cc * a
        defined = b > 1e-14
        r = np.sqrt(np.where(defined, b, 1.0))
        skew = (math.sqrt(n * (n - 1.0)) * cc) / ((n - 2.0) * r * r * r)
        kurt = ((n * n - 1.0) * d / (b * b) - 3.0 * (n - 1.0) ** 2) / ((n - 2.0) * (n - 3.0))
    return np.where(defined, skew, NAN), np.where(defined, kurt, NAN)


def _candle(c: _Chunk) -> None:
    o, h, lo, close = c.at("open"), c.at("high"), c.at("low"), c.at("price")
    span = h - lo + 1e-12
    top = np.maximum(o, close)
    bottom = np.minimum(o, close)
    with np.errstate(divide="ignore", invalid="ignore"):
        c.put("kmid", (close - o) / o)
        c.put("klen", (h - lo) / o)
        c.put("kmid2", (close - o) / span)
        c.put("kup", (h - top) / o)
        c.put("kup2", (h - top) / span)
        c.put("klow", (bottom - lo) / o)
        c.put("klow2", (bottom - lo) / span)
        c.put("ksft", (2.0 * close - h - lo) / o)
        c.put("ksft2", (2.0 * close - h - lo) / span)
        c.put("open0", o / close)
        c.put("high0", h / close)
        c.put("low0", lo / close)


def _rolling(c: _Chunk) -> None:
    """Qlib Alpha158's rolling operators, with sums shifted by the window's own value for accuracy."""
    b = c.block
    s = {
        name: c.series(name)
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
    p0 = b.at(s["price"])
    lv0 = b.at(s["log_volume"])
    r0 = b.at(s["ratio"])
    lr0 = b.at(s["log_volume_ratio"])
    v0 = b.at(s["volume"])
    w0 = b.at(s["weighted_move"])

    def terms(k: int) -> dict[str, np.ndarray]:
        pk = b.at(s["price"], k)
        y = pk - p0
        x = b.at(s["log_volume"], k) - lv0
        rx = b.at(s["ratio"], k) - r0
        ry = b.at(s["log_volume_ratio"], k) - lr0
        dp = b.at(s["change"], k)
        dv = b.at(s["volume_change"], k)
        vv = b.at(s["volume"], k) - v0
        ww = b.at(s["weighted_move"], k) - w0
        return {
            "y": y,
            "y2": y * y,
            "ky": k * y,
            "less": pk < p0,
            "equal": pk == p0,
            "x": x,
            "x2": x * x,
            "xy": x * y,
            "rx": rx,
            "ry": ry,
            "rx2": rx * rx,
            "ry2": ry * ry,
            "rxy": rx * ry,
            "up": dp > 0,
            "down": dp < 0,
            "gain": np.maximum(dp, 0.0),
            "loss": np.maximum(-dp, 0.0),
            "abs": np.abs(dp),
            "v": vv,
            "v2": vv * vv,
            "w": ww,
            "w2": ww * ww,
            "vgain": np.maximum(dv, 0.0),
            "vloss": np.maximum(-dv, 0.0),
            "vabs": np.abs(dv),
        }

    sums = rolling_sums(terms, ALPHA_WINDOWS)
    highs = rolling_extreme(b, c.series("high"), ALPHA_WINDOWS, largest=True)
    lows = rolling_extreme(b, c.series("low"), ALPHA_WINDOWS, largest=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        for d in ALPHA_WINDOWS:
            m = sums[d]
            price_ok = c.complete(("price",), d)
            change_ok = c.complete(("price",), d + 1)
            pv_ok = c.complete(("price", "volume"), d)
            pv1_ok = c.complete(("price", "volume"), d + 1)
            vol_ok = c.complete(("volume",), d)
            vol1_ok = c.complete(("volume",), d + 1)
            hl_ok = c.complete(("high", "low"), d)
            c.put(f"roc_{d}", b.at(s["price"], d) / p0)
            c.put(f"ma_{d}", (p0 + m["y"] / d) / p0, price_ok)
            c.put(f"std_{d}", np.sqrt(sample_var(m["y"], m["y2"], d)) / p0, price_ok)
            sxx = d * (d * d - 1) / 12.0
            sxy = (d - 1) / 2.0 * m["y"] - m["ky"]
            syy = m["y2"] - m["y"] * m["y"] / d
            slope = sxy / sxx
            c.put(f"beta_{d}", slope / p0, price_ok)
            c.put(f"rsqr_{d}", np.where(syy > 0, sxy * sxy / (sxx * syy), NAN), price_ok)
            c.put(f"resi_{d}", (-m["y"] / d - slope * (d - 1) / 2.0) / p0, price_ok)
            c.put(f"max_{d}", highs[d] / p0)
            c.put(f"min_{d}", lows[d] / p0)
            ordered = np.sort(b.window(s["price"], d), axis=-1)
            for name, q in (("qtlu", 0.8), ("qtld", 0.2)):
                position = q * (d - 1)
                low_index = int(math.floor(position))
                fraction = position - low_index
                lower = ordered[..., low_index]
                value = lower if fraction == 0 else lower + (ordered[..., low_index + 1] - lower) * fraction
                c.put(f"{name}_{d}", value / p0, price_ok)
            c.put(f"rank_{d}", (m["less"] + (m["equal"] + 1.0) / 2.0) / d, price_ok)
            c.put(f"rsv_{d}", (p0 - lows[d]) / (highs[d] - lows[d] + 1e-12), hl_ok & price_ok)
            imax = np.argmax(b.window(c.series("high"), d), axis=-1) + 1.0
            imin = np.argmin(b.window(c.series("low"), d), axis=-1) + 1.0
            c.put(f"imax_{d}", imax / d, c.complete(("high",), d))
            c.put(f"imin_{d}", imin / d, c.complete(("low",), d))
            c.put(f"imxd_{d}", (imax - imin) / d, hl_ok)
            c.put(f"corr_{d}", _corr(m["y"], m["x"], m["y2"], m["x2"], m["xy"], d), pv_ok)
            c.put(f"cord_{d}", _corr(m["rx"], m["ry"], m["rx2"], m["ry2"], m["rxy"], d), pv1_ok)
            cntp = m["up"] / d
            cntn = m["down"] / d
            c.put(f"cntp_{d}", cntp, change_ok)
            c.put(f"cntn_{d}", cntn, change_ok)
            c.put(f"cntd_{d}", cntp - cntn, change_ok)
            moved = m["abs"] + 1e-12
            c.put(f"sump_{d}", m["gain"] / moved, change_ok)
            c.put(f"sumn_{d}", m["loss"] / moved, change_ok)
            c.put(f"sumd_{d}", (m["gain"] - m["loss"]) / moved, change_ok)
            c.put(f"vma_{d}", (v0 + m["v"] / d) / (v0 + 1e-12), vol_ok)
            c.put(f"vstd_{d}", np.sqrt(sample_var(m["v"], m["v2"], d)) / (v0 + 1e-12), vol_ok)
            c.put(f"wvma_{d}", np.sqrt(sample_var(m["w"], m["w2"], d)) / (w0 + m["w"] / d + 1e-12), pv1_ok)
            vmoved = m["vabs"] + 1e-12
            c.put(f"vsump_{d}", m["vgain"] / vmoved, vol1_ok)
            c.put(f"vsumn_{d}", m["vloss"] / vmoved, vol1_ok)
            c.put(f"vsumd_{d}", (m["vgain"] - m["vloss"]) / vmoved, vol1_ok)


def _corr(sx: np.ndarray, sy: np.ndarray, sxx: np.ndarray, syy: np.ndarray, sxy: np.ndarray, n: int) -> np.ndarray:
    """Pearson correlation from (shifted) sums; NULL when either side has no spread."""
    cov = sxy - sx * sy / n
    var_x = sxx - sx * sx / n
    var_y = syy - sy * sy / n
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((var_x > 0) & (var_y > 0), cov / np.sqrt(var_x * var_y), NAN)


def _talib(c: _Chunk) -> None:
    b = c.block
    price = c.series("price")
    high, low = c.series("high"), c.series("low")
    p0 = b.at(price)
    hlc = ("high", "low", "price")
    for n in RSI_PERIODS:
        length = 10 * n
        c.put(f"rsi_{n}", ta.rsi(b, c.series("gain"), c.series("loss"), n, length), c.complete(("price",), length))
    line_w, signal_w = ta.macd_weights(MACD_WINDOW)
    macd_ok = c.complete(("price",), MACD_WINDOW)
    line = fir(b, price, line_w)
    signal = fir(b, price, signal_w)
    hist = line - signal
    for part, values in (("line", line), ("signal", signal), ("hist", hist)):
        c.put(f"macd_{part}", values, macd_ok)
        c.put(f"macd_{part}_rel", values / p0, macd_ok)
    twenty = rolling_sums(lambda k: {"y": b.at(price, k) - p0, "y2": (b.at(price, k) - p0) ** 2}, (20,))[20]
    mean = p0 + twenty["y"] / 20
    population_var = (twenty["y2"] - twenty["y"] * twenty["y"] / 20) / 20
    upper, middle, lower = ta.bollinger(mean, population_var)
    c.put("bb_upper", upper)
    c.put("bb_middle", middle)
    c.put("bb_lower", lower)
    c.put("bb_width", safe_div(upper - lower, middle))
    c.put("bb_pctb", ta.percent_b(p0, upper, lower))
    atr_ok = c.complete(hlc, ATR_WINDOW)
    atr = fir(b, c.series("true_range"), ta.atr_weights(14, ATR_WINDOW))
    c.put("atr_14", atr, atr_ok)
    c.put("natr_14", safe_div(atr, p0) * 100.0, atr_ok)
    adx, plus_di, minus_di = ta.adx_di(b, high, low, price, 14, ADX_WINDOW)
    adx_ok = c.complete(hlc, ADX_WINDOW)
    c.put("adx_14", adx, adx_ok)
    c.put("plus_di_14", plus_di, adx_ok)
    c.put("minus_di_14", minus_di, adx_ok)
    c.put("cci_14", ta.cci(b, c.series("typical"), 14), c.complete(hlc, 14))
    c.put(
        "mfi_14", ta.money_flow_index(b, c.series("typical"), c.series("volume"), 14), c.complete(hlc + ("volume",), 15)
    )
    highest = rolling_extreme(b, high, (14,), largest=True)[14]
    lowest = rolling_extreme(b, low, (14,), largest=False)[14]
    c.put("willr_14", ta.williams_r(highest, lowest, p0), c.complete(hlc, 14))
    slow_k, slow_d = ta.stochastic(b, high, low, price)
    stoch_ok = c.complete(hlc, 9)
    c.put("stoch_k", slow_k, stoch_ok)
    c.put("stoch_d", slow_d, stoch_ok)
    c.put("roc_pct_10", ta.rate_of_change(p0, b.at(price, 10)))
    c.put("mom_10", p0 - b.at(price, 10))
    obv, total = ta.on_balance_volume(b, price, c.series("volume"), OBV_WINDOW)
    obv_ok = c.complete(("price", "volume"), OBV_WINDOW)
    c.put("obv_1d", obv, obv_ok)
    c.put("obv_1d_norm", safe_div(obv, total), obv_ok)
    c.put("ultosc", ta.ultimate_oscillator(b, high, low, price, c.series("prev_price")), c.complete(hlc, 29))
    up, down = ta.aroon(b, high, low, 25)
    c.put("aroon_up_25", up, c.complete(("high",), 26))
    c.put("aroon_down_25", down, c.complete(("low",), 26))
    for n in EMA_PERIODS:
        length = 5 * n
        ema = fir(b, price, ta.ema_weights(n, length))
        c.put(f"ema_ratio_{n}", safe_div(p0, ema), c.complete(("price",), length))
    smas = rolling_sums(lambda k: {"y": b.at(price, k) - p0}, SMA_PERIODS)
    for n in SMA_PERIODS:
        c.put(f"sma_ratio_{n}", safe_div(p0, p0 + smas[n]["y"] / n))


def _volume(c: _Chunk) -> None:
    cap = c.at("market_cap")
    volume_24h = c.at("volume_24h")
    with np.errstate(divide="ignore", invalid="ignore"):
        c.put("log_market_cap", np.log(cap))
        c.put("log_volume_24h", np.log(_positive(volume_24h)))
        c.put("turnover_24h", volume_24h / cap)
        c.put("mcap_change_1h", cap / c.at("market_cap", HOUR_WINDOWS) - 1.0)
        c.put("mcap_change_1d", cap / c.at("market_cap", DAY_WINDOWS) - 1.0)
        c.put("volume_24h_change_1d", volume_24h / c.at("volume_24h", DAY_WINDOWS) - 1.0)
    lv0 = c.at("log_volume")
    sums = rolling_sums(
        lambda k: {
            "v": c.at("volume", k),
            "dollar": c.at("dollar_volume", k),
            "tpv": c.at("typical_volume", k),
            "lv": c.at("log_volume", k) - lv0,
            "lv2": (c.at("log_volume", k) - lv0) ** 2,
            "absr": c.at("abs_log_return", k),
        },
        (HOUR_WINDOWS, DAY_WINDOWS),
    )
    hour, day = sums[HOUR_WINDOWS], sums[DAY_WINDOWS]
    std = np.sqrt(sample_var(day["lv"], day["lv2"], DAY_WINDOWS))
    c.put("vol_z_1d", safe_div(-day["lv"] / DAY_WINDOWS, std))
    c.put("vol_ratio_1h_1d", safe_div(hour["v"] / HOUR_WINDOWS, day["v"] / DAY_WINDOWS))
    with np.errstate(divide="ignore", invalid="ignore"):
        c.put("log_dollar_volume_1h", np.log(_positive(hour["dollar"])))
    c.put("amihud_1d", safe_div(day["absr"], day["dollar"]) * 1e6, c.complete(("price", "volume"), DAY_WINDOWS + 1))
    price = c.at("price")
    for label, part in (("1h", hour), ("1d", day)):
        vwap = safe_div(part["tpv"], part["v"])
        c.put(f"vwap_dev_{label}", safe_div(price, vwap) - 1.0)


def _quality(c: _Chunk) -> np.ndarray:
    missing = c.missing.count(c.block, "price", PRICE_LOOKBACK_WINDOWS)
    c.put("bars_missing", missing)
    c.put("bars_missing_1h", c.missing.count(c.block, "price", HOUR_WINDOWS))
    c.put("price_from_snapshot", c.at("snapshot"))
    return missing < PRICE_LOOKBACK_WINDOWS


def _calendar(c: _Chunk) -> None:
    ns = c.block.at(c.grid.times).astype("datetime64[ns]").astype(np.int64)
    day_ns = 86_400 * 10**9
    day_fraction = (ns % day_ns) / day_ns
    weekday = ((ns // day_ns) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    week_fraction = (weekday + day_fraction) / 7.0
    c.put("hour_sin", np.sin(2 * np.pi * day_fraction)[None, :])
    c.put("hour_cos", np.cos(2 * np.pi * day_fraction)[None, :])
    c.put("dow_sin", np.sin(2 * np.pi * week_fraction)[None, :])
    c.put("dow_cos", np.cos(2 * np.pi * week_fraction)[None, :])


def _sentiment(c: _Chunk, has_row: np.ndarray) -> None:
    b = c.block
    g = c.sentiment
    decay = 0.5 ** (np.arange(DAY_WINDOWS) / SENTIMENT_HALF_LIFE_WINDOWS)
    sums = rolling_sums(
        lambda k: {
            "count": b.at(g.count, k),
            "score": b.at(g.score, k),
            "bullish": b.at(g.bullish, k),
            "bearish": b.at(g.bearish, k),
            "confidence": b.at(g.confidence, k),
            "wscore": decay[k] * b.at(g.score, k),
            "wcount": decay[k] * b.at(g.count, k),
        },
        tuple(SENTIMENT_HORIZONS.values()),
    )
    for label, n in SENTIMENT_HORIZONS.items():
        m = sums[n]
        c.put(f"sent_mean_{label}", safe_div(m["score"], m["count"]))
        c.put(f"sent_count_{label}", m["count"])
        c.put(f"sent_bull_share_{label}", safe_div(m["bullish"], m["count"]))
        c.put(f"sent_bear_share_{label}", safe_div(m["bearish"], m["count"]))
    day = sums[DAY_WINDOWS]
    hour = sums[HOUR_WINDOWS]
    c.put("sent_decayed_6h", safe_div(day["wscore"], day["wcount"]))
    c.put("sent_conf_mean_24h", safe_div(day["confidence"], day["count"]))
    c.put("sent_count_surge_1h", safe_div(hour["count"], day["count"] / 24.0))
    for label, m in (("1h", hour), ("24h", day)):
        score, _ = row_sums(m["score"], has_row)
        count, _ = row_sums(m["count"], has_row)
        c.put(f"mkt_sent_mean_{label}", safe_div(score, count)[None, :])


def _market(c: _Chunk, has_row: np.ndarray) -> None:
    b = c.block
    out = c.out
    btc = c.grid.btc
    nan_row = np.full((1, b.n), NAN)

    def btc_value(values: np.ndarray) -> np.ndarray:
        """BTC's value in each window where BTC has a row (the same for every symbol)."""
        return np.where(has_row[btc], values[btc], NAN)[None, :] if btc is not None else nan_row

    for label in ("5m", "1h", "4h", "1d"):
        c.put(f"btc_ret_{label}", btc_value(out[f"ret_{label}"]))
        k = RETURN_HORIZONS[label]
        ret = out[f"ret_{label}"]
        weight = c.at("market_cap", k)
        valid = has_row & ~np.isnan(ret) & ~np.isnan(weight)
        num, _ = row_sums(weight * ret, valid)
        den, _ = row_sums(weight, valid)
        c.put(f"mkt_ret_{label}", safe_div(num, den)[None, :])
    for label in ("1h", "1d"):
        ret = out[f"ret_{label}"]
        total, count = row_sums(ret, has_row & ~np.isnan(ret))
        c.put(f"mkt_ew_ret_{label}", safe_div(total, count)[None, :])
        c.put(f"excess_ret_{label}", ret - out[f"mkt_ret_{label}"])
    log_return = c.series("log_return")
    if btc is not None:
        btc_return = log_return[btc : btc + 1]
        cross = rolling_sums(
            lambda k: {
                "x": b.at(log_return, k),
                "y": b.at(btc_return, k),
                "xx": b.at(log_return, k) ** 2,
                "yy": b.at(btc_return, k) ** 2,
                "xy": b.at(log_return, k) * b.at(btc_return, k),
            },
            (48, DAY_WINDOWS),
        )
    for label, n in (("4h", 48), ("1d", DAY_WINDOWS)):
        if btc is None:
            c.put(f"beta_btc_{label}", np.full((len(c.grid.symbols), b.n), NAN))
            c.put(f"corr_btc_{label}", np.full((len(c.grid.symbols), b.n), NAN))
            continue
        m = cross[n]
        cov = m["xy"] - m["x"] * m["y"] / n
        var_btc = m["yy"] - m["y"] * m["y"] / n
        c.put(f"beta_btc_{label}", safe_div(cov, np.where(var_btc > 0, var_btc, 0.0)))
        c.put(f"corr_btc_{label}", _corr(m["x"], m["y"], m["xx"], m["yy"], m["xy"], n))
    c.put("btc_rv_1d", btc_value(out["rv_1d"]))
    ret = out["ret_1h"]
    valid = has_row & ~np.isnan(ret)
    ups, count = row_sums((ret > 0).astype(np.float64), valid)
    c.put("mkt_breadth_1h", safe_div(ups, count)[None, :])
    total, _ = row_sums(ret, valid)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / count
        squares, _ = row_sums((ret - mean) ** 2, valid)
        dispersion = np.where(count >= 2, np.sqrt(squares / (count - 1)), NAN)
    c.put("mkt_dispersion_1h", dispersion[None, :])
    cap = c.at("market_cap")
    total_cap, _ = row_sums(cap, has_row & ~np.isnan(cap))
    c.put("btc_dominance", safe_div(btc_value(cap), total_cap[None, :]))


def _macro(c: _Chunk) -> None:
    ends = c.block.at(c.grid.times).astype("datetime64[ns]") + np.timedelta64(_WINDOW_NS, "ns")
    values = macro_asof(c.macro, ends)

    def put(name: str, series: np.ndarray) -> None:
        c.put(name, series[None, :])

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
            v = values[series_id]
            put(name, v["latest"])
            put(f"{name}_{kind}", v["latest"] - v["previous"] if kind == "chg" else v["latest"] / v["previous"] - 1.0)
        put("macro_term_spread", values["DGS10"]["latest"] - values["DFF"]["latest"])
        cpi = values["CPIAUCSL"]
        put("macro_cpi_yoy", (cpi["latest"] / cpi["year_ago"] - 1.0) * 100.0)
        put("macro_cpi_mom", cpi["latest"] / cpi["previous"] - 1.0)


_T = TypeVar("_T")
_PER_SYMBOL: tuple[Callable[[_Chunk], None], ...] = (_returns, _volatility, _candle, _rolling, _talib, _volume)


def _compute_block(c: _Chunk, profile: dict[str, float] | None = None) -> np.ndarray:
    """Fill ``c.out`` with every catalogued feature for the block; return the row mask (S, n).

    With ``profile``, the seconds spent per family are added to it.
    """

    def run(name: str, step: Callable[[], _T]) -> _T:
        if profile is None:
            return step()
        began = time.perf_counter()
        result = step()
        profile[name] = profile.get(name, 0.0) + time.perf_counter() - began
        return result

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for family in _PER_SYMBOL:
            run(family.__name__.lstrip("_"), partial(family, c))
        has_row = run("quality", lambda: _quality(c))
        run("sentiment", lambda: _sentiment(c, has_row))
        for name, values in list(c.out.items()):
            if values.shape[0] == len(c.grid.symbols):
                c.out[name] = np.where(has_row, values, NAN)
        run("market", lambda: _market(c, has_row))
        run("calendar", lambda: _calendar(c))
        run("macro", lambda: _macro(c))

        def cross_section() -> None:
            for name in CROSS_SECTION_RANKED:
                c.put(f"cs_rank_{name}", cross_section_rank(c.out[name]))
            for name in CROSS_SECTION_ZSCORED:
                c.put(f"cs_z_{name}", cross_section_zscore(c.out[name]))

        run("cross_section", cross_section)
    return has_row


def compute_features(
    prices: pd.DataFrame,
    sentiment: pd.DataFrame | None,
    macro: pd.DataFrame | None,
    start: datetime,
    end: datetime,
    *,
    chunk_windows: int = DEFAULT_CHUNK_WINDOWS,
    profile: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Every catalogued feature for each (symbol, window) in [start, end).

    ``prices`` must hold the ``price_data_real`` rows from :func:`history_start` (``start``) to
    ``end``; ``sentiment`` the ``sentiment_data`` rows from :func:`sentiment_start` (may be empty);
    ``macro`` the ``macro_indicators`` rows (may be empty). Rows outside those ranges are ignored.
    Returns the rows of ``ml_features_materialized`` in key order (symbol, timestamp). With
    ``profile``, seconds per stage (grid, each family, assembly) are added to that dict.
    """
    if (end - start) % WINDOW or end <= start:
        raise ValueError(f"[{start}, {end}) is not a whole number of 5-minute windows")
    began = time.perf_counter()
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
        if profile is not None:
            profile["inputs"] = profile.get("inputs", 0.0) + time.perf_counter() - began
        for lo in range(_WARMUP, _WARMUP + n_targets, chunk_windows):
            block = Block(lo, min(lo + chunk_windows, _WARMUP + n_targets))
            chunk = _Chunk(grid, block, missing, sentiment_grid, macro_states)
            has_row = _compute_block(chunk, profile)
            unknown = set(chunk.out) ^ set(FEATURE_NAMES)
            if unknown:
                raise RuntimeError(f"computed features differ from the catalog: {sorted(unknown)}")
            columns = slice(block.lo - _WARMUP, block.hi - _WARMUP)
            rows[:, columns] = has_row
            for name, result in chunk.out.items():
                values[index[name], :, columns] = result
            missing.forget(block)
    began = time.perf_counter()
    frame = _assemble(grid, values, rows, n_targets)
    if profile is not None:
        profile["assemble"] = profile.get("assemble", 0.0) + time.perf_counter() - began
    return frame


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
        names = [s.name for s in features_in_family(family)]
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
