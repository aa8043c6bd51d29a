"""``macro_indicators`` and ``ml_features_materialized`` materialized through Dagster, on SQLite and MariaDB."""

from datetime import datetime, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from crypto_assets.features.asset import ml_features_materialized
from crypto_assets.features.compute import compute_features, history_start
from crypto_assets.features.derivatives_features import derivatives_start
from crypto_assets.features.io import read_feature_inputs
from crypto_assets.macro import MacroSourcesResource, macro_indicators
from crypto_assets.partitions import PARTITION_KEY_FORMAT
from resources.config.settings import load_settings
from resources.config.universe import load_universe
from resources.sources.simulated import simulated_derivatives_frame, simulated_price_frame
from resources.storage.dagster_resources import WarehouseResource
from resources.storage.feature_specs import FEATURE_NAMES, FEATURE_SET_VERSION, features_in_family
from resources.storage.schema import derivatives_data as derivatives_table
from resources.storage.schema import macro_indicators as macro_table
from resources.storage.schema import ml_features_materialized as FEATURES_TABLE
from resources.storage.warehouse import Warehouse, utc_now
from testkit.fakes.fake_fred import API_KEY, FakeMacroServer

STEP = timedelta(minutes=5)
DAY = utc_now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
COINS = [c for c in load_universe() if c.symbol in {"BTC", "ETH", "SOL", "XRP", "USDT", "DOGE", "ADA", "LINK"}]


def key(t: datetime) -> str:
    return t.strftime(PARTITION_KEY_FORMAT)


def _materialize(assets, url: str, macro: MacroSourcesResource | None = None, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        assets,
        resources={
            "warehouse": WarehouseResource(db_url=url),
            "macro_sources": macro or MacroSourcesResource(source="simulated"),
        },
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        **kwargs,
    )


