"""One day of windows (288 x 124 symbols) as one run, against one run per window.

Both materialize ``price_data_real`` through Dagster (in process, a real on-disk instance) into
MariaDB. The per-window cost is the median of ``--sample`` single-window runs, multiplied by 288.
Creates and drops the database ``crypto_bench_backfill``.

    .venv/bin/python benchmarks/bench_backfill.py [--sample 24]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.support import bench_database  # noqa: E402
from crypto_assets.partitions import PARTITION_KEY_FORMAT  # noqa: E402
from crypto_assets.prices import price_data_real  # noqa: E402
from resources.sources.price_sources import PriceSourceResource  # noqa: E402
from resources.storage.dagster_resources import WarehouseResource  # noqa: E402
from resources.storage.schema import price_data_real as price_table  # noqa: E402
from resources.storage.warehouse import dispose_warehouse, get_warehouse  # noqa: E402

DATABASE = "crypto_bench_backfill"
DAY = datetime(2026, 11, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=24, help="single-window runs to time")
    args = parser.parse_args()
    logging.getLogger("dagster").setLevel(logging.WARNING)
    with bench_database(DATABASE) as url:
        resources = {"warehouse": WarehouseResource(db_url=url), "price_source": PriceSourceResource(mode="simulated")}
        try:
            with tempfile.TemporaryDirectory() as home, dg.instance_for_test(temp_dir=home) as instance:
                last = DAY + timedelta(minutes=5 * 287)
                began = time.perf_counter()
                result = dg.materialize(
                    [price_data_real],
                    resources=resources,
                    instance=instance,
                    tags={
                        "dagster/asset_partition_range_start": DAY.strftime(PARTITION_KEY_FORMAT),
                        "dagster/asset_partition_range_end": last.strftime(PARTITION_KEY_FORMAT),
                    },
                )
                one_run = time.perf_counter() - began
                assert result.success
                per_window = []
                for i in range(args.sample):
                    key = (DAY + timedelta(days=1, minutes=5 * i)).strftime(PARTITION_KEY_FORMAT)
                    began = time.perf_counter()
                    assert dg.materialize(
                        [price_data_real], resources=resources, instance=instance, partition_key=key
                    ).success
                    per_window.append(time.perf_counter() - began)
            with get_warehouse(url).engine.connect() as conn:
                rows = conn.execute(sa.select(sa.func.count()).select_from(price_table)).scalar_one()
            assert rows == 124 * (288 + args.sample)
            window_cost = statistics.median(per_window)
            print("one day = 288 windows x 124 symbols = 35,712 rows into MariaDB, through dagster.materialize")
            print(f"one run for the day:        {one_run:6.2f} s")
            print(
                f"one run per window:         {window_cost:6.3f} s a window (median of {args.sample}) "
                f"-> {window_cost * 288:6.1f} s for the day"
            )
            print(f"ratio per-window runs / one run: {window_cost * 288 / one_run:.1f}x")
        finally:
            dispose_warehouse(url)


if __name__ == "__main__":
    main()
