"""The ``derivatives`` feature family: perpetual-swap funding, basis and open interest (pure NumPy).

``derivatives_data`` rows are laid on a (symbol x 5-minute window) grid whose symbols are the price
grid's, from ``DERIVATIVES_LOOKBACK_WINDOWS - 1`` windows before the range. A row holds what was
known at its window's end, so a window's features read only the rows of windows at or before it. A
missing row stays NaN (never filled); statistics over a horizon skip missing windows and need a
value in ``DERIVATIVES_MIN_COVERAGE`` of them (the funding rate, which changes only at settlements an
hour or more apart, is sampled hourly). Every statistic is a sum over a fixed trailing span
taken tap by tap (:func:`crypto_assets.features.kernels.rolling_sums`), so a window's value is the
same computed alone, inside a backfill, or later.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from crypto_assets.features.kernels import NAN, Block, cross_section_rank, rolling_sums, row_sums, safe_div
from resources.storage.feature_specs import (
    DERIVATIVES_LOOKBACK_WINDOWS,
    DERIVATIVES_MIN_COVERAGE,
    DERIVATIVES_RECENT_WINDOWS,
    FUNDING_HORIZONS,
    FUNDING_SAMPLE_WINDOWS,
    HOURS_PER_YEAR,
    OPEN_INTEREST_HORIZONS,
    PREMIUM_HORIZONS,
)
from resources.storage.windows import WINDOW

DERIVATIVES_INPUT_COLUMNS = (
    "symbol",
    "window_start",
    "premium",
    "funding_rate",
    "funding_time",
    "next_funding_rate",
    "next_funding_time",
    "funding_interval_h",
    "open_interest",
    "open_interest_value",
    "open_interest_at",
)
#: The columns read at a lag (the rows before the range): the rest is read in the range's own windows only.
DERIVATIVES_HISTORY_COLUMNS = (
    "symbol",
    "window_start",
    "premium",
    "funding_rate",
    "funding_interval_h",
    "open_interest",
)
_NUMERIC = (
    "premium",
    "funding_rate",
    "next_funding_rate",
    "funding_interval_h",
    "open_interest",
    "open_interest_value",
)
_TIMES = ("funding_time", "next_funding_time", "open_interest_at")
#: Warm-up windows of the derivatives grid before the first target window.
DERIVATIVES_WARMUP = DERIVATIVES_LOOKBACK_WINDOWS - 1
_WINDOW_S = WINDOW.total_seconds()


def derivatives_start(start: datetime) -> datetime:
    """The first window whose ``derivatives_data`` row the range starting at ``start`` reads."""
    return start - DERIVATIVES_WARMUP * WINDOW


def recent_start(start: datetime) -> datetime:
    """The first window before which the range reads only the hourly funding samples."""
    return start - (DERIVATIVES_RECENT_WINDOWS - 1) * WINDOW


def funding_sample_windows(start: datetime, end: datetime) -> list[datetime] | None:
    """The windows before :func:`recent_start` that the range's hourly funding samples fall on, or None
    when they are every window (a range of an hour or more)."""
    targets = int((end - start) / WINDOW)
    if targets >= FUNDING_SAMPLE_WINDOWS:
        return None
    first, last = derivatives_start(start), recent_start(start)
    samples = {
        start + (target - lag) * WINDOW
        for target in range(targets)
        for lag in range(0, DERIVATIVES_LOOKBACK_WINDOWS + targets, FUNDING_SAMPLE_WINDOWS)
    }
    return sorted(w for w in samples if first <= w < last)


@dataclass(frozen=True)
class DerivativesGrid:
    """Derivatives rows on the (symbol x window) grid: warm-up windows, then the range's windows."""

    window_end_s: np.ndarray  # (T,) each window's end, epoch seconds
    arrays: dict[str, np.ndarray]  # (S, T), NaN where missing; times as epoch seconds, in the range only

    def block(self, first_target: int, end_target: int) -> Block:
        """The grid columns of target windows ``[first_target, end_target)`` (0 = the range's start)."""
        return Block(DERIVATIVES_WARMUP + first_target, DERIVATIVES_WARMUP + end_target)


