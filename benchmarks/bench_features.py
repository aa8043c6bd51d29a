"""ML features on MariaDB: compute cost against raw TA-Lib, the live window, a 30-day backfill, writes vs LOAD DATA.

Creates its own database (``crypto_bench_features``, dropped afterwards) on the MariaDB server at
127.0.0.1:3306 (root, no password; or ``CRYPTO_BENCH_MYSQL``), fills it with ``--days`` + 1 days of
simulated prices for the 124-coin universe, a week more of simulated perpetual swaps, synthetic
sentiment and simulated macro series, then
measures:

1. **Computation** (in memory, inputs already read) of one window, 1 day and ``--days`` days, and
   the raw TA-Lib kernels (the 27 ``talib`` calls behind the TA-Lib family, on each symbol's whole
   series) on the same series: how much of the time is the features' own work and overhead.
2. **Live window** end to end (warm-up read + compute + ``write_partition``), median of 5.
3. **Backfill** of ``--days`` days as the asset runs it (one run a day: read, compute, write).
4. **Write path**: one day's rows through ``write_partition`` against the ``LOAD DATA LOCAL INFILE``
   ceiling (the same rows as TSV into an empty copy of the table).

Writes go through ``Warehouse.write_partition``: ``load-data`` (the default) as it is (on MySQL,
``LOAD DATA LOCAL INFILE`` of a TSV that pyarrow writes, inside the partition transaction);
``insert`` with the bulk step forced to multi-row INSERTs of literals (the path for small writes
and servers that refuse local infile). ``--current-days`` days are also written through the
INSERT path to compare.

    .venv/bin/python benchmarks/bench_features.py [--days 30] [--write-path load-data|insert]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv
import talib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.support import bench_database  # noqa: E402
from crypto_assets.features.compute import compute_features, history_start  # noqa: E402
from crypto_assets.features.derivatives_features import derivatives_start  # noqa: E402
from crypto_assets.features.io import read_feature_inputs  # noqa: E402
from resources.config.universe import load_universe  # noqa: E402
from resources.sources.macro_sources import YAHOO_TICKERS, simulated_macro_frame  # noqa: E402
from resources.sources.simulated import simulated_derivatives_frame, simulated_price_frame  # noqa: E402
from resources.storage.feature_specs import FEATURE_NAMES  # noqa: E402
from resources.storage.schema import FEATURES  # noqa: E402
from resources.storage.warehouse import Warehouse, tsv_table  # noqa: E402

DATABASE = "crypto_bench_features"
STEP = timedelta(minutes=5)
DAY = timedelta(days=1)


# ------------------------------------------------------------------------------------------ write path
class InsertOnlyWarehouse(Warehouse):
    """``Warehouse`` with its MySQL bulk step forced to multi-row INSERTs (the path below LOAD_DATA_MIN_ROWS)."""

    def _can_load_data(self) -> bool:
        return False


# ------------------------------------------------------------------------------------------ data
def synthetic_sentiment(symbols: Sequence[str], start: datetime, end: datetime, per_day: int = 1500) -> pd.DataFrame:
    """News sentiment rows: ``per_day`` items a day, about random symbols (BTC and ETH most often)."""
    rng = np.random.default_rng(42)
    n = int(per_day * (end - start) / DAY)
    weights = np.array([8.0 if s in ("BTC", "ETH") else 1.0 for s in symbols])
    windows = start + rng.integers(0, (end - start) // STEP, n) * STEP
    scores = np.clip(rng.normal(0.05, 0.45, n), -1, 1)
    return pd.DataFrame(
        {
            "item_id": [f"bench{i:08d}" for i in range(n)],
            "symbol": rng.choice(symbols, n, p=weights / weights.sum()),
            "model": "lexicon",
            "window_start": windows,
            "sentiment_score": scores,
            "confidence": rng.uniform(0.3, 1.0, n),
            "label": np.where(scores > 0.2, "bullish", np.where(scores < -0.2, "bearish", "neutral")),
            "source": "rss",
            "analyzed_at": windows + pd.Timedelta(minutes=6),
        }
    )


def seed(wh: Warehouse, start: datetime, days: int) -> dict[str, float]:
    """Prices from a day before ``start`` to ``start + days``, sentiment, and macro history."""
    coins = load_universe()
    figures: dict[str, float] = {}
    began = time.perf_counter()
    rows = 0
    for k in range(-1, days):
        day = start + k * DAY
        frame = simulated_price_frame(coins, day, day + DAY)
        wh.write_partition("price_data_real", frame, start=day, end=day + DAY, run_id="seed", code_version="bench")
        rows += len(frame)
    figures["seed_price_rows"] = rows
    figures["seed_price_rows_per_s"] = rows / (time.perf_counter() - began)
    first_swap = derivatives_start(start)
    swaps = simulated_derivatives_frame(coins, first_swap, start + days * DAY)
    wh.write_partition(
        "derivatives_data", swaps, start=first_swap, end=start + days * DAY, run_id="seed", code_version="bench"
    )
    figures["seed_derivatives_rows"] = len(swaps)
    sentiment = synthetic_sentiment([c.symbol for c in coins], start - DAY, start + days * DAY)
    wh.write_partition(
        "sentiment_data", sentiment, start=start - DAY, end=start + days * DAY, run_id="seed", code_version="bench"
    )
    first = (start - timedelta(days=480)).date()
    last = (start + days * DAY).date()
    macro = simulated_macro_frame(["DGS10", "DFF", "DTWEXBGS", "CPIAUCSL", *YAHOO_TICKERS], first, last, last)
    wh.write_partition(
        "macro_indicators",
        macro,
        start=datetime.combine(first, datetime.min.time()),
        end=datetime.combine(last, datetime.min.time()),
        run_id="seed",
        code_version="bench",
        time_column="observation_date",
        window=DAY,
        mode="merge",
    )
    figures["seed_sentiment_rows"] = len(sentiment)
    figures["seed_macro_rows"] = len(macro)
    return figures


# ------------------------------------------------------------------------------------------ measures
def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """Seconds of one call ``fn(*args, **kwargs)`` and its result."""
    began = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - began, result


def raw_talib_seconds(prices: pd.DataFrame, start: datetime, end: datetime) -> float:
    """The TA-Lib family's kernels run the usual way: each talib function once on each symbol's series."""
    frame = prices.loc[
        (prices["window_start"] >= pd.Timestamp(history_start(start))) & (prices["window_start"] < pd.Timestamp(end))
    ]
    series = [
        (g["high"].to_numpy(float), g["low"].to_numpy(float), g["close"].to_numpy(float), g["volume"].to_numpy(float))
        for _, g in frame.sort_values("window_start").groupby("symbol")
    ]
    began = time.perf_counter()
    for h, lo, c, v in series:
        for n in (6, 14, 24):
            talib.RSI(c, n)
        talib.MACD(c, 12, 26, 9)
        talib.BBANDS(c, 20, 2, 2, 0)
        talib.ATR(h, lo, c, 14)
        talib.NATR(h, lo, c, 14)
        talib.ADX(h, lo, c, 14)
        talib.PLUS_DI(h, lo, c, 14)
        talib.MINUS_DI(h, lo, c, 14)
        talib.CCI(h, lo, c, 14)
        talib.MFI(h, lo, c, v, 14)
        talib.WILLR(h, lo, c, 14)
        talib.STOCH(h, lo, c, 5, 3, 0, 3, 0)
        talib.ROC(c, 10)
        talib.MOM(c, 10)
        talib.OBV(c, v)
        talib.ULTOSC(h, lo, c, 7, 14, 28)
        talib.AROON(h, lo, 25)
        for n in (5, 10, 20, 50):
            talib.EMA(c, n)
        for n in (50, 100, 200):
            talib.SMA(c, n)
    return time.perf_counter() - began


def family_seconds(
    prices: pd.DataFrame,
    sentiment: pd.DataFrame,
    macro: pd.DataFrame,
    first: datetime,
    end: datetime,
    derivatives: pd.DataFrame | None = None,
) -> dict[str, float]:
    """Seconds per function of ``compute.py`` (cumulative, the families among them) in one more call, under cProfile."""
    profiler = cProfile.Profile()
    profiler.runcall(compute_features, prices, sentiment, macro, first, end, derivatives=derivatives)
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    per_function = {
        name.lstrip("_"): cumulative
        for (path, _, name), (_, _, _, cumulative, _) in stats.items()
        if path.endswith(("features/compute.py", "features/derivatives_features.py"))
    }
    return {name: round(seconds, 3) for name, seconds in sorted(per_function.items(), key=lambda item: -item[1])}


def computation(wh: Warehouse, start: datetime, days: int) -> dict[str, Any]:
    end = start + days * DAY
    inputs = read_feature_inputs(wh, start, end)
    out: dict[str, Any] = {"read_rows": inputs.row_counts(), "read_seconds_all": inputs.seconds}
    last = end - STEP
    for label, first in (("window", last), ("1d", end - DAY), (f"{days}d", start)):
        runs = 5 if label == "window" else 1
        seconds = []
        for _ in range(runs):
            took, frame = timed(
                compute_features,
                inputs.prices,
                inputs.sentiment,
                inputs.macro,
                first,
                end,
                derivatives=inputs.derivatives,
            )
            seconds.append(took)
        out[f"compute_{label}_s"] = statistics.median(seconds)
        out[f"compute_{label}_rows"] = len(frame)
        out[f"compute_{label}_profile"] = family_seconds(
            inputs.prices, inputs.sentiment, inputs.macro, first, end, inputs.derivatives
        )
        out[f"raw_talib_{label}_s"] = statistics.median(
            raw_talib_seconds(inputs.prices, first, end) for _ in range(runs)
        )
        del frame
    return out


def live_window(wh: Warehouse, start: datetime, days: int, repeat: int = 5) -> dict[str, float]:
    end = start + days * DAY
    window = end - STEP
    reads, computes, writes, totals = [], [], [], []
    for _ in range(repeat):
        began = time.perf_counter()
        inputs = read_feature_inputs(wh, window, end)
        read = time.perf_counter()
        frame = compute_features(
            inputs.prices, inputs.sentiment, inputs.macro, window, end, derivatives=inputs.derivatives
        )
        computed = time.perf_counter()
        wh.write_partition(
            FEATURES.name,
            frame,
            start=window,
            end=end,
            run_id="bench-live",
            code_version="bench",
            time_column="timestamp",
        )
        done = time.perf_counter()
        reads.append(read - began)
        computes.append(computed - read)
        writes.append(done - computed)
        totals.append(done - began)
    return {
        "live_read_s": statistics.median(reads),
        "live_compute_s": statistics.median(computes),
        "live_write_s": statistics.median(writes),
        "live_total_s": statistics.median(totals),
        "live_rows": len(frame),
        "live_read_path": inputs.reader,
    }


def backfill(wh: Warehouse, start: datetime, days: int) -> dict[str, float]:
    read = compute = write = 0.0
    rows = 0
    began = time.perf_counter()
    for k in range(days):
        first = start + k * DAY
        t0 = time.perf_counter()
        inputs = read_feature_inputs(wh, first, first + DAY)
        t1 = time.perf_counter()
        frame = compute_features(
            inputs.prices, inputs.sentiment, inputs.macro, first, first + DAY, derivatives=inputs.derivatives
        )
        t2 = time.perf_counter()
        wh.write_partition(
            FEATURES.name,
            frame,
            start=first,
            end=first + DAY,
            run_id=f"bench-{k}",
            code_version="bench",
            time_column="timestamp",
        )
        t3 = time.perf_counter()
        read, compute, write, rows = read + t1 - t0, compute + t2 - t1, write + t3 - t2, rows + len(frame)
        print(f"  day {k + 1}/{days}: read {t1 - t0:.2f}s compute {t2 - t1:.2f}s write {t3 - t2:.2f}s", flush=True)
    total = time.perf_counter() - began
    return {
        "backfill_days": days,
        "backfill_rows": rows,
        "backfill_total_s": total,
        "backfill_read_s": read,
        "backfill_compute_s": compute,
        "backfill_write_s": write,
        "backfill_rows_per_s": rows / total,
        "backfill_write_rows_per_s": rows / write,
    }


def write_paths(url: str, start: datetime, current_days: int) -> dict[str, float]:
    """One day's rows: write_partition via INSERTs, via LOAD DATA, and bare LOAD DATA (the ceiling)."""
    inserts, loads = InsertOnlyWarehouse(url), Warehouse(url)
    out: dict[str, float] = {}
    frames = []
    for k in range(max(current_days, 1)):
        first = start + k * DAY
        inputs = read_feature_inputs(loads, first, first + DAY)
        frame = compute_features(
            inputs.prices, inputs.sentiment, inputs.macro, first, first + DAY, derivatives=inputs.derivatives
        )
        frames.append((first, frame))
    for name, wh in (("insert", inserts), ("load_data", loads)):
        took = []
        for first, frame in frames[:current_days] if name == "insert" else frames[:1]:
            seconds, _ = timed(
                wh.write_partition,
                FEATURES.name,
                frame,
                start=first,
                end=first + DAY,
                run_id="bench-write",
                code_version="bench",
                time_column="timestamp",
            )
            took.append(seconds)
        out[f"write_day_{name}_s"] = statistics.median(took)
        out[f"write_day_{name}_rows_per_s"] = len(frames[0][1]) / statistics.median(took)
    first, frame = frames[0]
    with loads.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS ml_features_ceiling")
        conn.exec_driver_sql("CREATE TABLE ml_features_ceiling LIKE ml_features_materialized")
    columns = list(frame.columns)
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "ml_features_ceiling.tsv")
        tsv_seconds, _ = timed(
            lambda: pacsv.write_csv(
                tsv_table(FEATURES.table, frame, columns),
                path,
                pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="needed", null_string="\\N"),
            )
        )
        with loads.engine.begin() as conn:
            cursor = conn.connection.cursor()
            quoted = ", ".join(f"`{c}`" for c in columns)
            load_seconds, _ = timed(
                lambda: cursor.execute(
                    f"LOAD DATA LOCAL INFILE %s INTO TABLE ml_features_ceiling FIELDS TERMINATED BY '\\t' "
                    f"OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '\\n' ({quoted})",
                    (path,),
                )
            )
            cursor.close()
    with loads.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE ml_features_ceiling")
    out["ceiling_tsv_s"] = tsv_seconds
    out["ceiling_load_data_s"] = load_seconds
    out["ceiling_rows_per_s"] = len(frame) / load_seconds
    out["ceiling_with_tsv_rows_per_s"] = len(frame) / (load_seconds + tsv_seconds)
    out["write_rows_per_day"] = len(frame)
    inserts.dispose()
    loads.dispose()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--write-path", choices=("load-data", "insert"), default="load-data")
    parser.add_argument("--current-days", type=int, default=2, help="days also written through the INSERT path")
    parser.add_argument("--skip-backfill", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)

    start = datetime.now(UTC).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0) - args.days * DAY
    with bench_database(DATABASE, charset="utf8mb4", keep=args.keep) as url:
        figures: dict[str, Any] = {
            "features": len(FEATURE_NAMES),
            "symbols": len(load_universe()),
            "days": args.days,
            "write_path": args.write_path,
            "cpus": os.cpu_count(),
            "load_average_start": os.getloadavg()[0],
        }
        wh = Warehouse(url) if args.write_path == "load-data" else InsertOnlyWarehouse(url)
        try:
            print(f"seeding {args.days + 1} days of prices, sentiment and macro ...", flush=True)
            figures.update(seed(Warehouse(url), start, args.days))
            print("computation ...", flush=True)
            figures.update(computation(wh, start, args.days))
            print("live window ...", flush=True)
            figures.update(live_window(wh, start, args.days))
            if not args.skip_backfill:
                print(f"backfill of {args.days} days ({args.write_path}) ...", flush=True)
                figures.update(backfill(wh, start, args.days))
            print("write path ...", flush=True)
            figures.update(write_paths(url, start, args.current_days))
        finally:
            wh.dispose()
    figures["load_average_end"] = os.getloadavg()[0]
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    return 0


