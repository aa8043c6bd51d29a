"""TA-Lib indicators over a fixed trailing history, vectorised across symbols and windows.

Linear recursive indicators (EMA, MACD, ATR's smoothing, RSI's averages) are a fixed linear
combination of the last ``W`` bars once the recursion is seeded at the start of those bars. The
weights are read off TA-Lib itself, by running the TA-Lib function on unit impulses of length
``W`` (``talib.EMA(e_j, n)[-1]`` is the weight of bar ``j``); applying them is a FIR filter. So the
value for a window equals ``talib.X(last W bars)[-1]`` up to floating-point rounding, and does
not depend on where the stored series starts. ADX/+DI/-DI are not linear: they replay TA-Lib's
``TA_ADX`` loop step by step, for every (symbol, window) at once. Windowed indicators (SMA,
BBANDS, CCI, MFI, WILLR, STOCH, ROC, MOM, OBV over a fixed window, ULTOSC, AROON) follow TA-Lib's
formulas directly. Degenerate ranges (all prices equal) give TA-Lib's value there: 0.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import talib

from crypto_assets.features.kernels import NAN, Block, fir, safe_div


@cache
def ema_weights(period: int, length: int) -> np.ndarray:
    """Weights (oldest first) of ``talib.EMA(x[-length:], period)[-1]``."""
    eye = np.eye(length)
    return np.array([talib.EMA(eye[j], timeperiod=period)[-1] for j in range(length)])


@cache
def macd_weights(length: int, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """Weights (oldest first) of the MACD line and signal of ``talib.MACD(x[-length:])`` at its end."""
    eye = np.eye(length)
    line, sig = [], []
    for j in range(length):
        macd, macd_signal, _ = talib.MACD(eye[j], fastperiod=fast, slowperiod=slow, signalperiod=signal)
        line.append(macd[-1])
        sig.append(macd_signal[-1])
    return np.array(line), np.array(sig)


@cache
def atr_weights(period: int, length: int) -> np.ndarray:
    """Weights (oldest first) of each bar's true range in ``talib.ATR(last length bars, period)[-1]``.

    With high = e_j and low = close = 0 the true range of bar j is 1 and every other is 0, so
    TA-Lib's answer is the weight of bar j's true range (bar 0 has none: its weight is 0).
    """
    eye = np.eye(length)
    zeros = np.zeros(length)
    return np.array([talib.ATR(eye[j], zeros, zeros, timeperiod=period)[-1] for j in range(length)])


@cache
def wilder_weights(period: int, length: int) -> np.ndarray:
    """Weights (oldest first) of each bar's change in TA-Lib RSI's average gain (or loss).

    TA-Lib seeds the averages with the mean of the first ``period`` changes, then smooths:
    ``avg = (avg * (period - 1) + change) / period``. Bar 0 has no change (weight 0).
    """
    weights = np.zeros(length)
    decay = (period - 1) / period
    last = length - 1
    for i in range(1, length):
        if i <= period:
            weights[i] = decay ** (last - period) / period
        else:
            weights[i] = decay ** (last - i) / period
    return weights


def rsi(block: Block, gains: np.ndarray, losses: np.ndarray, period: int, length: int) -> np.ndarray:
    """RSI(period) of the last ``length`` bars; ``gains``/``losses`` are per-bar max(+/-change, 0)."""
    weights = wilder_weights(period, length)
    avg_gain = fir(block, gains, weights)
    avg_loss = fir(block, losses, weights)
    total = avg_gain + avg_loss
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total != 0, 100.0 * (avg_gain / np.where(total != 0, total, 1.0)), 0.0)


def adx_di(
    block: Block, high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int, length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ADX, +DI, -DI) of ``talib.ADX/PLUS_DI/MINUS_DI(last length bars, period)[-1]``.

    Replays TA-Lib's loop: ``period - 1`` bars accumulate +DM, -DM and true range; then Wilder
    smoothing (``x - x / period + today``); DX = 100 |+DI - -DI| / (+DI + -DI); the first ADX is
    the mean of the first ``period`` DX values, later ones ``(adx (period - 1) + dx) / period``.
    """

    def bar(position: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lag = length - 1 - position
        return block.at(high, lag), block.at(low, lag), block.at(close, lag)

    prev_high, prev_low, prev_close = bar(0)
    shape = np.broadcast_shapes(prev_high.shape)
    plus_dm = np.zeros(shape)
    minus_dm = np.zeros(shape)
    true_range = np.zeros(shape)
    sum_dx = np.zeros(shape)
    adx = np.zeros(shape)

    with np.errstate(divide="ignore", invalid="ignore"):
        for position in range(1, length):
            high_now, low_now, close_now = bar(position)
            diff_p = high_now - prev_high
            diff_m = prev_low - low_now
            minus = (diff_m > 0) & (diff_p < diff_m)
            plus = ~minus & (diff_p > 0) & (diff_p > diff_m)
            tr = np.maximum(np.maximum(high_now - low_now, np.abs(high_now - prev_close)), np.abs(low_now - prev_close))
            if position < period:
                minus_dm += np.where(minus, diff_m, 0.0)
                plus_dm += np.where(plus, diff_p, 0.0)
                true_range += tr
            else:
                minus_dm = (minus_dm - minus_dm / period) + np.where(minus, diff_m, 0.0)
                plus_dm = (plus_dm - plus_dm / period) + np.where(plus, diff_p, 0.0)
                true_range = (true_range - true_range / period) + tr
                minus_di = 100.0 * (minus_dm / true_range)
                plus_di = 100.0 * (plus_dm / true_range)
                di_sum = minus_di + plus_di
                defined = (true_range != 0) & (di_sum != 0)
                dx = 100.0 * (np.abs(minus_di - plus_di) / di_sum)
                if position < 2 * period:
                    sum_dx += np.where(defined, dx, 0.0)
                    if position == 2 * period - 1:
                        adx = sum_dx / period
                else:
                    adx = np.where(defined, (adx * (period - 1) + dx) / period, adx)
            prev_high, prev_low, prev_close = high_now, low_now, close_now
        plus_di = np.where(true_range != 0, 100.0 * (plus_dm / true_range), 0.0)
        minus_di = np.where(true_range != 0, 100.0 * (minus_dm / true_range), 0.0)
    return adx, plus_di, minus_di


def stochastic(
    block: Block, high: np.ndarray, low: np.ndarray, close: np.ndarray, fastk: int = 5, slowk: int = 3, slowd: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Slow %K and %D of ``talib.STOCH(high, low, close, fastk, slowk, SMA, slowd, SMA)``."""

    def fast_k(lag: int) -> np.ndarray:
        highest = block.at(high, lag).copy()
        lowest = block.at(low, lag).copy()
        for k in range(lag + 1, lag + fastk):
            np.maximum(highest, block.at(high, k), out=highest)
            np.minimum(lowest, block.at(low, k), out=lowest)
        diff = (highest - lowest) / 100.0
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(diff != 0, (block.at(close, lag) - lowest) / np.where(diff != 0, diff, 1.0), 0.0)

    fast = [fast_k(lag) for lag in range(slowk + slowd - 1)]
    slow_k = [sum(fast[q + 1 : q + slowk], fast[q]) / slowk for q in range(slowd)]
    slow_d = sum(slow_k[1:], slow_k[0]) / slowd
    return slow_k[0], slow_d


def ultimate_oscillator(
    block: Block,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    prev_close: np.ndarray,
    periods: tuple[int, int, int] = (7, 14, 28),
) -> np.ndarray:
    """``talib.ULTOSC``: weighted buying pressure / true range over three windows."""
    true_low = np.minimum(low, prev_close)
    pressure = close - true_low
    true_range = np.maximum(high, prev_close) - true_low
    longest = max(periods)
    sums: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    bp = np.zeros(block.at(close).shape)
    tr = np.zeros(block.at(close).shape)
    for k in range(longest):
        bp += block.at(pressure, k)
        tr += block.at(true_range, k)
        if k + 1 in periods:
            sums[k + 1] = (bp.copy(), tr.copy())
    total = np.zeros(bp.shape)
    for weight, period in zip((4.0, 2.0, 1.0), periods):
        p, t = sums[period]
        with np.errstate(divide="ignore", invalid="ignore"):
            total += np.where(t != 0, weight * (p / np.where(t != 0, t, 1.0)), 0.0)
    return 100.0 * (total / 7.0)


def aroon(block: Block, high: np.ndarray, low: np.ndarray, period: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """(Aroon up, Aroon down) of ``talib.AROON``: bars since the extreme of the last period + 1 bars.

    Ties go to the most recent bar, as in TA-Lib.
    """
    best_high = block.at(high, period).copy()
    best_low = block.at(low, period).copy()
    high_lag = np.full(best_high.shape, float(period))
    low_lag = np.full(best_low.shape, float(period))
    for lag in range(period - 1, -1, -1):
        h = block.at(high, lag)
        lo = block.at(low, lag)
        newer_high = h >= best_high
        newer_low = lo <= best_low
        best_high = np.where(newer_high, h, best_high)
        best_low = np.where(newer_low, lo, best_low)
        high_lag = np.where(newer_high, lag, high_lag)
        low_lag = np.where(newer_low, lag, low_lag)
    factor = 100.0 / period
    return factor * (period - high_lag), factor * (period - low_lag)


def cci(block: Block, typical: np.ndarray, period: int = 14) -> np.ndarray:
    """``talib.CCI``: (typical - mean) / (0.015 x mean absolute deviation), 0 when flat."""
    current = block.at(typical)
    shifted = np.zeros(current.shape)
    for k in range(period):
        shifted += block.at(typical, k) - current
    mean = current + shifted / period
    deviation = np.zeros(current.shape)
    for k in range(period):
        deviation += np.abs(block.at(typical, k) - mean)
    deviation /= period
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(deviation != 0, (current - mean) / (0.015 * np.where(deviation != 0, deviation, 1.0)), 0.0)


def money_flow_index(block: Block, typical: np.ndarray, volume: np.ndarray, period: int = 14) -> np.ndarray:
    """``talib.MFI``: share of positive money flow over the last ``period`` typical-price changes."""
    positive = np.zeros(block.at(typical).shape)
    negative = np.zeros(positive.shape)
    for k in range(period):
        now = block.at(typical, k)
        before = block.at(typical, k + 1)
        flow = now * block.at(volume, k)
        positive += np.where(now > before, flow, 0.0)
        negative += np.where(now < before, flow, 0.0)
    total = positive + negative
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total != 0, 100.0 * (positive / np.where(total != 0, total, 1.0)), 0.0)


def williams_r(highest: np.ndarray, lowest: np.ndarray, close: np.ndarray) -> np.ndarray:
    """``talib.WILLR`` from the window's highest high and lowest low; 0 when flat."""
    diff = (highest - lowest) * -0.01
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(diff != 0, (highest - close) / np.where(diff != 0, diff, 1.0), 0.0)


def rate_of_change(current: np.ndarray, before: np.ndarray) -> np.ndarray:
    """``talib.ROC``: (price / earlier price - 1) x 100; 0 when the earlier price is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(before != 0, (current / np.where(before != 0, before, 1.0) - 1.0) * 100.0, 0.0)
    return np.where(np.isnan(current) | np.isnan(before), NAN, out)


def on_balance_volume(
    block: Block, close: np.ndarray, volume: np.ndarray, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """``talib.OBV(last length bars)[-1]`` and the total volume of those bars."""
    obv = block.at(volume, length - 1).astype(np.float64, copy=True)
    total = obv.copy()
    for lag in range(length - 2, -1, -1):
        change = block.at(close, lag) - block.at(close, lag + 1)
        v = block.at(volume, lag)
        obv += np.where(change > 0, v, np.where(change < 0, -v, 0.0))
        total += v
    return obv, total


def bollinger(
    mean: np.ndarray, population_var: np.ndarray, width: float = 2.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(upper, middle, lower) of ``talib.BBANDS(timeperiod, width, width, SMA)``."""
    std = np.sqrt(np.maximum(population_var, 0.0))
    return mean + width * std, mean, mean - width * std


def percent_b(price: np.ndarray, upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Bollinger %b; NULL when the bands coincide."""
    return safe_div(price - lower, upper - lower)