def _epoch_seconds(values: pd.Series) -> np.ndarray:
    stamps = pd.to_datetime(values).to_numpy(dtype="datetime64[ns]")
    return np.where(np.isnat(stamps), NAN, stamps.astype(np.int64) / 1e9)


def build_derivatives_grid(
    derivatives: pd.DataFrame | None, symbols: np.ndarray, start: datetime, end: datetime
) -> DerivativesGrid:
    """Lay ``derivatives_data`` rows of ``symbols`` (sorted) on the grid of [derivatives_start(start), end)."""
    first = pd.Timestamp(derivatives_start(start))
    length = DERIVATIVES_WARMUP + int((end - start) / WINDOW)
    window_end_s = first.value / 1e9 + _WINDOW_S * (np.arange(length, dtype=np.float64) + 1.0)
    arrays = {name: np.full((len(symbols), length), NAN) for name in _NUMERIC + _TIMES}
    if derivatives is not None and len(derivatives) and len(symbols):
        codes, listed = pd.factorize(derivatives["symbol"])
        row = np.where(codes >= 0, pd.Index(symbols).get_indexer(listed.astype(str))[codes], -1)
        offset = (
            (pd.to_datetime(derivatives["window_start"]) - first).to_numpy(dtype="timedelta64[ns]").astype(np.int64)
        )
        window_ns = int(WINDOW.total_seconds() * 1e9)
        column = offset // window_ns
        keep = (row >= 0) & (offset % window_ns == 0) & (column >= 0) & (column < length)
        frame, row, column = derivatives.loc[keep], row[keep], column[keep]
        for name in _NUMERIC:
            if name in frame.columns:
                arrays[name][row, column] = pd.to_numeric(frame[name], errors="coerce").to_numpy(
                    dtype=np.float64, na_value=NAN
                )
        targets = column >= DERIVATIVES_WARMUP  # the times are read at the window itself only (lag 0)
        for name in _TIMES:
            if name in frame.columns:
                arrays[name][row[targets], column[targets]] = _epoch_seconds(frame.loc[targets, name])
    interval = np.where(arrays["funding_interval_h"] > 0, arrays["funding_interval_h"], NAN)
    arrays["funding_interval_h"] = interval
    arrays["funding_rate_ann"] = arrays["funding_rate"] * HOURS_PER_YEAR / interval
    arrays["basis_ann"] = arrays["premium"] * HOURS_PER_YEAR / interval
    for name in ("open_interest", "open_interest_value"):
        arrays[name] = np.where(arrays[name] > 0, arrays[name], NAN)
    return DerivativesGrid(window_end_s, arrays)


@dataclass(frozen=True)
class TrailingStats:
    """Mean and z-score of a series' present values over a trailing horizon."""

    mean: np.ndarray
    zscore: np.ndarray


