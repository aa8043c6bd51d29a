"""Every rolling operator (Alpha158, volatility, volume, market) against a plain pandas reference.

The data is random: geometric random walks with random candles and volumes, a few missing bars
and a flat stretch, so NULL propagation and degenerate windows are exercised too. The module
also provides :func:`random_prices`, the generator the other feature tests share.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from crypto_assets.features.compute import compute_features, history_start
from resources.storage.feature_specs import ALPHA_WINDOWS, FEATURE_NAMES, features_in_family

START = datetime(2026, 1, 5)
WARMUP = 288


def random_prices(
    symbols: tuple[str, ...] = ("BTC", "ETH", "SOL", "DOGE"),
    windows: int = 700,
    seed: int = 7,
    first: datetime = START - WARMUP * timedelta(minutes=5),
    gaps: int = 3,
    flat: bool = True,
) -> pd.DataFrame:
    """``price_data_real``-shaped rows: random walks, random candles, some missing bars.

    ``gaps`` bars per symbol (not BTC) are removed; with ``flat``, the last symbol's price is
    constant for 80 windows in the middle (volume too), to exercise degenerate windows.
    """
    rng = np.random.default_rng(seed)
    frames = []
    times = pd.date_range(first, periods=windows, freq="5min")
    for i, symbol in enumerate(symbols):
        level = [60000.0, 3000.0, 150.0, 0.12][i % 4] * (1 + 0.1 * i)
        log_close = np.log(level) + np.cumsum(rng.normal(0, 0.002 * (1 + i), windows))
        close = np.exp(log_close)
        open_ = np.concatenate([[close[0]], close[:-1]]) * np.exp(rng.normal(0, 0.0005, windows))
        high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.001, windows)))
        low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.001, windows)))
        volume = np.exp(rng.normal(5, 1, windows))
        volume[rng.integers(0, windows, 5)] = 0.0
        if flat and i == len(symbols) - 1:
            middle = slice(windows // 2, windows // 2 + 80)
            close[middle] = open_[middle] = high[middle] = low[middle] = close[windows // 2]
            volume[middle] = 10.0
        supply = 1e6 * (i + 1)
        frame = pd.DataFrame(
            {
                "symbol": symbol,
                "coin_id": symbol.lower(),
                "window_start": times,
                "current_price": close * (1 + rng.normal(0, 1e-4, windows)),
                "market_cap": close * supply,
                "volume_24h": np.exp(rng.normal(20, 0.3, windows)),
                "price_change_24h": 0.0,
                "price_change_pct_24h": rng.normal(0, 3, windows),
                "high_24h": high,
                "low_24h": low,
                "open_24h": open_,
                "open": open_,
                "high": high,
                "low": low,
                "close": close,
                "volume": volume,
                "source": "test",
                "collected_at": times + pd.Timedelta(minutes=5),
            }
        )
        if gaps and symbol != "BTC":
            frame = frame.drop(index=rng.choice(np.arange(WARMUP, windows), gaps, replace=False))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def features_for(prices: pd.DataFrame, start: datetime = START, end: datetime | None = None, **kwargs) -> pd.DataFrame:
    """Compute features of [start, end) (default: to the last window of ``prices``)."""
    if end is None:
        end = pd.Timestamp(prices["window_start"].max()).to_pydatetime() + timedelta(minutes=5)
    return compute_features(prices, kwargs.get("sentiment"), kwargs.get("macro"), start, end)


def price_panel(prices: pd.DataFrame, start: datetime, end: datetime) -> dict[str, pd.DataFrame]:
    """Per input column, a (window x symbol) frame on the complete 5-minute grid (NaN where missing)."""
    index = pd.date_range(history_start(start), end - timedelta(minutes=5), freq="5min")
    out = {}
    frame = prices.assign(price=prices["close"].where(prices["close"].notna(), prices["current_price"]))
    for column in ("price", "open", "high", "low", "volume", "market_cap", "volume_24h"):
        out[column] = frame.pivot(index="window_start", columns="symbol", values=column).reindex(index)
    return out


@pytest.fixture(scope="module")
def case() -> tuple[pd.DataFrame, dict[str, pd.DataFrame], pd.DataFrame]:
    prices = random_prices()
    end = START + timedelta(minutes=5 * (700 - WARMUP))
    features = features_for(prices, START, end)
    return prices, price_panel(prices, START, end), features


def _as_panel(features: pd.DataFrame, name: str, panel_index: pd.Index) -> pd.DataFrame:
    wide = features.pivot(index="timestamp", columns="symbol", values=name)
    return wide.reindex(panel_index[panel_index >= pd.Timestamp(START)])


def _check(features: pd.DataFrame, name: str, expected: pd.DataFrame, rtol: float = 1e-7, atol: float = 1e-10) -> None:
    got = _as_panel(features, name, expected.index)
    want = expected.loc[got.index, got.columns]
    both_nan = got.isna() & want.isna()
    assert (got.isna() == want.isna()).all().all(), (
        f"{name}: NULL pattern differs at {(got.isna() != want.isna()).stack().loc[lambda s: s].index[:5].tolist()}"
    )
    np.testing.assert_allclose(
        got.where(~both_nan, 0).to_numpy(float),
        want.where(~both_nan, 0).to_numpy(float),
        rtol=rtol,
        atol=atol,
        err_msg=name,
    )


def _idx_max(values: np.ndarray) -> float:
    return float(np.argmax(values) + 1)


def _idx_min(values: np.ndarray) -> float:
    return float(np.argmin(values) + 1)


def _regression(values: np.ndarray) -> tuple[float, float, float]:
    x = np.arange(1, len(values) + 1, dtype=float)
    slope, intercept = np.polyfit(x, values, 1)
    fitted = intercept + slope * x
    ss_res = float(((values - fitted) ** 2).sum())
    ss_tot = float(((values - values.mean()) ** 2).sum())
    return slope, (1 - ss_res / ss_tot) if ss_tot > 0 else np.nan, float(values[-1] - fitted[-1])


def alpha158_reference(panel: dict[str, pd.DataFrame], d: int) -> dict[str, pd.DataFrame]:
    """Qlib's Alpha158 formulas for window ``d`` written with plain pandas rolling operations."""
    c, h, lo, v = panel["price"], panel["high"], panel["low"], panel["volume"]
    roll = lambda frame: frame.rolling(d, min_periods=d)  # noqa: E731
    # std over each window on its own: pandas' running variance leaves residue on constant windows
    std = lambda frame: roll(frame).apply(lambda a: a.std(ddof=1), raw=True)  # noqa: E731
    prev = c.shift(1)
    change = c - prev
    # comparisons with a missing neighbour are missing, not False (no silent zero)
    up = (change > 0).astype(float).where(change.notna())
    down = (change < 0).astype(float).where(change.notna())
    dv = v - v.shift(1)
    ratio = c / prev
    ref = {
        "roc": c.shift(d) / c,
        "ma": roll(c).mean() / c,
        "std": std(c) / c,
        "max": roll(h).max() / c,
        "min": roll(lo).min() / c,
        "qtlu": roll(c).quantile(0.8) / c,
        "qtld": roll(c).quantile(0.2) / c,
        "rank": roll(c).rank(pct=True),
        "rsv": (c - roll(lo).min()) / (roll(h).max() - roll(lo).min() + 1e-12),
        "imax": roll(h).apply(_idx_max, raw=True) / d,
        "imin": roll(lo).apply(_idx_min, raw=True) / d,
        "imxd": (roll(h).apply(_idx_max, raw=True) - roll(lo).apply(_idx_min, raw=True)) / d,
        "corr": roll(c).corr(np.log(v + 1)),
        "cord": roll(ratio).corr(np.log(v / v.shift(1) + 1)),
        "cntp": roll(up).mean(),
        "cntn": roll(down).mean(),
        "cntd": roll(up).mean() - roll(down).mean(),
        "sump": roll(change.clip(lower=0)).sum() / (roll(change.abs()).sum() + 1e-12),
        "sumn": roll((-change).clip(lower=0)).sum() / (roll(change.abs()).sum() + 1e-12),
        "sumd": (roll(change.clip(lower=0)).sum() - roll((-change).clip(lower=0)).sum())
        / (roll(change.abs()).sum() + 1e-12),
        "vma": roll(v).mean() / (v + 1e-12),
        "vstd": std(v) / (v + 1e-12),
        "wvma": std((ratio - 1).abs() * v) / (roll((ratio - 1).abs() * v).mean() + 1e-12),
        "vsump": roll(dv.clip(lower=0)).sum() / (roll(dv.abs()).sum() + 1e-12),
        "vsumn": roll((-dv).clip(lower=0)).sum() / (roll(dv.abs()).sum() + 1e-12),
        "vsumd": (roll(dv.clip(lower=0)).sum() - roll((-dv).clip(lower=0)).sum()) / (roll(dv.abs()).sum() + 1e-12),
    }
    values = c.to_numpy(float)
    regression = {name: np.full(values.shape, np.nan) for name in ("beta", "rsqr", "resi")}
    for j in range(d - 1, len(c)):
        for s in range(c.shape[1]):
            window = values[j - d + 1 : j + 1, s]
            if np.isnan(window).any():
                continue
            slope, rsq, resid = _regression(window)
            regression["beta"][j, s] = slope / values[j, s]
            regression["rsqr"][j, s] = rsq
            regression["resi"][j, s] = resid / values[j, s]
    ref.update({name: pd.DataFrame(array, index=c.index, columns=c.columns) for name, array in regression.items()})
    return ref


