"""Every TA-Lib-derived column equals TA-Lib run directly on the stored price series.

Windowed indicators are compared with TA-Lib over the whole series. Recursive ones (EMA, MACD,
RSI, ATR, ADX, and OBV's running sum) are defined over a fixed trailing history of W bars (their
catalogued lookback), so they are compared with ``talib.X(last W bars)[-1]`` for every window.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import talib

from resources.storage.feature_specs import FEATURES_BY_NAME, features_in_family
from tests.unit.test_features_reference import START, WARMUP, features_for, random_prices

# name -> (trailing window or None for the whole series, function of (high, low, close, volume) -> value array)
CHECKS = {
    **{f"rsi_{n}": (10 * n, lambda h, low, c, v, n=n: talib.RSI(c, n)) for n in (6, 14, 24)},
    "macd_line": (140, lambda h, low, c, v: talib.MACD(c, 12, 26, 9)[0]),
    "macd_signal": (140, lambda h, low, c, v: talib.MACD(c, 12, 26, 9)[1]),
    "macd_hist": (140, lambda h, low, c, v: talib.MACD(c, 12, 26, 9)[2]),
    "macd_line_rel": (140, lambda h, low, c, v: talib.MACD(c, 12, 26, 9)[0] / c),
    "macd_signal_rel": (140, lambda h, low, c, v: talib.MACD(c, 12, 26, 9)[1] / c),
    "macd_hist_rel": (140, lambda h, low, c, v: talib.MACD(c, 12, 26, 9)[2] / c),
    "bb_upper": (None, lambda h, low, c, v: talib.BBANDS(c, 20, 2, 2, 0)[0]),
    "bb_middle": (None, lambda h, low, c, v: talib.BBANDS(c, 20, 2, 2, 0)[1]),
    "bb_lower": (None, lambda h, low, c, v: talib.BBANDS(c, 20, 2, 2, 0)[2]),
    "bb_width": (None, lambda h, low, c, v: (lambda u, m, lo: (u - lo) / m)(*talib.BBANDS(c, 20, 2, 2, 0))),
    "bb_pctb": (None, lambda h, low, c, v: (lambda u, m, lo: (c - lo) / (u - lo))(*talib.BBANDS(c, 20, 2, 2, 0))),
    "atr_14": (140, lambda h, low, c, v: talib.ATR(h, low, c, 14)),
    "natr_14": (140, lambda h, low, c, v: talib.NATR(h, low, c, 14)),
    "adx_14": (150, lambda h, low, c, v: talib.ADX(h, low, c, 14)),
    "plus_di_14": (150, lambda h, low, c, v: talib.PLUS_DI(h, low, c, 14)),
    "minus_di_14": (150, lambda h, low, c, v: talib.MINUS_DI(h, low, c, 14)),
    "cci_14": (None, lambda h, low, c, v: talib.CCI(h, low, c, 14)),
    "mfi_14": (None, lambda h, low, c, v: talib.MFI(h, low, c, v, 14)),
    "willr_14": (None, lambda h, low, c, v: talib.WILLR(h, low, c, 14)),
    "stoch_k": (None, lambda h, low, c, v: talib.STOCH(h, low, c, 5, 3, 0, 3, 0)[0]),
    "stoch_d": (None, lambda h, low, c, v: talib.STOCH(h, low, c, 5, 3, 0, 3, 0)[1]),
    "roc_pct_10": (None, lambda h, low, c, v: talib.ROC(c, 10)),
    "mom_10": (None, lambda h, low, c, v: talib.MOM(c, 10)),
    "obv_1d": (288, lambda h, low, c, v: talib.OBV(c, v)),
    "obv_1d_norm": (288, lambda h, low, c, v: talib.OBV(c, v) / v.sum()),
    "ultosc": (None, lambda h, low, c, v: talib.ULTOSC(h, low, c, 7, 14, 28)),
    "aroon_up_25": (None, lambda h, low, c, v: talib.AROON(h, low, 25)[1]),
    "aroon_down_25": (None, lambda h, low, c, v: talib.AROON(h, low, 25)[0]),
    **{f"ema_ratio_{n}": (5 * n, lambda h, low, c, v, n=n: c / talib.EMA(c, n)) for n in (5, 10, 20, 50)},
    **{f"sma_ratio_{n}": (None, lambda h, low, c, v, n=n: c / talib.SMA(c, n)) for n in (50, 100, 200)},
}


@pytest.fixture(scope="module")
def case() -> tuple[pd.DataFrame, pd.DataFrame]:
    # no gaps: TA-Lib itself has no notion of a missing bar (the NULL rule is tested elsewhere)
    prices = random_prices(gaps=0, windows=WARMUP + 150)
    return prices, features_for(prices)


def test_every_talib_feature_is_checked() -> None:
    assert set(CHECKS) == {spec.name for spec in features_in_family("talib")}
    for name, (window, _) in CHECKS.items():
        if window is not None:
            assert FEATURES_BY_NAME[name].lookback == window, f"{name}: the catalogue states the window"


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_talib_feature_equals_talib(case, name: str) -> None:
    prices, features = case
    window, function = CHECKS[name]
    compared = 0
    for symbol, bars in prices.sort_values("window_start").groupby("symbol"):
        h, low, c, v = (bars[col].to_numpy(float) for col in ("high", "low", "close", "volume"))
        times = bars["window_start"].to_numpy()
        got = features.loc[features["symbol"] == symbol].set_index("timestamp")[name]
        full = function(h, low, c, v) if window is None else None
        for j in range(WARMUP, len(bars)):
            if window is None:
                expected = full[j]
            else:
                sl = slice(j - window + 1, j + 1)
                expected = function(h[sl], low[sl], c[sl], v[sl])[-1]
            actual = got.loc[pd.Timestamp(times[j])]
            if not np.isfinite(expected):  # %b where the bands coincide (a flat stretch): NULL here
                assert name == "bb_pctb" and np.isnan(actual), f"{name}: TA-Lib gives {expected} at {times[j]}"
                continue
            np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-9, err_msg=f"{name} {symbol} {times[j]}")
            compared += 1
    assert compared >= 4 * 150 - 20


def test_flat_prices_give_talib_degenerate_values() -> None:
    prices = random_prices(gaps=0, windows=WARMUP + 20, flat=False)
    flat = prices["symbol"] == "DOGE"
    for column in ("open", "high", "low", "close", "current_price"):
        prices.loc[flat, column] = 0.5
    features = features_for(prices).set_index(["symbol", "timestamp"])
    row = features.loc["DOGE"].iloc[-1]
    c = np.full(WARMUP + 20, 0.5)
    v = prices.loc[flat, "volume"].to_numpy(float)
    assert row["rsi_14"] == talib.RSI(c[-140:], 14)[-1] == 0.0
    assert row["adx_14"] == talib.ADX(c[-150:], c[-150:], c[-150:], 14)[-1]
    assert row["cci_14"] == talib.CCI(c, c, c, 14)[-1]
    assert row["willr_14"] == talib.WILLR(c, c, c, 14)[-1]
    assert row["stoch_k"] == talib.STOCH(c, c, c)[0][-1]
    assert row["mfi_14"] == talib.MFI(c, c, c, v, 14)[-1]
    assert row["ultosc"] == talib.ULTOSC(c, c, c)[-1]
    assert np.isnan(row["bb_pctb"]) and row["bb_width"] == 0.0


def test_gap_in_the_trailing_history_makes_recursive_indicators_null() -> None:
    prices = random_prices(gaps=0, windows=WARMUP + 200, flat=False)
    gap_time = START + timedelta(minutes=5 * 10)
    prices = prices.loc[~((prices["symbol"] == "ETH") & (prices["window_start"] == gap_time))]
    features = features_for(prices).set_index(["symbol", "timestamp"]).loc["ETH"]
    after = lambda n: features.loc[pd.Timestamp(gap_time + timedelta(minutes=5 * n))]  # noqa: E731
    assert np.isnan(after(1)["rsi_14"]) and np.isnan(after(139)["rsi_14"])
    assert np.isfinite(after(140)["rsi_14"]), "the NULL clears once the gap leaves the 140-bar history"
    assert np.isnan(after(149)["adx_14"]) and np.isfinite(after(150)["adx_14"])
    assert np.isnan(after(19)["bb_middle"]) and np.isfinite(after(20)["bb_middle"])
