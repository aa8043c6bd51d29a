"""Write path into MariaDB: ``Warehouse.write_partition`` against ``LOAD DATA LOCAL INFILE``.

Both write the same rows (simulated prices, 124 symbols) into the same table in the same run;
LOAD DATA is the engine's bulk-load ceiling on this machine. Prints rows/s for each and the
ratio, and the client's share of the write path: building the TSV (``tsv_table``) and writing it.

``--lake``: the lake copy instead. For the live window and a day of features (124 symbols, every
catalogued column) committed by ``write_partition``, ``FeatureLake.sync``'s read-back of the committed
rows (then their conversion to the lake's schema) against converting the frame the features asset
already holds, and the Delta write both would share.

Needs MariaDB at 127.0.0.1:3306 (root, no password) or ``CRYPTO_BENCH_MYSQL``; creates and drops the
database ``crypto_bench_write``.

    .venv/bin/python benchmarks/bench_write_path.py [--days 3] [--repeat 3] [--lake]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pymysql
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.support import bench_database  # noqa: E402
from resources.config.universe import load_universe  # noqa: E402
from resources.sources.simulated import simulated_price_frame  # noqa: E402
from resources.storage.feature_specs import FEATURE_NAMES  # noqa: E402
from resources.storage.lake import FeatureLake, lake_schema, read_committed, to_lake_table  # noqa: E402
from resources.storage.schema import FEATURES, price_data_real  # noqa: E402
from resources.storage.warehouse import Warehouse, tsv_table  # noqa: E402

DATABASE = "crypto_bench_write"
START = datetime(2026, 10, 1)


def _load_data(frame, url: str, include_export: bool) -> float:
    """Seconds to LOAD DATA LOCAL INFILE ``frame`` into an empty table, one transaction.

    ``include_export``: the clock includes writing the frame to the file (``DataFrame.to_csv``);
    otherwise the file is ready and only the engine's load is timed (its bare ceiling).
    """
    parsed = sa.engine.make_url(url)
    columns = list(frame.columns)
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as handle:
        path = handle.name
    conn = pymysql.connect(
        host=parsed.host,
        port=parsed.port or 3306,
        user=parsed.username,
        password=parsed.password or "",
        database=parsed.database,
        local_infile=True,
    )
    with conn.cursor() as cursor:
        cursor.execute("DELETE FROM price_data_real")
    conn.commit()
    began = time.perf_counter()
    frame.to_csv(path, sep="\t", header=False, index=False, na_rep="\\N", date_format="%Y-%m-%d %H:%M:%S")
    if not include_export:
        began = time.perf_counter()
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                f"LOAD DATA LOCAL INFILE %s INTO TABLE price_data_real FIELDS TERMINATED BY '\\t' "
                f"({', '.join('`' + c + '`' for c in columns)})",
                (path,),
            )
        conn.commit()
    finally:
        conn.close()
        os.unlink(path)
    return time.perf_counter() - began


def _tsv_seconds(frame) -> tuple[float, float]:
    """Seconds to build the write path's TSV table of ``frame``, and to write it to a file."""
    columns = list(frame.columns)
    began = time.perf_counter()
    table = tsv_table(price_data_real, frame, columns)
    built = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        pacsv.write_csv(
            table,
            os.path.join(directory, "rows.tsv"),
            pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="needed", null_string="\\N"),
        )
    return built - began, time.perf_counter() - built


def _feature_frame(start: datetime, windows: int) -> pd.DataFrame:
    """A features frame of ``windows`` windows from ``start``, 124 symbols, every catalogued column."""
    symbols = [asset.symbol for asset in load_universe()]
    times = pd.date_range(start, periods=windows, freq="5min")
    frame = pd.DataFrame({"symbol": np.repeat(symbols, windows), "timestamp": np.tile(times, len(symbols))})
    values = np.random.default_rng(7).normal(size=(len(frame), len(FEATURE_NAMES) + 1))
    features = pd.DataFrame(values, columns=["price", *FEATURE_NAMES])
    return pd.concat([frame, features], axis=1).assign(feature_set_version="bench")