@pytest.mark.parametrize("d", ALPHA_WINDOWS)
def test_alpha158_rolling_operators_match_pandas(case, d: int) -> None:
    _, panel, features = case
    reference = alpha158_reference(panel, d)
    ops = {spec.name.rsplit("_", 1)[0] for spec in features_in_family("rolling")}
    assert ops == set(reference), "every rolling operator has a reference"
    for op, expected in reference.items():
        # rsqr of a nearly flat window is ill-conditioned in either implementation
        _check(
            features,
            f"{op}_{d}",
            expected,
            rtol=1e-5 if op in ("rsqr", "beta", "resi", "corr", "cord") else 1e-7,
            atol=1e-6 if op in ("rsqr", "corr", "cord", "vstd", "wvma") else 1e-9,
        )


def test_candle_features_match_alpha158(case) -> None:
    _, p, features = case
    o, h, lo, c = p["open"], p["high"], p["low"], p["price"]
    span = h - lo + 1e-12
    expected = {
        "kmid": (c - o) / o,
        "klen": (h - lo) / o,
        "kmid2": (c - o) / span,
        "kup": (h - np.maximum(o, c)) / o,
        "kup2": (h - np.maximum(o, c)) / span,
        "klow": (np.minimum(o, c) - lo) / o,
        "klow2": (np.minimum(o, c) - lo) / span,
        "ksft": (2 * c - h - lo) / o,
        "ksft2": (2 * c - h - lo) / span,
        "open0": o / c,
        "high0": h / c,
        "low0": lo / c,
    }
    assert set(expected) == {s.name for s in features_in_family("candle")}
    for name, frame in expected.items():
        _check(features, name, frame)