def trailing_stats(
    block: Block, values: np.ndarray, horizons: Iterable[int], *, step: int = 1
) -> dict[int, TrailingStats]:
    """Mean and z-score of the window's value against the present values among its last ``n`` windows.

    The samples are the window itself and every ``step``-th window before it (``n / step`` of them).
    Sums are shifted by the window's own value (exact zero spread when the series is constant); NaN
    where the window's own value is missing, where fewer than ``DERIVATIVES_MIN_COVERAGE`` of the
    samples have a value, and (z-score) where the values have no spread.
    """
    now = block.at(values)
    widths = {n: n // step for n in horizons}

    def terms(sample: int) -> dict[str, np.ndarray]:
        diff = block.at(values, sample * step) - now
        present = ~np.isnan(diff)
        shifted = np.where(present, diff, 0.0)
        return {"count": present, "sum": shifted, "sum2": shifted * shifted}

    sums_by_width = rolling_sums(terms, tuple(widths.values()))
    out: dict[int, TrailingStats] = {}
    for n, width in widths.items():
        sums = sums_by_width[width]
        count = sums["count"]
        enough = count >= math.ceil(DERIVATIVES_MIN_COVERAGE * width)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_shift = sums["sum"] / count
            variance = np.maximum((sums["sum2"] - sums["sum"] * mean_shift) / (count - 1), 0.0)
            zscore = safe_div(-mean_shift, np.sqrt(variance))
        out[n] = TrailingStats(np.where(enough, now + mean_shift, NAN), np.where(enough & (count >= 2), zscore, NAN))
    return out


def derivatives_features(
    grid: DerivativesGrid, block: Block, volume_24h: np.ndarray, market_cap: np.ndarray
) -> dict[str, np.ndarray]:
    """The per-symbol derivatives features of the block's windows ((S, n) arrays).

    ``volume_24h`` and ``market_cap`` are the price grid's values at the same windows.
    """
    arrays = grid.arrays

    def at(name: str, lag: int = 0) -> np.ndarray:
        return block.at(arrays[name], lag)

    window_end = block.at(grid.window_end_s)[None, :]
    funding = at("funding_rate")
    interval = at("funding_interval_h")
    next_time = at("next_funding_time")
    next_time = np.where(np.isnan(next_time), at("funding_time") + 3600.0 * interval, next_time)
    oi_value = at("open_interest_value")
    out = {
        "funding_rate": funding,
        "funding_rate_ann": at("funding_rate_ann"),
        "funding_interval_h": interval,
        "funding_hours_to_next": (next_time - window_end) / 3600.0,
        "funding_pred_minus_current": at("next_funding_rate") - funding,
    }
    funding_stats = trailing_stats(
        block, arrays["funding_rate_ann"], FUNDING_HORIZONS.values(), step=FUNDING_SAMPLE_WINDOWS
    )
    for label, n in FUNDING_HORIZONS.items():
        out[f"funding_z_{label}"] = funding_stats[n].zscore
    out["funding_ann_mean_7d"] = funding_stats[FUNDING_HORIZONS["7d"]].mean
    out["premium"] = at("premium")
    out["basis_ann"] = at("basis_ann")
    premium_stats = trailing_stats(block, arrays["premium"], PREMIUM_HORIZONS.values())
    for label, n in PREMIUM_HORIZONS.items():
        out[f"premium_z_{label}"] = premium_stats[n].zscore
    with np.errstate(divide="ignore", invalid="ignore"):
        for label, n in OPEN_INTEREST_HORIZONS.items():
            out[f"oi_change_{label}"] = np.log(at("open_interest") / at("open_interest", n))
        out["log_oi_value"] = np.log(oi_value)
    out["oi_to_volume_24h"] = safe_div(oi_value, np.where(volume_24h > 0, volume_24h, NAN))
    out["oi_to_market_cap"] = safe_div(oi_value, np.where(market_cap > 0, market_cap, NAN))
    out["oi_age_min"] = (window_end - at("open_interest_at")) / 60.0
    return out


def derivatives_market_features(
    funding_ann: np.ndarray, oi_value: np.ndarray, has_row: np.ndarray
) -> dict[str, np.ndarray]:
    """Cross-sectional derivatives features over the symbols with a row in each window."""
    valid = has_row & ~np.isnan(funding_ann) & ~np.isnan(oi_value)
    weighted, _ = row_sums(oi_value * funding_ann, valid)
    weights, _ = row_sums(oi_value, valid)
    market = safe_div(weighted, weights)[None, :]
    return {
        "funding_rank": cross_section_rank(np.where(has_row, funding_ann, NAN)),
        "mkt_funding_ann": market,
        "funding_vs_mkt": funding_ann - market,
    }


def open_interest_value(grid: DerivativesGrid, block: Block) -> np.ndarray:
    """The positive open-interest notional of the block's windows (the market features' weights)."""
    return block.at(grid.arrays["open_interest_value"])


__all__ = [
    "DERIVATIVES_INPUT_COLUMNS",
    "DERIVATIVES_HISTORY_COLUMNS",
    "funding_sample_windows",
    "recent_start",
    "DERIVATIVES_WARMUP",
    "DerivativesGrid",
    "build_derivatives_grid",
    "derivatives_features",
    "derivatives_market_features",
    "derivatives_start",
    "open_interest_value",
    "trailing_stats",
]
