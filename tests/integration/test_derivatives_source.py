"""The live derivatives client through ccxt against loopback fakes of Binance USD-M, OKX and Bybit.

Every fake answers from the simulated perpetuals, so what ``fetch_live_derivatives`` assembles must
equal ``simulated_derivatives_frame`` for the same windows wherever the exchange serves the series.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from resources.config.universe import load_universe
from resources.retry_policy import reset_circuit_breakers
from resources.sources.derivatives import fetch_live_derivatives
from resources.sources.derivatives_sources import DerivativesSourceResource, validate_derivatives
from resources.sources.exchange import exchange_venues
from resources.sources.simulated import has_simulated_perpetual, simulated_derivatives_frame
from testkit.fakes.derivatives_servers import FakeBinanceUsdm, FakeBybit, FakeDerivativesServer, FakeOkxSwap
from testkit.fakes.price_servers import BINANCE_GEO_BLOCK

NOW = datetime(2026, 3, 2, 12, 0)
COINS = {c.symbol: c for c in load_universe()}
SOME = [COINS[s] for s in ("BTC", "ETH", "SOL", "USDT")]
PRICES = [f"{side}_{part}" for side in ("mark", "index") for part in ("open", "high", "low", "close")]
VALUES = [*PRICES, "premium", "funding_rate", "funding_interval_h", "open_interest", "open_interest_value"]
TIMES = ["funding_time", "next_funding_time", "open_interest_at"]


@pytest.fixture(autouse=True)
def _fresh_breakers():
    reset_circuit_breakers()
    yield
    reset_circuit_breakers()


def _venues(*fakes: FakeDerivativesServer, attempts: int = 2) -> list:
    return exchange_venues(
        [f.exchange_id for f in fakes],
        {f.exchange_id: f.url for f in fakes},
        market_type="swap",
        max_attempts=attempts,
        backoff_base_s=0.01,
        timeout_s=5,
        rate_limit_ms=1,
    )


def _fetch(fakes, coins, start, end, now=NOW, attempts=2):
    venues = _venues(*fakes, attempts=attempts)
    try:
        return fetch_live_derivatives(coins, start, end, venues=venues, now=now)
    finally:
        for venue in venues:
            venue.close()


def _simulated(coins, start, end) -> pd.DataFrame:
    """The simulated mode's rows (computed for the whole universe) of ``coins``."""
    frame = simulated_derivatives_frame(list(COINS.values()), start, end)
    return frame[frame["symbol"].isin([c.symbol for c in coins])]


def _assert_matches_simulated(frame: pd.DataFrame, coins, start, end, without=()) -> None:
    expected = _simulated(coins, start, end).set_index(["symbol", "window_start"])
    got = frame.set_index(["symbol", "window_start"]).sort_index()
    assert list(got.index) == list(expected.sort_index().index)
    expected = expected.loc[got.index]
    for column in [c for c in VALUES if c not in without]:
        np.testing.assert_allclose(got[column].astype(float), expected[column], rtol=1e-9, err_msg=column)
    for column in [c for c in TIMES if c not in without]:
        assert (pd.to_datetime(got[column]) == pd.to_datetime(expected[column])).all(), column


@pytest.mark.parametrize("fake_class", [FakeBinanceUsdm, FakeOkxSwap, FakeBybit])
def test_each_exchange_gives_the_simulated_values(fake_class) -> None:
    """Backfilled windows (a day ago): every field equals the simulated frame's; no predicted rate."""
    start, end = NOW - timedelta(days=1), NOW - timedelta(days=1) + timedelta(hours=2)
    with fake_class(now=NOW) as fake:
        fetch = _fetch([fake], SOME, start, end)
    assert fetch.no_perpetual == ["USDT"]
    assert fetch.missing_reasons == {}
    validate_derivatives(fetch.frame, start, end)
    assert set(fetch.frame["exchange"]) == {fake.exchange_id}
    assert set(fetch.frame["contract"]) == {"BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"}
    assert fetch.frame["next_funding_rate"].isna().all()
    _assert_matches_simulated(fetch.frame, SOME[:3], start, end)
    calls = fetch.exchanges[fake.exchange_id]["calls"]
    assert calls["funding_now"] == 0
    assert set(calls) == {"mark", "index", "funding_history", "funding_now", "open_interest_history"}
    assert fetch.exchanges[fake.exchange_id]["coins_served"] == 3


@pytest.mark.parametrize("fake_class", [FakeBinanceUsdm, FakeOkxSwap, FakeBybit])
def test_the_live_window_gets_the_predicted_rate_and_only_it(fake_class) -> None:
    start, end = NOW - timedelta(minutes=30), NOW
    with fake_class(now=NOW) as fake:
        fetch = _fetch([fake], SOME[:2], start, end)
    frame = fetch.frame.sort_values(["symbol", "window_start"])
    _assert_matches_simulated(frame, SOME[:2], start, end)
    live = frame["window_start"] == NOW - timedelta(minutes=5)
    expected = _simulated(SOME[:2], NOW - timedelta(minutes=5), NOW).sort_values("symbol")
    np.testing.assert_allclose(frame.loc[live, "next_funding_rate"], expected["next_funding_rate"], rtol=1e-9)
    assert frame.loc[~live, "next_funding_rate"].isna().all()
    calls = fetch.exchanges[fake.exchange_id]["calls"]
    assert calls["funding_now"] == 2