def report(f: dict[str, Any]) -> None:
    d = f["days"]
    print()
    print(
        f"ML features benchmark: {f['features']} features, {f['symbols']} symbols, {d} days, "
        f"{f['cpus']} CPUs, load average {f['load_average_start']:.1f} -> {f['load_average_end']:.1f}"
    )
    print("computation (in memory)          ours        raw TA-Lib   ours/TA-Lib   TA-Lib family/raw TA-Lib")
    for label in ("window", "1d", f"{d}d"):
        ours, raw = f[f"compute_{label}_s"], f[f"raw_talib_{label}_s"]
        fam = f[f"compute_{label}_profile"].get("talib", 0.0)  # under cProfile
        print(
            f"  {label:<8} {f[f'compute_{label}_rows']:>9} rows  {ours:9.3f}s  {raw:9.3f}s   {ours / raw:9.1f}x"
            f"   {fam / raw:9.1f}x"
        )
    print(
        f"live window (read + compute + write, median of 5): {f['live_total_s']:.3f}s "
        f"(read {f['live_read_s']:.3f}s via {f['live_read_path']}, compute {f['live_compute_s']:.3f}s, "
        f"write {f['live_write_s']:.3f}s; target < 2 s)"
    )
    if "backfill_total_s" in f:
        print(
            f"backfill {d} days ({f['write_path']}): {f['backfill_total_s']:.0f}s for {f['backfill_rows']} rows "
            f"({f['backfill_rows_per_s']:.0f} rows/s; read {f['backfill_read_s']:.0f}s, compute "
            f"{f['backfill_compute_s']:.0f}s, write {f['backfill_write_s']:.0f}s; target < 600 s)"
        )
    rows = f["write_rows_per_day"]
    print(f"write one day ({rows} rows x {f['features'] + 4} columns):")
    print(
        f"  write_partition, multi-row INSERTs:          {f['write_day_insert_s']:.1f}s "
        f"({f['write_day_insert_rows_per_s']:.0f} rows/s)"
    )
    print(
        f"  write_partition, LOAD DATA (the default):   {f['write_day_load_data_s']:.1f}s "
        f"({f['write_day_load_data_rows_per_s']:.0f} rows/s)"
    )
    print(
        f"  LOAD DATA ceiling (empty table, TSV ready): {f['ceiling_load_data_s']:.1f}s "
        f"({f['ceiling_rows_per_s']:.0f} rows/s; with TSV writing {f['ceiling_with_tsv_rows_per_s']:.0f} rows/s)"
    )
    print(
        f"  ratios to the ceiling: INSERTs {f['write_day_insert_rows_per_s'] / f['ceiling_rows_per_s']:.2f}, "
        f"LOAD DATA {f['write_day_load_data_rows_per_s'] / f['ceiling_rows_per_s']:.2f}"
    )


if __name__ == "__main__":
    sys.exit(main())