def test_returns_and_volatility_match_pandas(case) -> None:
    _, p, features = case
    c, h, lo, o = p["price"], p["high"], p["low"], p["open"]
    r = np.log(c / c.shift(1))
    expected = {
        f"ret_{label}": c / c.shift(k) - 1
        for label, k in {"5m": 1, "15m": 3, "30m": 6, "1h": 12, "4h": 48, "12h": 144, "1d": 288}.items()
    }
    expected["ret_5m_lag1"] = c.shift(1) / c.shift(2) - 1
    expected["ret_5m_lag2"] = c.shift(2) / c.shift(3) - 1
    for label, n in (("1h", 12), ("4h", 48), ("1d", 288)):
        expected[f"rv_{label}"] = r.rolling(n).std()
        expected[f"parkinson_vol_{label}"] = np.sqrt((np.log(h / lo) ** 2).rolling(n).mean() / (4 * math.log(2)))
        expected[f"range_{label}"] = (h.rolling(n).max() - lo.rolling(n).min()) / c
    gk = 0.5 * np.log(h / lo) ** 2 - (2 * math.log(2) - 1) * np.log(c / o) ** 2
    for label, n in (("1h", 12), ("4h", 48)):
        expected[f"garman_klass_vol_{label}"] = np.sqrt(gk.rolling(n).mean().clip(lower=0))
    expected["downside_vol_4h"] = np.sqrt((r.clip(upper=0) ** 2).rolling(48).sum() / 48)
    expected["upside_vol_4h"] = np.sqrt((r.clip(lower=0) ** 2).rolling(48).sum() / 48)
    expected["rv_ratio_1h_1d"] = r.rolling(12).std() / r.rolling(288).std()
    expected["ret_skew_1d"] = r.rolling(288).skew()
    expected["ret_kurt_1d"] = r.rolling(288).kurt()
    for name, frame in expected.items():
        _check(features, name, frame, rtol=1e-6, atol=1e-9)