@pytest.mark.parametrize("fake_class", [FakeBinanceUsdm, FakeOkxSwap, FakeBybit])
def test_transient_faults_are_retried_and_change_nothing(fake_class) -> None:
    """A 429, a 500, a truncated body and a CDN's HTML page on the way: retried, same values."""
    start, end = NOW - timedelta(hours=2), NOW - timedelta(hours=1)
    with fake_class(now=NOW) as fake:
        fake.faults.extend(["429", "500", "truncated", "html"])
        fetch = _fetch([fake], SOME[:2], start, end, attempts=5)
        assert not fake.faults
    _assert_matches_simulated(fetch.frame, SOME[:2], start, end)
    assert fetch.exchanges[fake.exchange_id]["retries"] >= 3  # Bybit loads its markets in two requests an attempt


def test_a_cdn_block_page_skips_the_exchange_too() -> None:
    start, end = NOW - timedelta(hours=1), NOW - timedelta(minutes=30)
    with FakeOkxSwap(now=NOW) as okx, FakeBybit(now=NOW) as bybit:
        okx.refuse = 403
        fetch = _fetch([okx, bybit], SOME[:2], start, end)
    assert set(fetch.frame["exchange"]) == {"bybit"}
    assert "Request blocked. Generated by cloudfront (CloudFront)" in fetch.exchanges["okx"]["detail"]


def test_okx_serves_five_days_of_open_interest() -> None:
    start, end = NOW - timedelta(days=6), NOW - timedelta(days=4)
    with FakeOkxSwap(now=NOW) as fake:
        fetch = _fetch([fake], SOME[:1], start, end)
    frame = fetch.frame
    missing = frame["open_interest"].isna()
    assert missing.any() and (~missing).any()
    assert (frame.loc[missing, "window_start"] < pd.Timestamp(NOW - timedelta(days=5))).all()
    assert fetch.exchanges["okx"]["windows_before_open_interest_history"] == int(missing.sum())
    _assert_matches_simulated(frame[~missing], SOME[:1], frame.loc[~missing, "window_start"].min().to_pydatetime(), end)


def test_a_refusing_exchange_is_skipped_with_its_reason_whole() -> None:
    start, end = NOW - timedelta(hours=1), NOW - timedelta(minutes=30)
    with FakeBinanceUsdm(now=NOW) as binance, FakeBybit(now=NOW) as bybit:
        binance.refuse = 451
        fetch = _fetch([binance, bybit], SOME[:2], start, end)
    assert set(fetch.frame["exchange"]) == {"bybit"}
    _assert_matches_simulated(fetch.frame, SOME[:2], start, end)
    refused = fetch.exchanges["binanceusdm"]
    assert refused["refused"] and refused["state"] == "refused"
    assert BINANCE_GEO_BLOCK["msg"] in refused["detail"]
    assert fetch.exchanges["bybit"]["coins_served"] == 2


@pytest.mark.parametrize(
    ("fake_class", "words"),
    [
        (FakeBinanceUsdm, "Invalid symbol."),
        (FakeOkxSwap, "Instrument ID doesn't exist."),
        (FakeBybit, "symbol invalid"),
    ],
)
def test_one_pairs_error_leaves_that_coin_missing_and_the_rest_land(fake_class, words) -> None:
    start, end = NOW - timedelta(hours=1), NOW - timedelta(minutes=30)
    with fake_class(now=NOW) as fake:
        fake.delisted = {"ETH"}
        fetch = _fetch([fake], SOME[:3], start, end)
    assert set(fetch.frame["symbol"]) == {"BTC", "SOL"}
    assert list(fetch.missing_reasons) == ["ETH"]
    assert words in fetch.missing_reasons["ETH"]
    _assert_matches_simulated(fetch.frame, [COINS["BTC"], COINS["SOL"]], start, end)


def test_a_pair_error_falls_to_the_next_exchange_listing_the_coin() -> None:
    start, end = NOW - timedelta(hours=1), NOW - timedelta(minutes=30)
    with FakeBinanceUsdm(now=NOW) as binance, FakeOkxSwap(now=NOW) as okx:
        binance.delisted = {"ETH"}
        fetch = _fetch([binance, okx], SOME[:2], start, end)
    by_coin = fetch.frame.groupby("symbol")["exchange"].first().to_dict()
    assert by_coin == {"BTC": "binanceusdm", "ETH": "okx"}
    assert fetch.missing_reasons == {}


