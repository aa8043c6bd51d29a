"""No live run waits on a source past its window: the deadline through Dagster and every source resource."""

import time
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest

from crypto_assets.partitions import PARTITION_KEY_FORMAT
from crypto_assets.prices import price_data_real
from resources.config.settings import load_settings
from resources.retry_policy import DeadlineExceeded, utc_timestamp
from resources.sources.exchange import Venue
from resources.sources.macro_sources import fetch_macro
from resources.sources.news_sources import NewsSourcesResource
from resources.sources.price_sources import PriceSourceResource
from resources.storage.dagster_resources import WarehouseResource
from resources.storage.warehouse import Warehouse
from testkit.fakes.fake_fred import API_KEY, FakeMacroServer
from testkit.fakes.fake_news_servers import FakeNewsServer, FeedSpec, feed_entry
from testkit.fakes.price_servers import FakeBinance, FakeCoinGecko

# A run's deadline that has passed: for the clients that take a clock, a second before their clock's "now".
PASSED_DEADLINE = datetime(2026, 11, 20, 12, 10)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _just_closed() -> tuple[str, datetime]:
    now = _now()
    start = now.replace(second=0, microsecond=0, minute=now.minute - now.minute % 5) - timedelta(minutes=5)
    return start.strftime(PARTITION_KEY_FORMAT), start


def _price_run(url: str, cg: FakeCoinGecko, ex: FakeBinance, key: str) -> dg.ExecuteInProcessResult:
    # The shipped retry settings (5 attempts, Retry-After honoured up to 180 s).
    source = PriceSourceResource.from_settings(  # CRYPTO_LIVE_RUN_DEADLINE_S as the definitions hand it on
        load_settings(),
        mode="live",
        coingecko_base_url=cg.url,
        exchanges="binance",
        exchange_urls={"binance": ex.url},
        coingecko_calls_per_minute=100_000,
    )
    return dg.materialize(
        [price_data_real],
        partition_key=key,
        raise_on_error=False,
        instance=dg.DagsterInstance.ephemeral(),
        resources={"warehouse": WarehouseResource(db_url=url), "price_source": source},
    )


def test_a_live_window_fails_at_once_on_a_persistent_429_rather_than_wait_past_its_deadline(sqlite_url, monkeypatch):
    """CoinGecko answers 429 with Retry-After 119 to everything. Without a deadline the run would
    wait 476 s; with the live deadline already near, it fails at once, unretried, nothing written."""
    monkeypatch.setenv("CRYPTO_LIVE_RUN_DEADLINE_S", "1")
    key, _ = _just_closed()
    with FakeCoinGecko() as cg, FakeBinance() as ex:
        cg.faults.extend(["429-long"] * 20)
        began = time.monotonic()
        result = _price_run(sqlite_url, cg, ex, key)
        took = time.monotonic() - began
        assert not result.success
        assert len(cg.requests) == 1, "not retried"
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "would wait 119 s past the run's deadline" in failure.message
    assert "gap healing re-runs the window" in failure.message
    assert took < 60, f"the run took {took:.0f} s"
    assert Warehouse(sqlite_url).committed_windows("price_data_real").empty


def test_a_backfill_of_older_windows_has_no_deadline(sqlite_url, monkeypatch):
    """The same tight setting does not touch a run over older windows: transient faults are retried."""
    monkeypatch.setenv("CRYPTO_LIVE_RUN_DEADLINE_S", "1")
    with FakeCoinGecko() as cg, FakeBinance() as ex:
        ex.faults.extend(["500", "429"])
        result = _price_run(sqlite_url, cg, ex, "2026-11-20-12:00")
        assert result.success
    assert len(Warehouse(sqlite_url).committed_windows("price_data_real")) == 1


def test_the_exchanges_retry_loop_keeps_the_deadline_too():
    with FakeBinance() as ex:
        ex.faults.extend(["500"])
        venue = Venue(
            "binance",
            base_url=ex.url,
            deadline=PASSED_DEADLINE,
            backoff_base_s=0.0,
            clock=lambda: utc_timestamp(PASSED_DEADLINE) + 1,
        )
        try:
            with pytest.raises(DeadlineExceeded, match="exchange:binance: load_markets: .*past the run's deadline"):
                venue.load_markets()
            assert len(ex.requests) == 1
        finally:
            venue.close()


def test_news_feeds_past_the_deadline_fail_alone():
    with FakeNewsServer() as server:
        at = datetime(2026, 11, 20, 12, 1)
        server.feeds["slow"] = FeedSpec(entries=[feed_entry(at, "Bitcoin up", "https://a.example/1")])
        server.feeds["fine"] = FeedSpec(entries=[feed_entry(at, "Ether up", "https://b.example/1")])
        server.fail("rss:slow", "429")
        news = NewsSourcesResource(
            mode="live",
            rss_feeds=[server.feed_url("slow"), server.feed_url("fine")],
            guardian_api_key="",
            reddit_client_id="",
            backoff_base_s=0.0,
        )
        collection = news.collect(at, at + timedelta(minutes=5), deadline=PASSED_DEADLINE)
    slow, fine = [o for o in collection.outcomes if o.source == "rss"]
    assert slow.status == "failed" and "past the run's deadline" in slow.error
    assert fine.status == "ok" and [i.title for i in fine.items] == ["Ether up"]


def test_macro_series_past_the_deadline_fail_with_the_deadline_message(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYPTO_HOME", str(tmp_path))
    monkeypatch.setenv("CRYPTO_SOURCE", "live")
    monkeypatch.setenv("FRED_API_KEY", API_KEY)
    day = date(2026, 1, 5)
    with FakeMacroServer() as server:
        server.add_fred("DFF", day, "4.33", day + timedelta(days=1))
        server.fail("fred", "503")
        got = fetch_macro(
            load_settings(),
            day,
            day + timedelta(days=1),
            fred_series=["DFF"],
            yahoo_tickers=[],
            fred_base_url=server.url,
            deadline=PASSED_DEADLINE,
        )
        assert got.fred_down and "past the run's deadline" in got.warnings[0]
        got = fetch_macro(
            load_settings(),
            day,
            day + timedelta(days=1),
            fred_series=["DFF"],
            yahoo_tickers=[],
            fred_base_url=server.url,
        )
        assert got.frame["value"].tolist() == [4.33]
