"""Table checks: each catches the defect it exists for, and blocking ones stop downstream assets."""

from datetime import datetime, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from crypto_assets.checks import (
    CHECK_KINDS,
    TABLE_CHECKS,
    CheckInput,
    build_table_check,
    build_table_checks,
)
from crypto_assets.partitions import FIVE_MINUTE_PARTITIONS
from crypto_assets.prices import price_data_real
from resources.config.universe import load_universe
from resources.sources.price_sources import PriceSourceResource
from resources.sources.simulated import simulated_price_frame
from resources.storage.dagster_resources import WarehouseResource
from resources.storage.schema import PRICES, partition_log, sentiment_data
from resources.storage.schema import price_data_real as price_table
from resources.storage.warehouse import Warehouse

START = datetime(2026, 11, 20, 12, 0)
HOUR = timedelta(hours=1)
PRICE_CHECKS = build_table_checks([price_data_real])


def write_prices(wh: Warehouse, start: datetime, end: datetime, mutate=None) -> pd.DataFrame:
    frame = simulated_price_frame(load_universe(), start, end)
    if mutate is not None:
        frame = mutate(frame.copy())
    wh.write_partition("price_data_real", frame, start=start, end=end, run_id="r", code_version="1")
    return frame


def evaluate(
    wh: Warehouse,
    table: sa.Table,
    kind: str,
    start: datetime = START,
    end: datetime = START + HOUR,
    time_column: str = "window_start",
) -> tuple[bool, str, dict]:
    data = CheckInput(wh, table, time_column, start, end, timedelta(minutes=5), datetime(2026, 11, 1))
    return CHECK_KINDS[kind].evaluate(data)


def test_checks_are_built_only_for_assets_in_the_definitions_with_their_blocking_flags():
    (checks,) = PRICE_CHECKS
    specs = {spec.name: spec for spec in checks.check_specs}
    assert set(specs) == {
        "unique_non_null_keys",
        "price_sanity",
        "symbol_coverage",
        "no_window_gaps",
        "market_data_freshness",
    }
    assert specs["price_sanity"].blocking and specs["unique_non_null_keys"].blocking
    assert not specs["symbol_coverage"].blocking
    assert {s.asset for s in TABLE_CHECKS} == {
        "price_data_real",
        "derivatives_data",
        "news_items",
        "sentiment_data",
        "ml_features_materialized",
        "macro_indicators",
    }


def test_clean_simulated_prices_pass_every_price_check(sqlite_url):
    wh = Warehouse(sqlite_url)
    write_prices(wh, START - timedelta(minutes=5), START + HOUR)
    for kind in ("unique_non_null_keys", "price_sanity", "symbol_coverage"):
        passed, text, _ = evaluate(wh, price_table, kind)
        assert passed, (kind, text)


def _live_like(frame: pd.DataFrame) -> pd.DataFrame:
    """Simulated rows labelled as live ones: history-joined, and snapshot-joined in the last window."""
    last = frame.window_start == frame.window_start.max()
    return frame.assign(
        source=np.where(last, "okx+coingecko", "okx+coingecko_history"),
        quote="USDT",
        market_data_age_s=np.where(last, -40.0, 3000.0),
    )


def test_market_data_freshness_passes_fresh_rows_and_catches_old_ones_and_stale_snapshots(sqlite_url):
    wh = Warehouse(sqlite_url)
    write_prices(wh, START, START + HOUR, mutate=_live_like)
    passed, text, metadata = evaluate(wh, price_table, "market_data_freshness")
    assert passed, text
    assert metadata["bar_rows_without_market_fields"] == 0 and metadata["max_market_data_age_s"] == 3000.0
    data = CheckInput(
        wh, price_table, "window_start", START, START + HOUR, timedelta(minutes=5), None, {"stale_snapshot_count": 3}
    )
    passed, text, metadata = CHECK_KINDS["market_data_freshness"].evaluate(data)
    assert not passed and metadata["stale_snapshots_left_out"] == 3

    def old(frame):
        frame = _live_like(frame)
        last = frame.window_start == frame.window_start.max()
        frame.loc[last & (frame.symbol == "BTC"), "market_data_age_s"] = 900.0  # over the 600 s bound
        frame.loc[~last & (frame.symbol == "ETH"), "market_data_age_s"] = 26 * 3600.0  # over the history's 25 h
        frame.loc[frame.symbol == "SOL", "market_cap"] = np.nan
        return frame

    write_prices(wh, START, START + HOUR, mutate=old)
    passed, text, metadata = evaluate(wh, price_table, "market_data_freshness")
    assert not passed and metadata["market_data_too_old"] == 1 + 11
    assert metadata["bar_rows_without_market_fields"] == 12


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (
            lambda f: f.assign(
                close=f.close.where(
                    ~((f.symbol == "BTC") & (f.window_start == START + 2 * timedelta(minutes=5))), f.close * 10
                )
            ),
            "impossible_jumps",
        ),
        (lambda f: f.assign(high=f.high.where(f.symbol != "ETH", f.low / 2)), "inconsistent_bars"),
    ],
)
def test_price_sanity_catches_impossible_jumps_and_broken_bars(sqlite_url, mutate, expected):
    wh = Warehouse(sqlite_url)
    write_prices(wh, START, START + HOUR, mutate=mutate)
    passed, text, metadata = evaluate(wh, price_table, "price_sanity")
    assert not passed and metadata[expected] > 0, text