def test_open_interest_before_binances_30_days_is_null_and_reported() -> None:
    """A backfill reaching past Binance's 30 days of open-interest history: NULL there, counted."""
    start, end = NOW - timedelta(days=30, hours=1), NOW - timedelta(days=29, hours=23)
    with FakeBinanceUsdm(now=NOW) as fake:
        fetch = _fetch([fake], SOME[:1], start, end)
    frame = fetch.frame.sort_values("window_start")
    # the client asks from one window inside the 30 days, so that a clock ahead of ours is no problem
    first_asked = pd.Timestamp(NOW - timedelta(days=30) + timedelta(minutes=5))
    before = frame["window_start"] + pd.Timedelta(minutes=5) < first_asked
    assert before.any() and (~before).any()
    assert frame.loc[before, "open_interest"].isna().all()
    assert frame.loc[~before, "open_interest"].notna().all()
    _assert_matches_simulated(frame[~before], SOME[:1], frame.loc[~before, "window_start"].min().to_pydatetime(), end)
    meta = fetch.exchanges["binanceusdm"]
    assert meta["windows_before_open_interest_history"] == int(before.sum())
    assert meta["open_interest_history_from"] == (NOW - timedelta(days=30)).isoformat()
    assert frame["mark_close"].notna().all() and frame["funding_rate"].notna().all()


def test_a_settlement_at_the_windows_end_belongs_to_the_next_window() -> None:
    """BTC settles every 8 hours: the window ending at 08:00 holds the 00:00 rate, the one opening at 08:00 the new one."""
    settle = datetime(2026, 3, 2, 8, 0)
    start, end = settle - timedelta(minutes=10), settle + timedelta(minutes=10)
    with FakeBinanceUsdm(now=NOW) as fake:
        fetch = _fetch([fake], SOME[:1], start, end)
    frame = fetch.frame.set_index("window_start")
    assert frame.loc[settle - timedelta(minutes=5), "funding_time"] == settle - timedelta(hours=8)
    assert frame.loc[settle, "funding_time"] == settle
    assert frame.loc[settle - timedelta(minutes=5), "open_interest_at"] == settle
    _assert_matches_simulated(fetch.frame, SOME[:1], start, end)


def test_a_day_of_the_universe_is_fetched_in_pages_not_per_window() -> None:
    coins = list(COINS.values())
    start, end = NOW - timedelta(days=1), NOW
    with FakeBinanceUsdm(now=NOW) as fake:
        fetch = _fetch([fake], coins, start, end)
    perpetuals = sum(has_simulated_perpetual(c) for c in coins)
    assert len(fetch.no_perpetual) == len(coins) - perpetuals
    assert fetch.frame["symbol"].nunique() == perpetuals
    assert len(fetch.frame) == perpetuals * 288
    calls = fetch.exchanges["binanceusdm"]["calls"]
    # a day fits one page of every series: one call per coin and series, the live window included
    assert calls == {
        "mark": perpetuals,
        "index": perpetuals,
        "funding_history": perpetuals,
        "open_interest_history": perpetuals,
        "funding_now": perpetuals,
    }


def test_the_resource_builds_swap_venues() -> None:
    start, end = NOW - timedelta(hours=1), NOW - timedelta(minutes=50)
    with FakeBybit(now=NOW) as fake:
        resource = DerivativesSourceResource(
            mode="live",
            exchanges="bybit",
            exchange_urls={"bybit": fake.url},
            max_attempts=2,
            backoff_base_s=0.01,
            exchange_rate_limit_ms=1,
        )
        fetch = resource.fetch(start, end, now=NOW)
    assert fetch.frame["symbol"].nunique() == sum(has_simulated_perpetual(c) for c in resource.coins())
    assert set(fetch.frame["exchange"]) == {"bybit"}


def test_a_live_run_after_the_windows_end_keeps_open_interest_at_or_before_it() -> None:
    """Run a minute after the window closed: the predicted rate is the one observed then; open
    interest is the history's observation at the window's end (no snapshot stamped after it)."""
    start, end = NOW - timedelta(minutes=5), NOW
    with FakeBinanceUsdm(now=NOW + timedelta(minutes=1)) as fake:
        fetch = _fetch([fake], SOME[:1], start, end, now=NOW + timedelta(minutes=1))
    row = fetch.frame.iloc[0]
    assert row["open_interest_at"] == NOW
    assert pd.notna(row["next_funding_rate"])
    assert fetch.exchanges["binanceusdm"]["calls"]["open_interest_history"] == 1
    _assert_matches_simulated(fetch.frame, SOME[:1], start, end)


def test_a_usdc_settled_perpetual_is_noted_in_settle() -> None:
    start, end = NOW - timedelta(hours=1), NOW - timedelta(minutes=30)
    with FakeBybit(listed={"SOL": "USDC", "BTC": "USDT"}, now=NOW) as fake:
        fetch = _fetch([fake], [COINS["SOL"], COINS["BTC"]], start, end)
    validate_derivatives(fetch.frame, start, end)
    contracts = fetch.frame.groupby("symbol")[["contract", "settle"]].first().to_dict("index")
    assert contracts == {
        "BTC": {"contract": "BTC/USDT:USDT", "settle": "USDT"},
        "SOL": {"contract": "SOL/USDC:USDC", "settle": "USDC"},
    }
