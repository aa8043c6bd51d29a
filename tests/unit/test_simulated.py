"""The simulated market is deterministic, realistic and labelled."""

from datetime import datetime, timedelta

import numpy as np

from resources.config.universe import load_universe
from resources.sources.simulated import simulated_price_frame

DAY = datetime(2026, 11, 1)


def test_same_window_same_rows_alone_or_in_a_range():
    coins = load_universe()
    day = simulated_price_frame(coins, DAY, DAY + timedelta(days=1))
    alone = simulated_price_frame(coins, DAY + timedelta(hours=7), DAY + timedelta(hours=7, minutes=5))
    in_range = day[day.window_start == DAY + timedelta(hours=7)].reset_index(drop=True)
    numeric = ["open", "high", "low", "close", "volume", "market_cap", "high_24h", "price_change_pct_24h"]
    np.testing.assert_allclose(in_range[numeric].to_numpy(), alone[numeric].to_numpy(), rtol=1e-12)
    assert (day.source == "simulated").all()
    assert len(day) == 124 * 288 and not day.duplicated(["symbol", "window_start"]).any()


def test_prices_are_plausible_and_correlated():
    coins = load_universe()
    frame = simulated_price_frame(coins, DAY, DAY + timedelta(days=2))
    assert (frame[["open", "high", "low", "close", "volume", "market_cap"]] > 0).all().all()
    assert (frame.high >= frame[["open", "close"]].max(axis=1)).all()
    assert (frame.low <= frame[["open", "close"]].min(axis=1)).all()
    closes = frame.pivot(index="window_start", columns="symbol", values="close")
    returns = np.log(closes).diff().dropna()
    btc_daily_vol = returns["BTC"].std() * np.sqrt(288)
    assert 0.005 < btc_daily_vol < 0.08
    assert returns["USDT"].std() < returns["BTC"].std() / 10
    assert returns["BTC"].corr(returns["ETH"]) > 0.2
    btc = frame[frame.symbol == "BTC"]
    assert 20_000 < btc.close.median() < 400_000
