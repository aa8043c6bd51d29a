"""``price_data_real`` materialized through Dagster: offline, live against fake servers, and via the CLI."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from crypto_assets.partitions import PARTITION_KEY_FORMAT
from crypto_assets.prices import price_data_real
from resources.sources.price_sources import PriceSourceResource
from resources.storage.dagster_resources import WarehouseResource
from resources.storage.schema import price_data_real as price_table
from resources.storage.warehouse import Warehouse
from testkit.fakes.price_servers import FakeBinance, FakeCoinGecko, FakeOkx

KEY = "2026-11-20-12:00"


def _materialize(url: str, source: PriceSourceResource | None = None, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [price_data_real],
        resources={"warehouse": WarehouseResource(db_url=url), "price_source": source or PriceSourceResource()},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        **kwargs,
    )


def _rows(url: str, start: datetime | None = None) -> list[tuple]:
    stmt = sa.select(price_table.c.symbol, price_table.c.window_start, price_table.c.close, price_table.c.source)
    if start is not None:
        stmt = stmt.where(price_table.c.window_start == start)
    with Warehouse(url).engine.connect() as conn:
        return conn.execute(stmt.order_by(price_table.c.symbol, price_table.c.window_start)).all()


def _metadata(result: dg.ExecuteInProcessResult) -> dict:
    return result.asset_materializations_for_node("price_data_real")[0].metadata


def test_one_window_twice_leaves_one_row_per_symbol(db_url):
    first = _materialize(db_url, partition_key=KEY)
    assert first.success
    rows = _rows(db_url)
    assert len(rows) == 124 and {r.source for r in rows} == {"simulated"}
    assert _materialize(db_url, partition_key=KEY).success
    assert _rows(db_url) == rows
    meta = _metadata(first)
    assert meta["dagster/row_count"].value == 124 and meta["symbols_missing"].data == []
    assert [c.name for c in meta["dagster/column_schema"].schema.columns][:2] == ["symbol", "window_start"]


def test_a_backfill_range_is_one_run_that_fills_every_window(db_url):
    result = _materialize(
        db_url,
        tags={
            "dagster/asset_partition_range_start": "2026-11-20-00:00",
            "dagster/asset_partition_range_end": "2026-11-20-02:55",
        },
    )
    assert result.success
    assert len(_rows(db_url)) == 124 * 36
    committed = Warehouse(db_url).committed_windows("price_data_real")
    assert len(committed) == 36 and set(committed.run_id) == {result.run_id}


def _live_key(now: datetime) -> tuple[str, datetime]:
    start = now.replace(second=0, microsecond=0, minute=now.minute - now.minute % 5) - timedelta(minutes=5)
    return start.strftime(PARTITION_KEY_FORMAT), start


def _live(cg: FakeCoinGecko, ex: FakeBinance, okx: FakeOkx | None = None) -> PriceSourceResource:
    urls = {"binance": ex.url, **({"okx": okx.url} if okx else {})}
    return PriceSourceResource(
        mode="live",
        coingecko_base_url=cg.url,
        exchanges=",".join(urls),
        exchange_urls=urls,
        coingecko_calls_per_minute=100_000,
        backoff_base_s=0.01,
        timeout_s=3.0,
        max_attempts=3,
    )


def test_live_window_merges_exchange_bars_and_the_coingecko_snapshot(sqlite_url):
    key, start = _live_key(datetime.now(UTC).replace(tzinfo=None))
    with FakeCoinGecko() as cg, FakeBinance() as ex, FakeOkx(listed={"SOL": "USDC", "BTC": "USDT"}) as okx:
        del ex.listed["SOL"]  # not on the first exchange: the second serves it, quoted in USDC
        cg.faults.extend(["429", "500"])
        result = _materialize(sqlite_url, _live(cg, ex, okx), partition_key=key)
        assert result.success, result.all_events
        assert cg.requests[-1]["query"]["per_page"] == "250"
        assert not any("market_chart" in r["path"] for r in cg.requests)  # the live window needs no history
    frame = Warehouse(sqlite_url).read_frame(sa.select(price_table)).set_index("symbol")
    assert len(frame) == 124
    btc = frame.loc["BTC"]
    assert btc.close > 0 and btc.market_cap > 0 and btc.volume > 0
    assert (btc.source, btc.quote) == ("binance+coingecko", "USDT")
    assert (frame.loc["SOL"].source, frame.loc["SOL"].quote) == ("okx+coingecko", "USDC")
    # USDT has a pair nowhere: its price comes from the snapshot alone, in USD.
    assert (frame.loc["USDT"].source, frame.loc["USDT"].quote) == ("coingecko", "USD")
    assert frame.loc["USDT"].current_price > 0 and frame.loc["USDT"].open != frame.loc["USDT"].open
    meta = _metadata(result)
    assert meta["exchanges"].data["served_by"] == {"binance": 115, "okx": 1}
    assert meta["exchanges"].data["unlisted"] == ["USDT", "DAI", "CRO", "KAS", "HNT", "XMR", "GNO", "OCEAN"]
    assert meta["market_fields_complete_share"].value == 1.0 and meta["stale_snapshot_count"].value == 0


def test_a_past_window_gets_its_market_fields_from_the_cached_history(db_url):
    with FakeCoinGecko() as cg, FakeBinance() as ex:
        result = _materialize(db_url, _live(cg, ex), partition_key=KEY)
        assert result.success
        assert not any(r["path"] == "/coins/markets" for r in cg.requests)  # no snapshot for a past window
        history_calls = [r for r in cg.requests if r["path"].endswith("/market_chart/range")]
        assert len({r["path"] for r in history_calls}) == 116 and history_calls[0]["query"]["vs_currency"] == "usd"
        again = _materialize(db_url, _live(cg, ex), partition_key="2026-11-20-12:05")
        assert again.success and len(cg.requests) == len(history_calls)  # the next window is already cached
    meta = _metadata(result)
    assert meta["source"].text == "live" and meta["sources"].data == {"binance+coingecko_history": 116}
    assert set(meta["symbols_missing"].data) == {"CRO", "DAI", "GNO", "HNT", "KAS", "OCEAN", "USDT", "XMR"}
    assert meta["dagster/row_count"].value == 124 - 8 and meta["market_fields_complete_share"].value == 1.0
    assert meta["market_history"].data["calls"] == 116 and meta["market_history"].data["coins_fetched"] == 116
    frame = Warehouse(db_url).read_frame(sa.select(price_table))
    # As of each window's end (12:05, 12:10): the hourly point observed at 11:59:23, never a later one.
    ages = frame.groupby("window_start").market_data_age_s.unique()
    assert [list(a) for a in ages] == [[337.0], [637.0]]


def _bad_snapshot(field, value):
    def mutate(elements):
        elements[0][field] = value
        return elements

    return mutate


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda cg, ex: cg.faults.extend(["500"] * 3), "coingecko: failed after 3 attempts"),
        (lambda cg, ex: cg.faults.extend(["truncated"] * 3), "malformed JSON"),
        (lambda cg, ex: cg.faults.extend(["html"] * 3), "HTTP 503"),
        (
            lambda cg, ex: setattr(
                cg, "mutate", lambda e: [{k: v for k, v in x.items() if k != "current_price"} for x in e]
            ),
            "missing field(s) current_price",
        ),
        (lambda cg, ex: setattr(cg, "mutate", _bad_snapshot("current_price", -5.0)), "negative current_price"),
        (lambda cg, ex: setattr(cg, "mutate", _bad_snapshot("market_cap", "lots")), "expected a number"),
        (lambda cg, ex: setattr(cg, "mutate", _bad_snapshot("last_updated", "yesterday")), "expected an ISO 8601 time"),
        (lambda cg, ex: setattr(cg, "mutate", lambda e: {"status": "ok"}), "expected a list"),
        (lambda cg, ex: setattr(ex, "mutate_bar", lambda p, b: b[:3]), "missing or non-numeric value"),
        (lambda cg, ex: setattr(ex, "mutate_bar", lambda p, b: [b[0], "-1", *b[2:]]), "non-positive price"),
        (lambda cg, ex: ex.faults.extend(["500"] * 3), "exchange:binance"),
    ],
)
def test_faults_fail_the_run_with_a_clear_message_and_leave_the_window_untouched(sqlite_url, setup, message):
    key, start = _live_key(datetime.now(UTC).replace(tzinfo=None))
    assert _materialize(sqlite_url, partition_key=key).success  # an earlier, good copy of the window
    before = _rows(sqlite_url, start)
    with FakeCoinGecko() as cg, FakeBinance() as ex:
        setup(cg, ex)
        result = _materialize(sqlite_url, _live(cg, ex), partition_key=key)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert message in str(failure.event_specific_data.error)
    assert _rows(sqlite_url, start) == before


def test_null_prices_and_unknown_ids_are_reported_not_written(sqlite_url):
    key, _ = _live_key(datetime.now(UTC).replace(tzinfo=None))

    def mutate(elements):
        for e in elements:
            if e["id"] == "tether":
                e["current_price"] = None
        return elements + [{**elements[1], "id": "not-a-coin-we-track"}]

    with FakeCoinGecko() as cg, FakeBinance() as ex:
        cg.mutate = mutate
        result = _materialize(sqlite_url, _live(cg, ex), partition_key=key)
    assert result.success
    meta = _metadata(result)
    assert "USDT" in meta["symbols_missing"].data
    assert meta["unknown_ids_ignored"].data == ["not-a-coin-we-track"]


def test_cli_materializes_into_mariadb_twice_and_from_two_processes_at_once(mysql_url, tmp_path):
    env = {
        **os.environ,
        "CRYPTO_DB_URL": mysql_url,
        "DAGSTER_HOME": str(tmp_path),
        "CRYPTO_PARTITION_START": "2026-11-01",
    }
    command = [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "-m",
        "crypto_assets.definitions",
        "--select",
        "price_data_real",
        "--partition",
        KEY,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(_rows(mysql_url)) == 124
    racing = [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for proc in racing:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-2000:]
    assert len(_rows(mysql_url)) == 124
