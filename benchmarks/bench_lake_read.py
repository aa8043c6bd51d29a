"""Feature reads side by side: the client reading the lake's files itself, the client through the
gateway (which reads the warehouse), connectorx straight from MariaDB, and pyarrow reading the
Delta table directly.

Creates its own MariaDB database (``crypto_bench_lake``, dropped afterwards) and lake directory,
fills ``ml_features_materialized`` with synthetic committed rows (server-side, as
``bench_api_features_read.py`` does: ``--symbols`` x ``--rows / --symbols`` windows, every
catalogued column), copies them into the lake with ``FeatureLake.sync`` (a month a commit) and runs the nightly
``FeatureLake.maintain`` (so the table is read as production reads it), starts a gateway over
both and times, in one run:

* ``--rows`` rows x ``--narrow-columns`` columns, and ``--wide-rows`` rows x every column;
* for each, the fastest of ``--repeat`` calls (3) of: ``CryptoDataClient.features`` as a notebook on this machine calls it (it reads the
  files ``/v1/features/files`` names itself: ``direct_lake=True``, the default), through the
  gateway (``direct_lake=False``: the rows stream through the gateway from MariaDB),
  ``connectorx.read_sql`` of the same committed query, and ``DeltaTable`` ->
  ``to_pyarrow_dataset().to_table(columns, filter)`` -> pandas (the direct read);
* the live window's added cost: ``FeatureLake.sync`` of one window of ``--live-symbols`` symbols
  (median of ``--live-repeat``).

``--symbols`` defaults to the universe's size (124: a day's file holds 35,712 rows); fewer symbols
make more, smaller files for the same rows (10: 2,880-row files, 12 times the footers to parse).

Run: ``.venv/bin/python benchmarks/bench_lake_read.py [--rows 1000000 --wide-rows 200000 --symbols 124]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import connectorx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import sqlalchemy as sa
from deltalake import DeltaTable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.client import CryptoDataClient  # noqa: E402
from benchmarks.bench_api_features_read import START, fill  # noqa: E402
from benchmarks.support import bench_database  # noqa: E402
from resources.storage.lake import FeatureLake, range_filter  # noqa: E402
from resources.storage.schema import FEATURES, ml_features_materialized, partition_log  # noqa: E402
from resources.storage.warehouse import get_warehouse  # noqa: E402
from testkit.api_server import api_server  # noqa: E402

DATABASE = "crypto_bench_lake"
SYNC_SPAN = timedelta(days=30)


def timed(repeat: int, what: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """The fewest seconds of ``repeat`` calls ``what(*args, **kwargs)``, and the last call's result
    (each earlier result is dropped before the next call, so no call holds two)."""
    best = float("inf")
    result = None
    for _ in range(repeat):
        result = None
        began = time.perf_counter()
        result = what(*args, **kwargs)
        best = min(best, time.perf_counter() - began)
    return best, result


def read_delta_directly(uri: str, columns: list[str], end: datetime) -> pd.DataFrame:
    """``columns`` of the features from START to ``end``, read with pyarrow from the Delta table at ``uri``."""
    dataset = DeltaTable(uri).to_pyarrow_dataset()
    return dataset.to_table(columns=["symbol", "timestamp", *columns], filter=range_filter(START, end)).to_pandas()


def committed_query(table: sa.Table, columns: list[str], symbols: list[str], start, end) -> sa.Select:
    """The gateway's query: committed windows only, in (symbol, timestamp) order."""
    pl = partition_log
    return (
        sa.select(table.c.symbol, table.c.timestamp, *(table.c[c] for c in columns))
        .select_from(table.join(pl, sa.and_(pl.c.asset == FEATURES.name, pl.c.window_start == table.c.timestamp)))
        .where(table.c.symbol.in_(symbols), table.c.timestamp >= start, table.c.timestamp < end)
        .order_by(table.c.symbol, table.c.timestamp)
        .prefix_with("STRAIGHT_JOIN")
    )


def layout(lake: FeatureLake) -> str:
    """The table's files, their rows and row groups, and their footers' size."""
    files = DeltaTable(lake.uri).file_uris()
    footers = [pq.read_metadata(f) for f in files]
    rows = [m.num_rows for m in footers]
    groups = [m.num_row_groups for m in footers]
    return (
        f"{len(files)} files of {min(rows):,} to {max(rows):,} rows, {min(groups)} to {max(groups)} row groups "
        f"each, footers of {statistics.median(m.serialized_size for m in footers) / 1024:.0f} KiB"
    )


