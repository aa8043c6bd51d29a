"""The live window of derivatives through Dagster against the exchange fakes, and its features.

The run the schedule makes for the window that just closed: prices simulated, derivatives live
from ``binanceusdm`` (geo-blocked: HTTP 451 with Binance's words) and then ``bybit`` (which answers
one pair with its pair-level error), and the features of the window computed from what landed.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from crypto_assets.derivatives import derivatives_data
from crypto_assets.features.asset import ml_features_materialized
from crypto_assets.prices import price_data_real
from resources.config.universe import load_universe
from resources.retry_policy import reset_circuit_breakers
from resources.sources.derivatives import fetch_live_derivatives
from resources.sources.derivatives_sources import DerivativesSourceResource
from resources.sources.exchange import exchange_venues
from resources.sources.price_sources import PriceSourceResource
from resources.sources.simulated import has_simulated_perpetual
from resources.storage.dagster_resources import WarehouseResource
from resources.storage.schema import DERIVATIVES, FEATURES
from resources.storage.warehouse import Warehouse, utc_now
from resources.storage.windows import window_floor
from testkit.fakes.derivatives_servers import FakeBinanceUsdm, FakeBybit
from testkit.fakes.price_servers import BINANCE_GEO_BLOCK

PERPETUALS = {c.symbol for c in load_universe() if has_simulated_perpetual(c)}


@pytest.fixture(autouse=True)
def _fresh_breakers():
    reset_circuit_breakers()
    yield
    reset_circuit_breakers()


def _source(binance: FakeBinanceUsdm, bybit: FakeBybit) -> DerivativesSourceResource:
    return DerivativesSourceResource(
        mode="live",
        exchanges="binanceusdm,bybit",
        exchange_urls={"binanceusdm": binance.url, "bybit": bybit.url},
        exchange_rate_limit_ms=1,
        max_attempts=2,
        backoff_base_s=0.01,
    )


def test_the_live_window_lands_but_the_refused_pair_and_its_features_follow(sqlite_url):
    window = window_floor(utc_now()) - timedelta(minutes=5)
    key = window.strftime("%Y-%m-%d-%H:%M")
    with FakeBinanceUsdm() as binance, FakeBybit() as bybit:
        binance.refuse = 451
        bybit.delisted = {"ETH"}
        result = dg.materialize(
            [price_data_real, derivatives_data, ml_features_materialized],
            partition_key=key,
            resources={
                "warehouse": WarehouseResource(db_url=sqlite_url),
                "price_source": PriceSourceResource(mode="simulated"),
                "derivatives_source": _source(binance, bybit),
            },
            instance=dg.DagsterInstance.ephemeral(),
        )
    assert result.success
    meta = result.asset_materializations_for_node("derivatives_data")[0].metadata
    # Binance's refusal reaches the metadata whole; Bybit's words name the one pair it refused.
    assert BINANCE_GEO_BLOCK["msg"] in meta["exchanges"].data["binanceusdm"]["detail"]
    assert meta["symbols_missing"].data == ["ETH"]
    assert "symbol invalid" in meta["missing_reasons"].data["ETH"]

    wh = Warehouse(sqlite_url)
    rows = wh.read_frame(sa.select(DERIVATIVES.table)).set_index("symbol")
    assert set(rows.index) == PERPETUALS - {"ETH"}
    assert (rows["exchange"] == "bybit").all() and (rows["window_start"] == window).all()
    assert rows["next_funding_rate"].notna().all()  # the live window holds the predicted rate
    assert (rows["funding_time"] < window + timedelta(minutes=5)).all()
    assert (rows["open_interest_at"] <= window + timedelta(minutes=5)).all()

    features = wh.read_frame(sa.select(FEATURES.table)).set_index("symbol")
    assert features.loc["BTC", "funding_rate"] == pytest.approx(rows.loc["BTC", "funding_rate"])
    assert features.loc["BTC", "premium"] == pytest.approx(rows.loc["BTC", "premium"])
    assert pd.isna(features.loc["ETH", "funding_rate"]) and pd.isna(features.loc["USDT", "funding_rate"])
    assert pd.notna(features.loc["ETH", "price"])  # the coin's row is there, its price features with it


def test_every_exchange_refusing_leaves_every_coin_missing_and_the_run_goes_on() -> None:
    coins = load_universe()[:6]
    now = window_floor(utc_now())
    with FakeBinanceUsdm() as binance, FakeBybit() as bybit:
        binance.refuse, bybit.refuse = 451, 403
        venues = exchange_venues(
            ["binanceusdm", "bybit"],
            {"binanceusdm": binance.url, "bybit": bybit.url},
            market_type="swap",
            rate_limit_ms=1,
            max_attempts=2,
            backoff_base_s=0.01,
        )
        fetch = fetch_live_derivatives(coins, now - timedelta(minutes=5), now, venues=venues, now=now)
    assert fetch.frame.empty
    assert set(fetch.missing_reasons) == {c.symbol for c in coins}
    assert BINANCE_GEO_BLOCK["msg"] in fetch.exchanges["binanceusdm"]["detail"]
    assert fetch.exchanges["bybit"]["refused"] and fetch.exchanges["binanceusdm"]["refused"]
