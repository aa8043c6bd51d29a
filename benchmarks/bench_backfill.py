"""One day of windows (288 x 124 symbols) as one run, against one run per window.

Both materialize ``price_data_real`` through Dagster (in process, a real on-disk instance) into
MariaDB. The per-window cost is the median of ``--sample`` single-window runs, multiplied by 288.
Creates and drops the database ``crypto_bench_backfill``.

    .venv/bin/python benchmarks/bench_backfill.py [--sample 24]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from datetime import datetime, timedelta

import dagster as dg
import pymysql
import sqlalchemy as sa

from crypto_assets.partitions import PARTITION_KEY_FORMAT
from crypto_assets.prices import price_data_real
from resources.dagster_resources import WarehouseResource
from resources.price_sources import PriceSourceResource
from resources.warehouse import dispose_warehouse, get_warehouse, price_data_real as price_table

SERVER = os.environ.get("CRYPTO_BENCH_MYSQL", "mysql+pymysql://root@127.0.0.1:3306")
DATABASE = "crypto_bench_backfill"
DAY = datetime(2026, 11, 1)


def _admin(sql: str) -> None:
    url = sa.engine.make_url(SERVER)
    conn = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username, password=url.password or "",
                           autocommit=True)
    with conn.cursor() as cursor:
        cursor.execute(sql)
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=24, help="single-window runs to time")
    args = parser.parse_args()
    logging.getLogger("dagster").setLevel(logging.WARNING)
    _admin(f"DROP DATABASE IF EXISTS {DATABASE}")
    _admin(f"CREATE DATABASE {DATABASE}")
    url = f"{SERVER}/{DATABASE}"
    resources = {"warehouse": WarehouseResource(db_url=url), "price_source": PriceSourceResource(mode="simulated")}
    try:
        with tempfile.TemporaryDirectory() as home, dg.instance_for_test(temp_dir=home) as instance:
            began = time.perf_counter()
            result = dg.materialize([price_data_real], resources=resources, instance=instance, tags={
                "dagster/asset_partition_range_start": DAY.strftime(PARTITION_KEY_FORMAT),
                "dagster/asset_partition_range_end": (DAY + timedelta(minutes=5 * 287)).strftime(PARTITION_KEY_FORMAT),
            })
            one_run = time.perf_counter() - began
            assert result.success
            per_window = []
            for i in range(args.sample):
                key = (DAY + timedelta(days=1, minutes=5 * i)).strftime(PARTITION_KEY_FORMAT)
                began = time.perf_counter()
                assert dg.materialize([price_data_real], resources=resources, instance=instance,
                                      partition_key=key).success
                per_window.append(time.perf_counter() - began)
        with get_warehouse(url).engine.connect() as conn:
            rows = conn.execute(sa.select(sa.func.count()).select_from(price_table)).scalar_one()
        assert rows == 124 * (288 + args.sample)
        window_cost = statistics.median(per_window)
        print("one day = 288 windows x 124 symbols = 35,712 rows into MariaDB, through dagster.materialize")
        print(f"one run for the day:        {one_run:6.2f} s")
        print(f"one run per window:         {window_cost:6.3f} s a window (median of {args.sample}) "
              f"-> {window_cost * 288:6.1f} s for the day")
        print(f"ratio per-window runs / one run: {window_cost * 288 / one_run:.1f}x")
    finally:
        dispose_warehouse(url)
        _admin(f"DROP DATABASE IF EXISTS {DATABASE}")


if __name__ == "__main__":
    main()