def lake_copy(url: str, repeat: int) -> None:
    """Print the lake copy's read-back against converting the frame in memory, for a window and a day."""
    wh = Warehouse(url)
    features = wh.table(FEATURES.name)
    schema = lake_schema(features)
    with tempfile.TemporaryDirectory() as directory:
        lake = FeatureLake(directory)
        for windows in (1, 288):
            start, end = START, START + timedelta(minutes=5 * windows)
            frame = _feature_frame(start, windows)
            wh.write_partition(FEATURES.name, frame, start=start, end=end, run_id="bench", code_version="bench")
            read_back, from_frame, delta_write = [], [], []
            for i in range(repeat):
                began = time.perf_counter()
                to_lake_table(read_committed(wh, features, start, end), schema)
                read_back.append(time.perf_counter() - began)
                began = time.perf_counter()
                to_lake_table(pa.Table.from_pandas(frame, preserve_index=False), schema)
                from_frame.append(time.perf_counter() - began)
                delta_write.append(lake.sync(wh, start, end, f"bench-{i}").write_seconds)
            print(
                f"lake copy of {windows} window(s), {len(frame):,} rows x {len(frame.columns)} columns, median of "
                f"{repeat}: read back and convert {statistics.median(read_back):.3f} s; convert the frame "
                f"{statistics.median(from_frame):.3f} s; Delta write (both) {statistics.median(delta_write):.3f} s"
            )
    wh.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lake", action="store_true", help="measure the lake copy instead")
    args = parser.parse_args()
    if args.lake:
        with bench_database(DATABASE) as url:
            lake_copy(url, args.repeat)
        return
    end = START + timedelta(days=args.days)
    frame = simulated_price_frame(load_universe(), START, end)
    rows = len(frame)
    with bench_database(DATABASE) as url:
        wh = Warehouse(url)
        ours, ceiling, with_export, tsv_build, tsv_write = [], [], [], [], []
        for _ in range(args.repeat):
            build_s, write_s = _tsv_seconds(frame)
            tsv_build.append(build_s)
            tsv_write.append(write_s)
            with wh.engine.begin() as conn:
                conn.execute(sa.delete(price_data_real))
            began = time.perf_counter()
            wh.write_partition("price_data_real", frame, start=START, end=end, run_id="bench", code_version="bench")
            ours.append(time.perf_counter() - began)
            ceiling.append(_load_data(frame, url, include_export=False))
            with_export.append(_load_data(frame, url, include_export=True))
        with wh.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(price_data_real)).scalar_one() == rows
        ours_rate = rows / statistics.median(ours)
        ceiling_rate = rows / statistics.median(ceiling)
        export_rate = rows / statistics.median(with_export)
        print(f"rows: {rows} ({args.days} days x 124 symbols, {len(frame.columns)} columns), median of {args.repeat}")
        print(
            f"write_partition (frame to rows, delete, load, partition_log; one txn): {ours_rate:,.0f} rows/s "
            f"({statistics.median(ours):.2f} s)"
        )
        print(
            f"LOAD DATA LOCAL INFILE alone (file ready, empty table, one txn):      {ceiling_rate:,.0f} rows/s "
            f"({statistics.median(ceiling):.2f} s)"
        )
        print(
            f"LOAD DATA LOCAL INFILE with DataFrame.to_csv export first:            {export_rate:,.0f} rows/s "
            f"({statistics.median(with_export):.2f} s)"
        )
        print(
            f"ratio write_partition / bare LOAD DATA: {ours_rate / ceiling_rate:.2f}; "
            f"/ LOAD DATA with export: {ours_rate / export_rate:.2f}"
        )
        print(
            f"client share of write_partition: TSV built by tsv_table {statistics.median(tsv_build):.3f} s, "
            f"written to its file {statistics.median(tsv_write):.3f} s"
        )
        wh.dispose()


if __name__ == "__main__":
    main()