def live_window_cost(url: str, lake: FeatureLake, table: sa.Table, symbols: int, repeat: int, after) -> list[float]:
    """Seconds of ``lake.sync`` for one freshly committed window of ``symbols`` symbols."""
    wh = get_warehouse(url)
    values = [c.name for c in table.columns if c.name not in ("symbol", "timestamp", "feature_set_version")]
    rng = np.random.default_rng(7)
    costs = []
    for i in range(repeat):
        window = after + i * timedelta(minutes=5)
        frame = pd.DataFrame(rng.random((symbols, len(values))) * 100, columns=values)
        frame.insert(0, "timestamp", window)
        frame.insert(0, "symbol", [f"L{s:03d}" for s in range(symbols)])
        frame["feature_set_version"] = "bench"
        wh.write_partition(
            FEATURES.name,
            frame,
            start=window,
            end=window + timedelta(minutes=5),
            run_id="live",
            code_version="bench",
            time_column="timestamp",
        )
        costs.append(lake.sync(wh, window, window + timedelta(minutes=5), f"live-{i}").seconds)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the narrow read (and rows generated)")
    parser.add_argument("--wide-rows", type=int, default=200_000, help="rows of the full-catalog read")
    parser.add_argument("--narrow-columns", type=int, default=10)
    parser.add_argument("--symbols", type=int, default=124, help="symbols (default: the universe's size)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="calls of each read; the fastest is reported (this VM's first touch "
        "of fresh memory costs up to 4 s a GB, which falls on whichever read comes first)",
    )
    parser.add_argument("--live-symbols", type=int, default=124)
    parser.add_argument("--live-repeat", type=int, default=5)
    parser.add_argument("--port", type=int, default=8775)
    args = parser.parse_args()

    with bench_database(DATABASE, charset="utf8mb4") as url, tempfile.TemporaryDirectory() as scratch:
        table = ml_features_materialized
        symbols = [f"C{i:03d}" for i in range(args.symbols)]
        windows = args.rows // len(symbols)
        end = START + timedelta(minutes=5 * windows)
        setup = fill(url, table, symbols, windows)
        lake = FeatureLake(str(Path(scratch) / "lake"))
        wh = get_warehouse(url)
        began = time.perf_counter()
        at = START
        while at < end:
            lake.sync(wh, at, min(end, at + SYNC_SPAN), "bench")
            at += SYNC_SPAN
        sync_s = time.perf_counter() - began
        maintained = lake.maintain(wh)  # the nightly job: the table as production reads it
        values = [c.name for c in table.columns if c.name not in ("symbol", "timestamp", "feature_set_version")]
        print(
            f"setup: {windows * len(symbols):,} rows x {len(values)} value columns (feature catalog), {len(symbols)} "
            f"symbols x {windows:,} windows; MariaDB fill {setup:.1f}s, lake sync {sync_s:.1f}s, "
            f"maintenance {maintained['seconds']:.1f}s; {layout(lake)}"
        )

        lake_env = {
            "CRYPTO_API_RATE_LIMIT": "0",
            "CRYPTO_API_MAX_ROWS": str(max(args.rows, args.wide_rows)),
            "CRYPTO_LAKE_URI": str(Path(scratch) / "lake"),
        }
        cx_url = wh.connectorx_url()
        with api_server(url, args.port, lake_env):
            via_files = CryptoDataClient(f"http://127.0.0.1:{args.port}", timeout=3600)
            via_gateway = CryptoDataClient(f"http://127.0.0.1:{args.port}", timeout=3600, direct_lake=False)
            for client in (via_files, via_gateway):  # warm the connection pools and the lake's table
                client.features(symbols[:1], start=START, end=START + timedelta(hours=1))
            cases = [
                (f"{args.rows:,} rows x {args.narrow_columns} columns", values[: args.narrow_columns], end),
                (
                    f"{args.wide_rows:,} rows x {len(values)} columns (full catalog)",
                    values,
                    START + timedelta(minutes=5 * (args.wide_rows // len(symbols))),
                ),
            ]
            for title, columns, case_end in cases:
                figures: dict[str, tuple[float, int]] = {}
                # Every symbol, as a notebook reading the universe asks (no symbols= parameter).
                files_s, frame = timed(
                    args.repeat, via_files.features, None, start=START, end=case_end, columns=columns
                )
                assert via_files.last_features_path == "lake files"
                figures["client, lake files read here"] = (files_s, len(frame))
                probe = frame[columns[-1]].to_numpy()
                del frame
                gateway_s, frame = timed(
                    args.repeat, via_gateway.features, None, start=START, end=case_end, columns=columns
                )
                figures["client, through the gateway"] = (gateway_s, len(frame))
                assert np.allclose(probe, frame[columns[-1]].to_numpy(), equal_nan=True)
                del frame
                sql = str(
                    committed_query(table, columns, symbols, START, case_end).compile(
                        dialect=wh.engine.dialect, compile_kwargs={"literal_binds": True}
                    )
                )
                cx_s, arrow = timed(args.repeat, connectorx.read_sql, cx_url, sql, return_type="arrow")
                figures["connectorx from MariaDB (Arrow)"] = (cx_s, arrow.num_rows)
                del arrow
                direct_s, frame = timed(args.repeat, read_delta_directly, lake.uri, columns, case_end)
                figures["pyarrow on the Delta table (to pandas)"] = (direct_s, len(frame))
                del frame
                print(f"\n{title}")
                for name, (seconds, rows) in figures.items():
                    print(f"  {name:<40} {seconds:8.2f} s  {rows / seconds:12,.0f} rows/s  ({rows:,} rows)")
                print(f"  lake files / gateway speed-up:          {gateway_s / files_s:8.1f}x")
                print(f"  lake files / direct pyarrow (rate):     {direct_s / files_s:8.2f}")
        costs = live_window_cost(url, lake, table, args.live_symbols, args.live_repeat, end + timedelta(days=1))
        print(
            f"\nlive window's lake write ({args.live_symbols} symbols x {len(values)} columns, "
            f"{args.live_repeat} windows): median {statistics.median(costs):.3f} s, max {max(costs):.3f} s"
        )


if __name__ == "__main__":
    main()