def test_volume_and_market_features_match_pandas(case) -> None:
    prices, p, features = case
    c, v, cap, h, lo = p["price"], p["volume"], p["market_cap"], p["high"], p["low"]
    lv = np.log(v + 1)
    r = np.log(c / c.shift(1))
    tp = (h + lo + c) / 3
    expected = {
        "log_market_cap": np.log(cap),
        "turnover_24h": p["volume_24h"] / cap,
        "mcap_change_1h": cap / cap.shift(12) - 1,
        "mcap_change_1d": cap / cap.shift(288) - 1,
        "vol_z_1d": (lv - lv.rolling(288).mean()) / lv.rolling(288).std(),
        "vol_ratio_1h_1d": v.rolling(12).mean() / v.rolling(288).mean(),
        "log_dollar_volume_1h": np.log((v * c).rolling(12).sum()),
        "amihud_1d": r.abs().rolling(288).sum() / (v * c).rolling(288).sum() * 1e6,
        "vwap_dev_1h": c / ((tp * v).rolling(12).sum() / v.rolling(12).sum()) - 1,
        "vwap_dev_1d": c / ((tp * v).rolling(288).sum() / v.rolling(288).sum()) - 1,
    }
    rb = r["BTC"]
    for label, n in (("4h", 48), ("1d", 288)):
        expected[f"beta_btc_{label}"] = r.apply(lambda col, n=n: col.rolling(n).cov(rb) / rb.rolling(n).var())
        expected[f"corr_btc_{label}"] = r.apply(lambda col, n=n: col.rolling(n).corr(rb))
    for name, frame in expected.items():
        _check(features, name, frame, rtol=1e-6, atol=1e-9)
    # market-wide: every symbol with a row in the window
    ret_1h = c / c.shift(12) - 1
    weights = cap.shift(12)
    valid = ret_1h.notna() & weights.notna()
    mkt = (ret_1h * weights).where(valid).sum(axis=1) / weights.where(valid).sum(axis=1)
    got = _as_panel(features, "mkt_ret_1h", c.index)
    np.testing.assert_allclose(got["ETH"].to_numpy(float), mkt.loc[got.index].to_numpy(float), rtol=1e-9)
    breadth = (ret_1h > 0).where(ret_1h.notna()).mean(axis=1)
    got = _as_panel(features, "mkt_breadth_1h", c.index)
    np.testing.assert_allclose(got["BTC"].to_numpy(float), breadth.loc[got.index].to_numpy(float), rtol=1e-12)
    got = _as_panel(features, "btc_ret_1h", c.index)
    np.testing.assert_allclose(got["SOL"].to_numpy(float), ret_1h["BTC"].loc[got.index].to_numpy(float), rtol=1e-12)


def test_cross_section_ranks_and_zscores_match_pandas(case) -> None:
    _, _, features = case
    for spec in features_in_family("cross_section"):
        kind, base = (
            ("rank", spec.name[len("cs_rank_") :])
            if spec.name.startswith("cs_rank_")
            else ("z", spec.name[len("cs_z_") :])
        )
        wide = features.pivot(index="timestamp", columns="symbol", values=base)
        if kind == "rank":
            expected = wide.rank(axis=1, pct=True)
        else:
            mean, std, count = wide.mean(axis=1), wide.std(axis=1), wide.count(axis=1)
            ok = ((count >= 3) & (std > 0)).to_numpy()[:, None]
            expected = wide.sub(mean, axis=0).div(std, axis=0).where(np.broadcast_to(ok, wide.shape))
        got = features.pivot(index="timestamp", columns="symbol", values=spec.name)
        np.testing.assert_allclose(
            got.to_numpy(float), expected.to_numpy(float), rtol=1e-9, atol=1e-12, err_msg=spec.name
        )


def test_missing_bars_make_features_null_not_filled(case) -> None:
    prices, p, features = case
    missing = p["price"].isna()
    gap = missing.stack().loc[lambda s: s].index
    gap = [(t, s) for t, s in gap if t >= pd.Timestamp(START)]
    assert gap, "the random data has gaps in the target range"
    t, symbol = gap[0]
    row = features.loc[(features["symbol"] == symbol) & (features["timestamp"] == t)].iloc[0]
    assert np.isnan(row["price"]) and np.isnan(row["ret_5m"]) and np.isnan(row["ma_5"]) and np.isnan(row["rsi_14"])
    assert row["bars_missing"] >= 1 and row["bars_missing_1h"] >= 1
    later = features.loc[(features["symbol"] == symbol) & (features["timestamp"] == t + pd.Timedelta(minutes=5))]
    if len(later) and not missing.loc[t + pd.Timedelta(minutes=5), symbol]:
        assert np.isnan(later.iloc[0]["ret_5m"]), "a return across a gap is NULL, not computed from a stale price"
        assert np.isnan(later.iloc[0]["ma_5"])
    _check(features, "bars_missing", missing.astype(float).rolling(289).sum())
    _check(features, "bars_missing_1h", missing.astype(float).rolling(12).sum())


def test_every_catalogued_feature_is_a_column_and_lands(case) -> None:
    _, _, features = case
    assert list(features.columns) == ["symbol", "timestamp", "price", *FEATURE_NAMES, "feature_set_version"]
    assert len(FEATURE_NAMES) >= 150
    complete = features.loc[features["bars_missing"] == 0]
    price_families = {"returns", "volatility", "candle", "rolling", "talib", "volume", "market", "quality", "calendar"}
    names = [n for f in price_families for n in (s.name for s in features_in_family(f))]
    all_null = [n for n in names if complete[n].isna().all()]
    assert not all_null, f"features never computed on complete history: {all_null}"
