"""A live-mode backfill of one day and of 30 days against the fakes, with several exchanges.

``CRYPTO_EXCHANGES=binance,okx`` with Binance geo-blocked (HTTP 451, as from a US cloud region):
every coin falls to OKX (fake ``/api/v5/market/candles``, through ccxt with its own rate limiter
at OKX's 110 ms unless ``--rate-limit-ms``); market fields from the fake CoinGecko's
``market_chart/range``, cached in the warehouse. Each day is one Dagster run (the backfill
policy's 288 windows a run), into a fresh SQLite warehouse. Prints, per backfill: the calls each
service received, wall time, rows, the share of (coin, window) rows with every market field, and
how long the CoinGecko calls take at a demo key's 30 calls a minute (the benchmark itself does
not wait for that limit: ``--coingecko-per-minute``).

    .venv/bin/python benchmarks/bench_live_backfill.py [--days 1 30] [--rate-limit-ms 0]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from crypto_assets.partitions import PARTITION_KEY_FORMAT  # noqa: E402
from crypto_assets.prices import price_data_real  # noqa: E402
from resources.retry_policy import reset_circuit_breakers  # noqa: E402
from resources.sources.coingecko import MARKET_FIELDS  # noqa: E402
from resources.sources.price_sources import PriceSourceResource  # noqa: E402
from resources.storage.dagster_resources import WarehouseResource  # noqa: E402
from resources.storage.schema import price_data_real as price_table  # noqa: E402
from resources.storage.warehouse import dispose_warehouse, get_warehouse  # noqa: E402
from testkit.fakes.price_servers import FakeBinance, FakeCoinGecko, FakeOkx  # noqa: E402

DEMO_CALLS_PER_MINUTE = 30


def _service(fake_name: str, path: str) -> str:
    if fake_name == "coingecko":
        return "coingecko " + ("market_chart/range" if path.endswith("/market_chart/range") else path)
    return f"{fake_name} {path}"


def backfill(days: int, rate_limit_ms: int, per_minute: int) -> dict:
    """Backfill the ``days`` before yesterday's midnight, one run a day; return the figures."""
    reset_circuit_breakers()
    today = datetime.now(UTC).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=days)
    with tempfile.TemporaryDirectory() as work, FakeCoinGecko() as cg, FakeBinance() as binance, FakeOkx() as okx:
        binance.refuse = 451
        url = f"sqlite:///{work}/bench.sqlite"
        source = PriceSourceResource(
            mode="live",
            coingecko_base_url=cg.url,
            exchanges="binance,okx",
            exchange_urls={"binance": binance.url, "okx": okx.url},
            coingecko_calls_per_minute=per_minute,
            exchange_rate_limit_ms=rate_limit_ms,
            timeout_s=10.0,
        )
        resources = {"warehouse": WarehouseResource(db_url=url), "price_source": source}
        began = time.perf_counter()
        with dg.instance_for_test(temp_dir=work) as instance:
            for day in range(days):
                start = first + timedelta(days=day)
                result = dg.materialize(
                    [price_data_real],
                    resources=resources,
                    instance=instance,
                    tags={
                        "dagster/asset_partition_range_start": start.strftime(PARTITION_KEY_FORMAT),
                        "dagster/asset_partition_range_end": (start + timedelta(minutes=5 * 287)).strftime(
                            PARTITION_KEY_FORMAT
                        ),
                    },
                )
                if not result.success:
                    raise SystemExit(f"backfill of {start:%Y-%m-%d} failed")
        seconds = time.perf_counter() - began
        calls = Counter()
        for name, fake in (("binance", binance), ("okx", okx), ("coingecko", cg)):
            calls.update(_service(name, r["path"]) for r in fake.requests)
        wh = get_warehouse(url)
        frame = wh.read_frame(sa.select(price_table.c.symbol, *(price_table.c[c] for c in MARKET_FIELDS)))
        dispose_warehouse(url)
    complete = frame[list(MARKET_FIELDS)].notna().all(axis=1)
    history_calls = calls["coingecko market_chart/range"]
    return {
        "days": days,
        "seconds": round(seconds, 1),
        "calls": dict(sorted(calls.items())),
        "rows": len(frame),
        "coins": int(frame["symbol"].nunique()),
        "coins_okx_lists": len(okx.listed),
        "market_fields_complete_share": round(float(complete.mean()), 4) if len(frame) else 0.0,
        "coingecko_minutes_at_demo_limit": round(history_calls / DEMO_CALLS_PER_MINUTE, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, nargs="+", default=[1, 30])
    parser.add_argument("--rate-limit-ms", type=int, default=0, help="ccxt limiter spacing (0: OKX's own 110 ms)")
    parser.add_argument(
        "--coingecko-per-minute",
        type=int,
        default=100_000,
        help="CoinGecko calls a minute the client allows itself (a demo key: 30)",
    )
    args = parser.parse_args()
    logging.getLogger("dagster").setLevel(logging.WARNING)
    logging.getLogger("resources.sources.exchange").setLevel(logging.ERROR)
    for days in args.days:
        figures = backfill(days, args.rate_limit_ms, args.coingecko_per_minute)
        print(
            f"{days}-day live backfill: {figures['seconds']} s, {figures['rows']} rows, {figures['coins']} coins "
            f"of the {figures['coins_okx_lists']} OKX lists, every market field in "
            f"{figures['market_fields_complete_share']:.2%} of rows"
        )
        for service, count in figures["calls"].items():
            print(f"  {count:6d} calls  {service}")
        print(
            f"  CoinGecko history at a demo key's {DEMO_CALLS_PER_MINUTE}/min: "
            f"{figures['coingecko_minutes_at_demo_limit']} min"
        )


if __name__ == "__main__":
    main()
