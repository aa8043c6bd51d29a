"""The simulated market: deterministic, realistic prices that need no network.

Every value is a pure function of (coin, time): the same window always gives the same rows,
whether it is computed alone or inside a backfill range. Log prices are a sum of hashed
value-noise octaves (5 minutes to 16 days, amplitudes scaling like a random walk's), a market
factor that every coin loads on with its own beta (so coins move together), and a per-coin
idiosyncratic part; each coin's volatility depends on its size (BTC calm, small caps wild).
Volume follows market cap, with noise and more trading when the price moves. Rows are labelled
``source='simulated'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd

from resources.config.universe import Coin

SOURCE = "simulated"
EPOCH = np.datetime64("2020-01-01T00:00:00", "s")
STEP_S = 300
DAY_BARS = 288
# (octave length in 5-minute steps, relative amplitude): random-walk-like scaling, amplitude ~ sqrt(length).
OCTAVES = ((1, 1.0), (6, 2.2), (24, 4.0), (96, 7.0), (288, 11.0), (1152, 18.0), (4608, 30.0))
_OCTAVE_NORM = 1.0 / np.sqrt(sum(a * a for _, a in OCTAVES) / len(OCTAVES))
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a fast, well-distributed integer hash (vectorised)."""
    x = x.astype(np.uint64)
    x ^= x >> np.uint64(30)
    x = (x * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
    x ^= x >> np.uint64(27)
    x = (x * np.uint64(0x94D049BB133111EB)) & _MASK64
    x ^= x >> np.uint64(31)
    return x


def hashed_normal(*keys: np.ndarray | np.integer | int) -> np.ndarray:
    """A standard-normal draw that is a pure function of the integer ``keys`` (broadcast)."""
    acc = np.asarray(np.uint64(0x9E3779B97F4A7C15))
    with np.errstate(over="ignore"):
        for key in keys:
            acc = _mix(np.asarray(key, dtype=np.int64).astype(np.uint64) ^ (acc * np.uint64(31)))
        u1 = (_mix(acc ^ np.uint64(0x1234567)) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
        u2 = (_mix(acc ^ np.uint64(0x7654321)) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    u1 = np.clip(u1, 1e-12, 1.0)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def _value_noise(stream: np.ndarray | np.integer, steps: np.ndarray) -> np.ndarray:
    """Smooth multi-octave noise of unit scale at integer ``steps`` for each ``stream`` (broadcast)."""
    total = np.zeros(np.broadcast(stream, steps).shape)
    for octave, (length, amplitude) in enumerate(OCTAVES):
        k, frac = np.divmod(steps, length)
        t = frac / length
        smooth = t * t * (3.0 - 2.0 * t)
        a = hashed_normal(stream, octave, k)
        b = hashed_normal(stream, octave, k + 1)
        total += amplitude * (a + (b - a) * smooth)
    return total * _OCTAVE_NORM


def _coin_params(coins: Sequence[Coin]) -> dict[str, np.ndarray]:
    index = np.array([_stable_id(c.coin_id) for c in coins], dtype=np.int64)
    cap = np.array([c.ref_market_cap_usd or 1e9 for c in coins], dtype=float)
    price = np.array([c.ref_price_usd or 1.0 for c in coins], dtype=float)
    stable = np.array([c.symbol in {"USDT", "USDC", "DAI"} for c in coins])
    # Daily volatility: ~2.5% for the largest coin, up to ~9% for small caps; stablecoins ~0.05%.
    daily_vol = np.clip(0.025 * (cap.max() / cap) ** 0.12, 0.02, 0.09)
    daily_vol[stable] = 0.0005
    beta = np.clip(0.6 + 0.5 * np.abs(hashed_normal(index, 7)), 0.5, 1.6)
    beta[stable] = 0.0
    turnover = np.clip(0.04 + 0.03 * hashed_normal(index, 11), 0.01, 0.2)
    return {"index": index, "cap": cap, "price": price, "vol": daily_vol, "beta": beta, "turnover": turnover}


def _stable_id(text: str) -> int:
    value = 1469598103934665603
    for byte in text.encode():
        value = ((value ^ byte) * 1099511628211) & 0x7FFFFFFFFFFFFFFF
    return value


def log_price_paths(coins: Sequence[Coin], steps: np.ndarray) -> np.ndarray:
    """Log price relative to each coin's reference price, shape (coins, steps)."""
    params = _coin_params(coins)
    step_vol = params["vol"] / np.sqrt(DAY_BARS)  # per-5-minute volatility
    # Scale so that the 1-step difference of the noise has roughly unit std, then by the coin's vol.
    scale = (step_vol * np.sqrt(DAY_BARS) * 2.0)[:, None]
    market = _value_noise(np.int64(-1), steps[None, :])
    idio = _value_noise(params["index"][:, None], steps[None, :])
    beta = params["beta"][:, None]
    return scale * (beta * market + np.sqrt(np.maximum(0.0, 1.0 - 0.5 * beta**2)) * idio) * 0.35


def simulated_price_frame(
    coins: Sequence[Coin], start: datetime, end: datetime, collected_at: datetime | None = None
) -> pd.DataFrame:
    """``price_data_real`` rows for every coin and 5-minute window in [start, end)."""
    first = int((np.datetime64(start, "s") - EPOCH) / np.timedelta64(STEP_S, "s"))
    last = int((np.datetime64(end, "s") - EPOCH) / np.timedelta64(STEP_S, "s"))
    if last <= first or not coins:
        return pd.DataFrame()
    params = _coin_params(coins)
    # Points from a day before the range (24h fields) to the range's last close.
    points = np.arange(first - DAY_BARS, last + 1)
    log_paths = log_price_paths(coins, points)
    prices = params["price"][:, None] * np.exp(log_paths)
    n_windows = last - first
    opens = prices[:, DAY_BARS : DAY_BARS + n_windows]
    closes = prices[:, DAY_BARS + 1 : DAY_BARS + 1 + n_windows]
    window_steps = points[DAY_BARS : DAY_BARS + n_windows]
    wiggle = np.abs(hashed_normal(params["index"][:, None], 3, window_steps[None, :]))
    wiggle2 = np.abs(hashed_normal(params["index"][:, None], 5, window_steps[None, :]))
    bar_vol = (params["vol"] / np.sqrt(DAY_BARS))[:, None]
    highs = np.maximum(opens, closes) * (1.0 + 0.35 * bar_vol * wiggle)
    lows = np.minimum(opens, closes) * (1.0 - 0.35 * bar_vol * wiggle2)
    abs_ret = np.abs(np.log(closes / opens)) / np.maximum(bar_vol, 1e-9)
    daily_volume = params["cap"][:, None] * params["turnover"][:, None]
    volume_noise = np.exp(0.35 * hashed_normal(params["index"][:, None], 9, window_steps[None, :]))
    bar_volume_usd = daily_volume / DAY_BARS * volume_noise * (0.6 + 0.4 * abs_ret)
    volumes = bar_volume_usd / closes
    # 24h fields at the window's close: the trailing 288 closes.
    close_path = prices[:, 1:]
    windows_24h = np.lib.stride_tricks.sliding_window_view(close_path, DAY_BARS, axis=1)[:, :n_windows]
    high_24h = windows_24h.max(axis=2)
    low_24h = windows_24h.min(axis=2)
    open_24h = prices[:, 1 : 1 + n_windows]
    volume_24h = daily_volume * np.exp(0.1 * hashed_normal(params["index"][:, None], 13, window_steps[None, :]))
    supply = params["cap"] / params["price"]
    market_cap = supply[:, None] * closes

    n_coins = len(coins)
    window_starts = (EPOCH + window_steps.astype("timedelta64[s]") * STEP_S).astype("datetime64[us]")
    frame = pd.DataFrame(
        {
            "symbol": np.repeat([c.symbol for c in coins], n_windows),
            "coin_id": np.repeat([c.coin_id for c in coins], n_windows),
            "window_start": np.tile(window_starts, n_coins),
            "current_price": closes.ravel(),
            "market_cap": market_cap.ravel(),
            "volume_24h": volume_24h.ravel(),
            "price_change_24h": (closes - open_24h).ravel(),
            "price_change_pct_24h": ((closes / open_24h - 1.0) * 100.0).ravel(),
            "high_24h": high_24h.ravel(),
            "low_24h": low_24h.ravel(),
            "open_24h": open_24h.ravel(),
            "open": opens.ravel(),
            "high": highs.ravel(),
            "low": lows.ravel(),
            "close": closes.ravel(),
            "volume": volumes.ravel(),
            "source": SOURCE,
        }
    )
    # Deterministic collection time: the window's end (when a live collector would have seen it).
    frame["collected_at"] = frame["window_start"] + pd.Timedelta(minutes=5) if collected_at is None else collected_at
    return frame


def simulated_returns(coins: Sequence[Coin], start: datetime, end: datetime) -> pd.DataFrame:
    """Log return of each coin over each 5-minute window in [start, end): symbol, window_start, log_return."""
    frame = simulated_price_frame(coins, start, end)
    if frame.empty:
        return pd.DataFrame(columns=["symbol", "window_start", "log_return"])
    return pd.DataFrame(
        {
            "symbol": frame["symbol"],
            "window_start": frame["window_start"],
            "log_return": np.log(frame["close"] / frame["open"]),
        }
    )


def window_step(value: datetime) -> int:
    """The index of the 5-minute step that starts at ``value`` (since the simulation epoch)."""
    return int((np.datetime64(value, "s") - EPOCH) / np.timedelta64(STEP_S, "s"))


#: Funding settlements per interval length: most perpetuals settle every 8 hours, some small caps every 4.
FUNDING_INTERVALS_H = (8, 4)
#: The funding rate's cap on the simulated venue (per interval), as on Binance's USD-M for most pairs.
SIMULATED_FUNDING_CAP = 0.0075


def has_simulated_perpetual(coin: Coin) -> bool:
    """Whether the simulated venue lists a perpetual swap of ``coin`` (no stablecoin; about 85 % of the rest)."""
    if coin.symbol in {"USDT", "USDC", "DAI"}:
        return False
    return coin.symbol in {"BTC", "ETH"} or float(hashed_normal(_stable_id(coin.coin_id), 41)) > -1.0


def simulated_derivatives_frame(coins: Sequence[Coin], start: datetime, end: datetime) -> pd.DataFrame:
    """``derivatives_data`` rows for every coin with a simulated perpetual and every window in [start, end).

    The index follows the coin's simulated spot bars; the mark carries a premium that mean-reverts
    around the funding rate; funding settles every 8 (or 4) hours at a rate that drifts slowly and
    stays within :data:`SIMULATED_FUNDING_CAP`; the predicted next rate converges on the settled one
    as its time nears; open interest drifts smoothly around about 2 % of the market cap.
    """
    listed = [c for c in coins if has_simulated_perpetual(c)]
    spot = simulated_price_frame(listed, start, end)
    if spot.empty:
        return pd.DataFrame()
    params = _coin_params(listed)
    n_windows = len(spot) // len(listed)
    steps = window_step(start) + np.arange(n_windows)
    index_id = params["index"][:, None]
    interval_h = np.where(hashed_normal(params["index"], 43) > 1.0, 4, 8)[:, None]
    interval_steps = interval_h * 12
    ends = steps[None, :] + 1  # the window's end, in steps
    last = (ends - 1) // interval_steps  # the latest settlement strictly before the window's end
    # Funding swings with the coin's volatility: about 0.006 % per 8 hours around the base rate for BTC,
    # several times that for small caps.
    swing = (0.00006 * params["vol"] / 0.025)[:, None]

    def rate_of(settlement: np.ndarray) -> np.ndarray:
        noise = _value_noise(index_id + 7, settlement * 16)
        return np.clip(0.0001 + swing * noise, -SIMULATED_FUNDING_CAP, SIMULATED_FUNDING_CAP)

    funding_rate = rate_of(last)
    next_rate = rate_of(last + 1)
    remaining = ((last + 1) * interval_steps - ends) / interval_steps
    predicted = next_rate + 0.0001 * remaining * hashed_normal(index_id, 31, steps[None, :])
    premium = 0.8 * funding_rate + 0.0004 * hashed_normal(index_id, 23, steps[None, :])
    index_noise = 1.0 + 0.0002 * hashed_normal(index_id, 21, steps[None, :])
    contracts = (params["cap"] * np.clip(0.02 + 0.01 * hashed_normal(params["index"], 47), 0.005, 0.05))[:, None]
    contracts = contracts / params["price"][:, None] * np.exp(0.25 * _value_noise(index_id + 11, steps[None, :]))

    def minutes(step: np.ndarray) -> np.ndarray:
        return (EPOCH + (step * STEP_S).astype("timedelta64[s]")).astype("datetime64[us]").ravel()

    frame = pd.DataFrame(
        {
            "symbol": spot["symbol"].to_numpy(),
            "window_start": spot["window_start"].to_numpy(),
            "exchange": SOURCE,
            "contract": np.repeat([f"{c.symbol}/USDT:USDT" for c in listed], n_windows),
            "settle": "USDT",
        }
    )
    index = {side: spot[side].to_numpy() * index_noise.ravel() for side in ("open", "high", "low", "close")}
    for side, values in index.items():
        frame[f"mark_{side}"] = values * (1.0 + premium.ravel())
    for side, values in index.items():
        frame[f"index_{side}"] = values
    frame["premium"] = frame["mark_close"] / frame["index_close"] - 1.0
    frame["funding_rate"] = funding_rate.ravel()
    frame["funding_time"] = minutes(last * interval_steps)
    frame["next_funding_rate"] = predicted.ravel()
    frame["next_funding_time"] = minutes((last + 1) * interval_steps)
    frame["funding_interval_h"] = np.repeat(interval_h.ravel().astype(float), n_windows)
    frame["open_interest"] = contracts.ravel()
    frame["open_interest_value"] = frame["open_interest"] * frame["mark_close"]
    frame["open_interest_at"] = minutes(np.broadcast_to(ends, premium.shape))
    frame["collected_at"] = frame["open_interest_at"]
    return frame


__all__ = [
    "SOURCE",
    "has_simulated_perpetual",
    "simulated_derivatives_frame",
    "simulated_price_frame",
    "simulated_returns",
    "hashed_normal",
    "window_step",
    "log_price_paths",
]
