"""Live prices from several exchanges through ccxt, against fake Binance, OKX, Coinbase Exchange and
Kraken servers.

Refusals (451 with the exchange's reason, a CDN's 403 page) and the fallback to the next exchange,
one pair's error failing that coin alone, daily and hourly bars served for a 5-minute request, the
still-open bar, stale CoinGecko snapshots, and the market fields of live and backfilled windows.
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from crypto_assets.checks import build_table_checks
from crypto_assets.prices import price_data_real
from resources.sources.coingecko import MARKET_FIELDS
from resources.sources.price_sources import PriceSourceResource
from resources.storage.dagster_resources import WarehouseResource
from resources.storage.schema import price_data_real as price_table
from resources.storage.warehouse import Warehouse
from testkit.fakes.coinbase_kraken import FakeCoinbaseExchange, FakeKraken
from testkit.fakes.price_servers import (
    BINANCE_GEO_BLOCK,
    FakeBinance,
    FakeCoinGecko,
    FakeExchangeServer,
    FakeOkx,
    default_listing,
)

DAY_START = datetime(2026, 11, 20)
FIELDS = [*MARKET_FIELDS, "market_data_age_s"]


def _universe(tmp_path: Path, rows: int) -> str:
    text = Path("resources/config/data/universe.csv").read_text().splitlines()
    path = tmp_path / "universe.csv"
    path.write_text("\n".join(text[: rows + 1]) + "\n")
    return str(path)


def _source(cg: FakeCoinGecko, *exchanges: FakeExchangeServer, universe: str = "") -> PriceSourceResource:
    urls = {e.exchange_id: e.url for e in exchanges}
    return PriceSourceResource(
        mode="live",
        coingecko_base_url=cg.url,
        exchanges=",".join(urls),
        exchange_urls=urls,
        universe_file=universe,
        coingecko_calls_per_minute=100_000,
        backoff_base_s=0.01,
        timeout_s=3.0,
        max_attempts=3,
        exchange_rate_limit_ms=5,
    )


def _backfill_day(
    url: str, source: PriceSourceResource, start: datetime = DAY_START, windows: int = 288
) -> dg.ExecuteInProcessResult:
    end = start + (windows - 1) * timedelta(minutes=5)
    return dg.materialize(
        [price_data_real],
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        resources={"warehouse": WarehouseResource(db_url=url), "price_source": source},
        tags={
            "dagster/asset_partition_range_start": start.strftime("%Y-%m-%d-%H:%M"),
            "dagster/asset_partition_range_end": end.strftime("%Y-%m-%d-%H:%M"),
        },
    )


def _metadata(result: dg.ExecuteInProcessResult) -> dict:
    return result.asset_materializations_for_node("price_data_real")[0].metadata


def _frame(url: str) -> pd.DataFrame:
    return Warehouse(url).read_frame(sa.select(price_table))


def _error(result: dg.ExecuteInProcessResult) -> str:
    return str(next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data.error)


def test_with_the_first_exchange_geo_blocked_a_day_backfill_lands_every_coin_the_next_lists(sqlite_url):
    okx_listing = {s: q for s, q in default_listing().items() if s not in ("LINK", "UNI")} | {"KAS": "USDT"}
    with FakeCoinGecko() as cg, FakeBinance() as binance, FakeOkx(listed=okx_listing) as okx:
        binance.refuse = 451
        result = _backfill_day(sqlite_url, _source(cg, binance, okx))
        assert result.success, _error(result)
        assert len(binance.requests) == 1  # refused once, then skipped for the run
    frame = _frame(sqlite_url)
    assert sorted(frame.symbol.unique()) == sorted(okx_listing)
    assert (frame.groupby("symbol").size() == 288).all()
    assert set(frame.source) == {"okx+coingecko_history"} and set(frame.quote) == {"USDT"}
    assert frame[FIELDS].notna().all().all()
    meta = _metadata(result)
    exchanges = meta["exchanges"].data
    assert exchanges["per_exchange"]["binance"]["state"] == "refused"
    assert "HTTP 451" in exchanges["per_exchange"]["binance"]["detail"]
    assert BINANCE_GEO_BLOCK["msg"] in exchanges["per_exchange"]["binance"]["detail"]  # the exchange's words, whole
    assert exchanges["served_by"] == {"okx": len(okx_listing)}
    assert {"LINK", "UNI"} <= set(meta["symbols_missing"].data)
    assert meta["market_fields_complete_share"].value == 1.0


def test_a_cdn_block_page_skips_the_exchange_too(sqlite_url, tmp_path):
    universe = _universe(tmp_path, 6)
    with FakeCoinGecko() as cg, FakeBinance() as binance, FakeOkx() as okx:
        binance.refuse = 403
        result = _backfill_day(sqlite_url, _source(cg, binance, okx, universe=universe))
    assert result.success, _error(result)
    assert set(_frame(sqlite_url).source) == {"okx+coingecko_history"}
    assert "HTTP 403" in _metadata(result)["exchanges"].data["per_exchange"]["binance"]["detail"]


@pytest.mark.parametrize("fake", [FakeBinance, FakeOkx])
def test_daily_bars_served_for_a_5_minute_request_are_rejected(sqlite_url, tmp_path, fake):
    universe = _universe(tmp_path, 5)
    with FakeCoinGecko() as cg, fake() as bad:
        bad.interval_override = "1d"
        result = _backfill_day(sqlite_url, _source(cg, bad, universe=universe))
    assert result.success, _error(result)
    assert len(_frame(sqlite_url)) == 0  # a clean skip: nothing of the daily bars is stored
    meta = _metadata(result)
    rejected = meta["exchanges"].data["rejected_bars"]
    assert sorted(rejected) == ["BNB", "BTC", "ETH", "XRP"]  # USDT has no pair anywhere
    assert "not 5-minute bars" in rejected["BTC"] or "not 5 minutes" in rejected["BTC"]
    assert sorted(meta["symbols_missing"].data) == ["BNB", "BTC", "ETH", "USDT", "XRP"]


def test_coins_whose_bars_are_rejected_fall_to_the_next_exchange(sqlite_url, tmp_path):
    universe = _universe(tmp_path, 5)
    with FakeCoinGecko() as cg, FakeBinance() as binance, FakeOkx() as okx:
        binance.interval_override = "1d"
        result = _backfill_day(sqlite_url, _source(cg, binance, okx, universe=universe))
    assert result.success, _error(result)
    frame = _frame(sqlite_url)
    assert len(frame) == 4 * 288 and set(frame.source) == {"okx+coingecko_history"}


def test_a_single_daily_bar_at_midnight_is_caught_by_binances_close_time(tmp_path):
    from resources.config.universe import load_universe
    from resources.sources.exchange import ExchangeRouter, Venue

    coins = load_universe()[:1]
    with FakeBinance() as binance:
        binance.interval_override = "1d"
        with ExchangeRouter([Venue("binance", base_url=binance.url)]) as router:
            bars = router.bars_frame(coins, DAY_START, DAY_START + timedelta(minutes=5), datetime(2026, 11, 21))
    assert bars.frame.empty and "a 1440-minute bar" in bars.rejected["BTC"]


def test_the_still_open_bar_is_never_stored(sqlite_url, tmp_path):
    now = datetime.now(UTC).replace(tzinfo=None)
    current = now.replace(second=0, microsecond=0, minute=now.minute - now.minute % 5)
    universe = _universe(tmp_path, 3)
    with FakeCoinGecko() as cg, FakeBinance() as binance, FakeOkx() as okx:
        binance.now = okx.now = now  # both serve the bar that holds "now", still open
        source = _source(cg, binance, okx, universe=universe)
        fetched = source.fetch(
            current - timedelta(minutes=15), current + timedelta(minutes=5), now=now, warehouse=Warehouse(sqlite_url)
        )
        assert any(r["path"] == "/api/v3/klines" for r in binance.requests)
    bars = fetched.frame.dropna(subset=["close"])
    assert bars.window_start.max() == pd.Timestamp(current - timedelta(minutes=5))
    assert len(bars) == 2 * 3  # BTC, ETH: three closed windows each; USDT has no pair


def test_a_stale_snapshot_is_not_used_as_the_windows_price_and_is_counted(sqlite_url, tmp_path):
    now = datetime.now(UTC).replace(tzinfo=None)
    start = now.replace(second=0, microsecond=0, minute=now.minute - now.minute % 5) - timedelta(minutes=5)
    universe = _universe(tmp_path, 4)
    with FakeCoinGecko() as cg, FakeBinance() as binance:
        cg.stale = {"bitcoin": timedelta(minutes=20), "tether": timedelta(minutes=30)}
        result = dg.materialize(
            [price_data_real, *build_table_checks([price_data_real])],
            partition_key=start.strftime("%Y-%m-%d-%H:%M"),
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
            resources={
                "warehouse": WarehouseResource(db_url=sqlite_url),
                "price_source": _source(cg, binance, universe=universe),
            },
        )
    assert result.success, _error(result)
    frame = _frame(sqlite_url).set_index("symbol")
    # BTC keeps its bar (price = close) without the stale market fields; USDT had only the snapshot.
    assert sorted(frame.index) == ["BTC", "ETH", "XRP"]
    assert frame.loc["BTC", FIELDS].isna().all() and frame.loc["BTC"].source == "binance"
    assert frame.loc["BTC"].current_price == frame.loc["BTC"].close
    assert frame.loc["ETH", FIELDS].notna().all() and frame.loc["ETH"].source == "binance+coingecko"
    meta = _metadata(result)
    assert meta["stale_snapshots"].data == ["BTC", "USDT"] and meta["stale_snapshot_count"].value == 2
    assert "USDT" in meta["symbols_missing"].data
    check = {e.check_name: e for e in result.get_asset_check_evaluations()}["market_data_freshness"]
    assert not check.passed and check.metadata["stale_snapshots_left_out"].value == 2
    assert check.metadata["bar_rows_without_market_fields"].value == 1


def test_a_live_window_and_the_same_window_backfilled_carry_the_same_market_fields(tmp_path):
    now = datetime.now(UTC).replace(tzinfo=None)
    window = now.replace(second=0, microsecond=0, minute=now.minute - now.minute % 5) - timedelta(minutes=30)
    universe = _universe(tmp_path, 8)
    live_wh, backfill_wh = Warehouse(f"sqlite:///{tmp_path}/live.sqlite"), Warehouse(f"sqlite:///{tmp_path}/bf.sqlite")
    with FakeCoinGecko() as cg, FakeBinance() as binance:
        source = _source(cg, binance, universe=universe)
        cg.now = window + timedelta(minutes=6)  # the schedule's tick, a minute after the window closed
        live = source.fetch(window, window + timedelta(minutes=5), now=cg.now, warehouse=live_wh).frame
        cg.now = None
        backfilled = source.fetch(window, window + timedelta(minutes=5), now=now, warehouse=backfill_wh).frame
    with_bars = lambda f: f.dropna(subset=["close"]).set_index("symbol")  # noqa: E731
    live, backfilled = with_bars(live), with_bars(backfilled)
    assert sorted(live.index) == sorted(backfilled.index) and len(live) == 7
    assert live[FIELDS].notna().all().all() and backfilled[FIELDS].notna().all().all()
    assert set(live.source) == {"binance+coingecko"} and set(backfilled.source) == {"binance+coingecko_history"}
    assert (backfilled.market_data_age_s >= 0).all()  # never an observation after the window's end
    assert (live.close == backfilled.close).all()


def test_an_exchange_pair_override_picks_that_pair(sqlite_url, tmp_path):
    path = tmp_path / "universe.csv"
    path.write_text("symbol,coin_id,name,exchange_pair\nBTC,bitcoin,Bitcoin,BTC/USDC\nETH,ethereum,Ether,\n")
    with FakeCoinGecko() as cg, FakeOkx(listed={"BTC": "USDT", "ETH": "USDT"}) as okx:
        okx.extra_pairs.add(("BTC", "USDC"))  # without the override, USDT (preferred to USDC) would serve
        result = _backfill_day(sqlite_url, _source(cg, okx, universe=str(path)))
    assert result.success, _error(result)
    quotes = _frame(sqlite_url).groupby("symbol").quote.first().to_dict()
    assert quotes == {"BTC": "USDC", "ETH": "USDT"}


def test_every_exchange_unavailable_fails_the_run_and_writes_nothing(sqlite_url, tmp_path):
    universe = _universe(tmp_path, 3)
    with FakeCoinGecko() as cg, FakeBinance() as binance, FakeOkx() as okx:
        binance.faults.extend(["500"] * 3)
        okx.refuse = 451
        result = _backfill_day(sqlite_url, _source(cg, binance, okx, universe=universe))
    assert not result.success
    message = _error(result)
    assert "no configured exchange could be reached" in message and "okx refused" in message
    assert BINANCE_GEO_BLOCK["msg"] in message  # the reason the exchange gave, whole
    assert "binance unavailable" in message
    assert len(_frame(sqlite_url)) == 0 and Warehouse(sqlite_url).committed_windows("price_data_real").empty


def test_an_exchange_failing_mid_run_hands_its_coins_to_the_next(sqlite_url, tmp_path):
    universe = _universe(tmp_path, 4)
    with FakeCoinGecko() as cg, FakeBinance() as binance, FakeOkx() as okx:
        binance.faults.extend([None] + ["timeout"] * 3)  # markets load, then the first klines call times out
        binance.timeout_sleep_s = 4.0
        result = _backfill_day(sqlite_url, _source(cg, binance, okx, universe=universe))
    assert result.success, _error(result)
    frame = _frame(sqlite_url)
    assert len(frame) == 3 * 288 and set(frame.source) == {"okx+coingecko_history"}
    assert _metadata(result)["exchanges"].data["per_exchange"]["binance"]["state"] == "unavailable"


def test_a_truncated_exchange_answer_is_retried(sqlite_url, tmp_path):
    universe = _universe(tmp_path, 2)
    with FakeCoinGecko() as cg, FakeBinance() as binance:
        binance.faults.extend([None, "truncated", "html"])
        result = _backfill_day(sqlite_url, _source(cg, binance, universe=universe))
    assert result.success, _error(result)
    assert len(_frame(sqlite_url)) == 2 * 288
    assert _metadata(result)["exchanges"].data["per_exchange"]["binance"]["retries"] == 2


def test_exchange_routing_tells_which_exchange_serves_each_coin_without_fetching_bars():
    from resources.config.settings import load_settings
    from resources.config.universe import load_universe
    from resources.sources.exchange import exchange_routing

    with (
        FakeBinance(listed={"BTC": "USDT", "ETH": "USDT"}) as binance,
        FakeOkx(listed={"BTC": "USDT", "KAS": "USDT"}) as okx,
    ):
        settings = load_settings(
            {"CRYPTO_EXCHANGES": "binance,okx", "CRYPTO_EXCHANGE_URLS": f"binance={binance.url},okx={okx.url}"}
        )
        routing = exchange_routing(settings, load_universe(), max_attempts=1)
        binance.refuse = 451
        refused = exchange_routing(settings, load_universe(), max_attempts=1)
        assert not any("klines" in r["path"] or "candles" in r["path"] for r in binance.requests + okx.requests)
    assert {s: r.exchange for s, r in routing.serving().items()} == {"BTC": "binance", "ETH": "binance", "KAS": "okx"}
    assert [r.exchange for r in routing.routes["BTC"]] == ["binance", "okx"]  # the fallback order
    assert {s: r.exchange for s, r in refused.serving().items()} == {"BTC": "okx", "KAS": "okx"}
    assert refused.exchanges["binance"]["state"] == "refused" and "ETH" in refused.unlisted


def test_one_pairs_invalid_symbol_answer_fails_that_coin_alone(sqlite_url, tmp_path):
    universe = _universe(tmp_path, 5)  # BTC, ETH, USDT (no pair anywhere), BNB, XRP
    with FakeCoinGecko() as cg, FakeBinance() as binance, FakeOkx(listed={"ETH": "USDT"}) as okx:
        binance.delisted = {"ETH", "XRP"}  # listed in exchangeInfo, klines answer 400 -1121 "Invalid symbol."
        result = _backfill_day(sqlite_url, _source(cg, binance, okx, universe=universe))
    assert result.success, _error(result)
    frame = _frame(sqlite_url)
    assert frame.groupby("symbol").size().to_dict() == {"BNB": 288, "BTC": 288, "ETH": 288}
    assert set(frame[frame.symbol == "ETH"].source) == {"okx+coingecko_history"}  # the next exchange took it
    meta = _metadata(result)
    assert meta["symbols_missing"].data == ["USDT", "XRP"]
    assert meta["missing_reasons"].data["XRP"] == "binance: BadSymbol: Invalid symbol."
    assert meta["exchanges"].data["failed_pairs"] == {
        "ETH": "binance: BadSymbol: Invalid symbol.",
        "XRP": "binance: BadSymbol: Invalid symbol.",
    }
    assert meta["exchanges"].data["per_exchange"]["binance"]["state"] == "ok"


def test_hourly_bars_in_a_short_range_are_rejected_on_an_exchange_without_close_times(sqlite_url, tmp_path):
    universe = _universe(tmp_path, 3)
    with FakeCoinGecko() as cg, FakeOkx() as okx:
        okx.interval_override = "1h"  # 12:00 and 13:00 in a 13-window range: both within its reach
        result = _backfill_day(sqlite_url, _source(cg, okx, universe=universe), DAY_START + timedelta(hours=12), 13)
    assert result.success, _error(result)
    assert len(_frame(sqlite_url)) == 0
    meta = _metadata(result)
    rejected = meta["exchanges"].data["rejected_bars"]
    assert sorted(rejected) == ["BTC", "ETH"] and "hourly or coarser bars" in rejected["BTC"]
    assert "hourly or coarser bars" in meta["missing_reasons"].data["ETH"]


@pytest.mark.parametrize("fake", [FakeCoinbaseExchange, FakeKraken])
def test_coinbase_and_kraken_bars_land_and_an_unknown_pair_fails_that_coin_alone(sqlite_url, tmp_path, fake):
    universe = _universe(tmp_path, 6)  # BTC, ETH, USDT, BNB, XRP, SOL
    start = datetime.now(UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0) - timedelta(hours=4)
    with FakeCoinGecko() as cg, fake(listed={"BTC": "USD", "ETH": "USD", "XRP": "USDT", "SOL": "USD"}) as venue:
        venue.delisted = {"SOL"}
        result = _backfill_day(sqlite_url, _source(cg, venue, universe=universe), start, 36)  # Kraken: 2.5 days
    assert result.success, _error(result)
    frame = _frame(sqlite_url)
    assert frame.groupby("symbol").size().to_dict() == {"BTC": 36, "ETH": 36, "XRP": 36}
    assert set(frame.source) == {f"{venue.exchange_id}+coingecko_history"}
    assert dict(frame.groupby("symbol").quote.first()) == {"BTC": "USD", "ETH": "USD", "XRP": "USDT"}
    assert frame.window_start.min() == pd.Timestamp(start)
    reason = _metadata(result)["missing_reasons"].data["SOL"]
    assert reason.startswith(f"{venue.exchange_id}: ") and ("NotFound" in reason or "Unknown asset pair" in reason)