@pytest.fixture
def seeded(db_url: str) -> str:
    """A warehouse with a day of simulated price history before DAY+12h, a week of perpetual swaps,
    sentiment, and macro rows."""
    wh = Warehouse(db_url)
    start, end = history_start(DAY + timedelta(hours=12)), DAY + timedelta(hours=13)
    prices = simulated_price_frame(COINS, start, end)
    prices = prices.loc[
        ~((prices["symbol"] == "ADA") & (prices["window_start"] == pd.Timestamp(DAY + timedelta(hours=12, minutes=20))))
    ]
    wh.write_partition("price_data_real", prices, start=start, end=end, run_id="seed", code_version="test")
    rng = np.random.default_rng(1)
    n = 60
    windows = [start + int(k) * STEP for k in rng.integers(0, (end - start) // STEP, n)]
    sentiment = pd.DataFrame(
        {
            "item_id": [f"i{k}" for k in range(n)],
            "symbol": rng.choice(["BTC", "ETH", "SOL"], n),
            "model": "lexicon",
            "window_start": windows,
            "sentiment_score": rng.uniform(-1, 1, n),
            "confidence": rng.uniform(0, 1, n),
            "label": rng.choice(["bearish", "neutral", "bullish"], n),
            "source": "rss",
            "analyzed_at": [w + timedelta(minutes=6) for w in windows],
        }
    )
    wh.write_partition("sentiment_data", sentiment, start=start, end=end, run_id="seed", code_version="test")
    first = derivatives_start(DAY + timedelta(hours=12))
    derivatives = simulated_derivatives_frame(COINS, first, end)
    wh.write_partition("derivatives_data", derivatives, start=first, end=end, run_id="seed", code_version="test")
    return db_url


def _stored(url: str, start: datetime, end: datetime) -> pd.DataFrame:
    stmt = (
        sa.select(FEATURES_TABLE)
        .where(FEATURES_TABLE.c.timestamp >= start, FEATURES_TABLE.c.timestamp < end)
        .order_by(FEATURES_TABLE.c.symbol, FEATURES_TABLE.c.timestamp)
    )
    return Warehouse(url).read_frame(stmt)


def test_macro_asset_lands_simulated_days_with_publication_dates(db_url: str) -> None:
    first, last = DAY - timedelta(days=6), DAY - timedelta(days=1)
    result = _materialize(
        [macro_indicators],
        db_url,
        tags={
            "dagster/asset_partition_range_start": first.strftime("%Y-%m-%d"),
            "dagster/asset_partition_range_end": last.strftime("%Y-%m-%d"),
        },
    )
    assert result.success
    rows = Warehouse(db_url).read_frame(sa.select(macro_table))
    assert set(rows["source"]) == {"simulated"} and {"DGS10", "^GSPC"} <= set(rows["series_id"])
    observed = pd.to_datetime(rows["observation_date"])
    assert observed.min() >= pd.Timestamp(first) and observed.max() <= pd.Timestamp(last)
    assert (pd.to_datetime(rows["realtime_start"]) >= observed).all()
    committed = Warehouse(db_url).committed_windows("macro_indicators")
    assert len(committed) == 6, "one partition_log row per day"
    meta = result.asset_materializations_for_node("macro_indicators")[0].metadata
    assert meta["sources"].data == ["simulated"] and meta["warnings"].data == []


def test_macro_asset_live_against_fake_fred_and_yahoo(sqlite_url: str, monkeypatch) -> None:
    day = (DAY - timedelta(days=1)).date()
    with FakeMacroServer() as server:
        server.add_fred("DGS10", day, "4.25", day + timedelta(days=1))
        server.add_fred("DFF", day, ".", day + timedelta(days=1))
        server.add_yahoo("^GSPC", day, 6100.0)
        server.fail("fred", "429", "500")
        monkeypatch.setenv("FRED_API_KEY", API_KEY)
        monkeypatch.setenv("CRYPTO_FRED_SERIES", "DGS10,DFF")

        def live() -> MacroSourcesResource:
            """The resource as the definitions build it from the settings of the environment now."""
            return MacroSourcesResource.from_settings(
                load_settings(),
                source="live",
                fred_base_url=server.url,
                yahoo_base_url=server.url,
                yahoo_tickers=["^GSPC", "^VIX"],
            )

        resource = live()
        result = _materialize([macro_indicators], sqlite_url, macro=resource, partition_key=day.isoformat())
        assert result.success
        rows = Warehouse(sqlite_url).read_frame(sa.select(macro_table).order_by(macro_table.c.series_id))
        assert rows["series_id"].tolist() == ["DFF", "DGS10", "^GSPC"]
        assert np.isnan(rows["value"].iloc[0]) and rows["value"].iloc[1] == 4.25, "FRED's '.' lands as NULL"
        assert str(rows["realtime_start"].iloc[1])[:10] == (day + timedelta(days=1)).isoformat()
        meta = result.asset_materializations_for_node("macro_indicators")[0].metadata
        assert meta["http"].data["fred"]["retries"] == 2
        assert any("^VIX" in w for w in meta["warnings"].data), "a failing Yahoo ticker is skipped, with a warning"

        monkeypatch.delenv("FRED_API_KEY")
        resource = live()
        result = _materialize([macro_indicators], sqlite_url, macro=resource, partition_key=day.isoformat())
        meta = result.asset_materializations_for_node("macro_indicators")[0].metadata
        assert result.success and "FRED_API_KEY is not set: FRED series skipped" in meta["warnings"].data
        rows = Warehouse(sqlite_url).read_frame(sa.select(macro_table))
        assert len(rows) == 3, "merge: what FRED gave earlier stays when FRED is skipped"

        monkeypatch.setenv("FRED_API_KEY", API_KEY)
        resource = live()
        server.fail("fred", "400", "400")
        context = dg.build_asset_context(partition_key=day.isoformat())
        with pytest.raises(dg.Failure, match="every FRED series failed"):  # so the job's retry policy retries it
            macro_indicators(context, warehouse=WarehouseResource(db_url=sqlite_url), macro_sources=resource)


def test_features_of_a_window_are_the_same_alone_in_a_range_and_recomputed(seeded: str) -> None:
    url = seeded
    first = DAY + timedelta(hours=12)
    last = first + 11 * STEP
    assert _materialize(
        [macro_indicators],
        url,
        tags={
            "dagster/asset_partition_range_start": (DAY - timedelta(days=7)).strftime("%Y-%m-%d"),
            "dagster/asset_partition_range_end": (DAY - timedelta(days=1)).strftime("%Y-%m-%d"),
        },
    ).success
    ranged = _materialize(
        [ml_features_materialized],
        url,
        tags={"dagster/asset_partition_range_start": key(first), "dagster/asset_partition_range_end": key(last)},
    )
    assert ranged.success
    stored_range = _stored(url, first, last + STEP)
    assert len(stored_range) == len(COINS) * 12
    assert list(stored_range.columns) == [c.name for c in FEATURES_TABLE.columns]
    assert set(stored_range["feature_set_version"]) == {FEATURE_SET_VERSION}

    window = first + 4 * STEP
    alone = _materialize([ml_features_materialized], url, partition_key=key(window))
    assert alone.success
    stored_alone = _stored(url, window, window + STEP)
    expected = stored_range.loc[stored_range["timestamp"] == pd.Timestamp(window)].reset_index(drop=True)
    pd.testing.assert_frame_equal(stored_alone, expected, check_exact=True)

    # what was stored is exactly what the pure computation gives (DOUBLE round trip included)
    inputs = read_feature_inputs(Warehouse(url), first, last + STEP)
    computed = compute_features(
        inputs.prices, inputs.sentiment, inputs.macro, first, last + STEP, derivatives=inputs.derivatives
    )
    pd.testing.assert_frame_equal(stored_range[computed.columns], computed, check_exact=True, check_dtype=False)
    # a window alone reads only the derivatives rows it needs (older ones: its hourly funding samples)
    every_row = Warehouse(url).read_frame(sa.select(derivatives_table))
    alone_inputs = read_feature_inputs(Warehouse(url), window, window + STEP)
    assert len(alone_inputs.derivatives) < len(every_row) / 4
    for rows in (alone_inputs.derivatives, every_row):
        pd.testing.assert_frame_equal(
            compute_features(
                alone_inputs.prices, alone_inputs.sentiment, alone_inputs.macro, window, window + STEP, derivatives=rows
            ),
            computed.loc[computed["timestamp"] == pd.Timestamp(window)].reset_index(drop=True),
            check_exact=True,
        )

    # at least 150 catalogued features land for every window (the one with a missing ADA bar included)
    counts = stored_range[list(FEATURE_NAMES)].notna().sum(axis=1)
    complete = stored_range["bars_missing"] == 0
    assert counts[complete].min() >= 150
    assert (
        stored_range.groupby("timestamp")
        .apply(lambda g: (g[list(FEATURE_NAMES)].notna().sum(axis=1) >= 150).any())
        .all()
    )
    ada = stored_range.loc[
        (stored_range["symbol"] == "ADA") & (stored_range["timestamp"] == pd.Timestamp(first + 4 * STEP))
    ]
    assert np.isnan(ada["price"].iloc[0]) and ada["bars_missing"].iloc[0] == 1, "missing bar: a row, NULL price"
    assert stored_range.loc[stored_range["symbol"] == "BTC", "macro_dgs10"].notna().all()
    assert stored_range["sent_count_24h"].sum() > 0
    derivatives = [spec.name for spec in features_in_family("derivatives") if spec.name != "mkt_funding_ann"]
    by_symbol = stored_range.set_index("symbol")
    assert by_symbol.loc["BTC", derivatives].notna().all().all(), "a week of swaps: every derivatives feature set"
    assert by_symbol.loc[["USDT", "XRP"], derivatives].isna().all().all(), "no perpetual: NULL"

    meta = ranged.asset_materializations_for_node("ml_features_materialized")[0].metadata
    assert meta["feature_set_version"].value == FEATURE_SET_VERSION
    assert meta["feature_count"].value == len(FEATURE_NAMES) and meta["windows"].value == 12
    assert set(meta["nan_ratio_by_family"].data) >= {"talib", "rolling", "sentiment", "macro", "derivatives"}
    assert meta["input_rows"].data["derivatives_data"] > 0
    assert meta["read_path"].value == ("connectorx" if url.startswith("mysql") else "sqlalchemy")
    committed = Warehouse(url).committed_windows("ml_features_materialized")
    assert len(committed) == 12 and (committed["row_count"] == len(COINS)).all()