def test_price_sanity_compares_across_the_range_boundary_and_sees_non_positive_prices(sqlite_url):
    wh = Warehouse(sqlite_url)
    write_prices(wh, START - timedelta(minutes=5), START)
    write_prices(wh, START, START + HOUR, mutate=lambda f: f.assign(close=f.close * 5))
    passed, _, metadata = evaluate(wh, price_table, "price_sanity")
    assert not passed and metadata["impossible_jumps"] == 124  # every coin, at the first window only
    with wh.engine.begin() as conn:  # a row written around the write primitive
        conn.execute(sa.update(price_table).where(price_table.c.symbol == "SOL").values(current_price=-1.0))
    assert evaluate(wh, price_table, "price_sanity")[2]["non_positive_rows"] == 12


def test_coverage_reports_missing_symbols(sqlite_url):
    wh = Warehouse(sqlite_url)
    dropped = [c.symbol for c in load_universe()[:20]]
    write_prices(wh, START, START + HOUR, mutate=lambda f: f[~f.symbol.isin(dropped)])
    passed, text, metadata = evaluate(wh, price_table, "symbol_coverage")
    assert not passed and metadata["min_coverage"] == round(104 / 124, 4)
    assert set(metadata["symbols_never_present"].data) == set(dropped)


def test_gap_check_lists_windows_missing_from_partition_log(sqlite_url):
    wh = Warehouse(sqlite_url)
    write_prices(wh, START - timedelta(days=1), START + HOUR)
    assert evaluate(wh, price_table, "no_window_gaps")[0]
    with wh.engine.begin() as conn:
        conn.execute(sa.delete(partition_log).where(partition_log.c.window_start == START + timedelta(minutes=10)))
    passed, text, metadata = evaluate(wh, price_table, "no_window_gaps")
    assert not passed and metadata["windows_missing"] == 1
    assert metadata["missing_windows"].data == ["2026-11-20T12:10:00"]


def test_null_and_duplicate_keys_are_found(sqlite_url):
    wh = Warehouse(sqlite_url)
    loose = sa.Table(
        "loose_keys",
        sa.MetaData(),
        sa.Column("item_id", sa.String, primary_key=True),
        sa.Column("window_start", sa.DateTime),
    )
    with wh.engine.begin() as conn:  # the same table without its key constraint, as a bad migration leaves it
        conn.execute(sa.text("CREATE TABLE loose_keys (item_id VARCHAR, window_start DATETIME)"))
        conn.execute(
            loose.insert(),
            [
                {"item_id": "a", "window_start": START},
                {"item_id": "a", "window_start": START},
                {"item_id": None, "window_start": START},
            ],
        )
    passed, text, metadata = evaluate(wh, loose, "unique_non_null_keys")
    assert not passed and metadata["null_key_rows"] == 1 and metadata["duplicate_keys"] == 1


def sentiment_frame(labels: list[str], scores: list[float]) -> pd.DataFrame:
    n = len(labels)
    return pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(n)],
            "symbol": "BTC",
            "model": "lexicon",
            "window_start": [START + timedelta(minutes=5 * (i % 12)) for i in range(n)],
            "sentiment_score": scores,
            "confidence": 0.8,
            "label": labels,
            "source": "rss",
            "analyzed_at": START + HOUR,
        }
    )


def test_sentiment_score_range_and_label_mix(sqlite_url):
    wh = Warehouse(sqlite_url)
    mixed = sentiment_frame(["bullish", "bearish", "neutral"] * 20, [0.5, -0.5, 0.0] * 20)
    wh.write_partition("sentiment_data", mixed, start=START, end=START + HOUR, run_id="r", code_version="1")
    assert evaluate(wh, sentiment_data, "score_range")[0] and evaluate(wh, sentiment_data, "label_mix")[0]
    stuck = sentiment_frame(["bullish"] * 60, [1.5] + [0.9] * 59)
    wh.write_partition("sentiment_data", stuck, start=START, end=START + HOUR, run_id="r", code_version="1")
    passed, _, metadata = evaluate(wh, sentiment_data, "score_range")
    assert not passed and metadata["scores_out_of_range"] == 1
    passed, text, metadata = evaluate(wh, sentiment_data, "label_mix")
    assert not passed and metadata["dominant_label"] == "bullish" and "100% of 60 rows" in text


def test_feature_nan_ratio(sqlite_url):
    wh = Warehouse(sqlite_url)
    features = sa.Table(
        "features_like",
        sa.MetaData(),
        sa.Column("symbol", sa.String, primary_key=True),
        sa.Column("timestamp", sa.DateTime, primary_key=True),
        sa.Column("price", sa.Float),
        sa.Column("rsi_14", sa.Float),
        sa.Column("macd_line", sa.Float),
        sa.Column("feature_set_version", sa.String),
    )
    features.create(wh.engine)
    rows = [
        {
            "symbol": "BTC",
            "timestamp": START + timedelta(minutes=5 * i),
            "price": 1.0,
            "rsi_14": None if i < 4 else 50.0,
            "macd_line": 0.1,
            "feature_set_version": "1",
        }
        for i in range(12)
    ]
    with wh.engine.begin() as conn:
        conn.execute(features.insert(), rows)
    passed, text, metadata = evaluate(wh, features, "feature_nan_ratio", time_column="timestamp")
    assert not passed and metadata["features_over_threshold"].data == ["rsi_14"]
    assert metadata["worst_nan_ratios"].data["rsi_14"] == round(4 / 12, 4) and metadata["features"] == 2


@dg.asset(key="price_data_real", partitions_def=FIVE_MINUTE_PARTITIONS)
def bad_prices(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> None:
    """Writes prices with a x10 jump, as a buggy source could."""
    start, end = (w.replace(tzinfo=None) for w in context.partition_time_window)
    frame = simulated_price_frame(load_universe(), start - timedelta(minutes=5), end)
    frame.loc[frame.window_start == start, "close"] *= 10
    warehouse.get().write_partition(
        "price_data_real", frame, start=start - timedelta(minutes=5), end=end, run_id=context.run_id, code_version="1"
    )


@dg.asset(partitions_def=FIVE_MINUTE_PARTITIONS, deps=["price_data_real"])
def features_like() -> None:
    """Stands for the features: must not compute on bad prices."""


def test_a_failing_blocking_check_stops_downstream_assets_in_the_run(sqlite_url):
    checks = build_table_check(PRICES, FIVE_MINUTE_PARTITIONS)
    result = dg.materialize(
        [bad_prices, checks, features_like],
        partition_key="2026-11-20-12:00",
        resources={"warehouse": WarehouseResource(db_url=sqlite_url)},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not evaluations["price_sanity"].passed and evaluations["unique_non_null_keys"].passed
    assert evaluations["price_sanity"].metadata["window_start"].value == "2026-11-20T12:00:00"
    assert "features_like" not in {e.step_key for e in result.get_step_success_events()}


def test_checks_run_with_the_price_asset_over_a_backfill_range_and_standalone(sqlite_url):
    resources = {"warehouse": WarehouseResource(db_url=sqlite_url), "price_source": PriceSourceResource()}
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [price_data_real, *PRICE_CHECKS],
        resources=resources,
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": "2026-11-20-00:00",
            "dagster/asset_partition_range_end": "2026-11-20-01:55",
        },
    )
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert {k for k, e in evaluations.items() if not e.passed} == set()
    assert evaluations["price_sanity"].metadata["rows"].value == 124 * 24
    # The day before the range is inside the 30-day horizon but was never run: not a gap.
    gaps = evaluations["no_window_gaps"].metadata
    assert (gaps["windows_expected"].value, gaps["windows_missing"].value) == (24, 0)
    # From the UI's "Execute checks": no partition, so the day up to the latest committed window.
    alone = dg.materialize(
        [price_data_real, *PRICE_CHECKS],
        resources=resources,
        instance=instance,
        selection=dg.AssetSelection.checks(*PRICE_CHECKS),
    )
    coverage = {e.check_name: e for e in alone.get_asset_check_evaluations()}["symbol_coverage"]
    assert coverage.metadata["window_end"].value == "2026-11-20T02:00:00"
    assert not coverage.passed  # the day before the first backfilled window is empty
