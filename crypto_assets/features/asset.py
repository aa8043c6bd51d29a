"""The ``ml_features_materialized`` asset: the catalogued features for each (symbol, 5-minute window).

No ``from __future__ import annotations`` here: Dagster reads the run config's annotation at import.
"""

import time

import dagster as dg
from pydantic import Field

from crypto_assets.common import OWNERS, preview_markdown, window_range, write_metadata
from crypto_assets.features.compute import compute_features, nan_ratio_by_family
from crypto_assets.features.io import read_feature_inputs
from crypto_assets.partitions import FIVE_MINUTE_PARTITIONS
from resources.storage.dagster_resources import WarehouseResource
from resources.storage.feature_specs import (
    DERIVATIVES_LOOKBACK_WINDOWS,
    FEATURE_NAMES,
    FEATURE_SET_VERSION,
    PRICE_LOOKBACK_WINDOWS,
)
from resources.storage.schema import DERIVATIVES, FEATURES, MACRO, PRICES, SENTIMENT


class FeaturesConfig(dg.Config):
    """Options of the features run."""

    sentiment_model: str = Field(
        default="",
        description="Use only sentiment rows of this model; empty: every model, an item scored by "
        "several models counting once with its mean score.",
    )


@dg.asset(
    name=FEATURES.asset,
    partitions_def=FIVE_MINUTE_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=288),
    deps=[dg.AssetKey(upstream.asset) for upstream in (PRICES, DERIVATIVES, SENTIMENT, MACRO)],
    group_name="features",
    kinds={"python", "pandas", "numpy", "sql"},
    owners=OWNERS,
    code_version=FEATURE_SET_VERSION,
)
def ml_features_materialized(
    context: dg.AssetExecutionContext,
    config: FeaturesConfig,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """Model-ready features: one row per (symbol, 5-minute window), one column per catalogued feature.

    Over 300 named features (``docs/features.md``; the API serves the catalog): returns,
    volatility, Alpha158 candle and rolling operators, TA-Lib indicators, volume and market cap,
    market context, cross-sectional ranks and z-scores, news sentiment, macro series, and the coin's
    perpetual swap (funding, basis, open interest; NULL for a coin without one). Each is
    computed only from what was known at the window's end and from a fixed trailing history, so
    a window's values are the same computed alone, in a backfill, or later. Missing bars are never
    filled: the features that need them are NULL and ``bars_missing`` counts them.

    Runs over the partition range (one window live, a day of windows in a backfill), reading the
    warm-up history it needs from ``price_data_real``, ``derivatives_data``, ``sentiment_data`` and
    ``macro_indicators`` in the warehouse. Key: (symbol, timestamp); ``feature_set_version`` on every row.
    """
    start, end = window_range(context)
    wh = warehouse.get()
    inputs = read_feature_inputs(wh, start, end, sentiment_model=config.sentiment_model or None)
    began = time.perf_counter()
    frame = compute_features(inputs.prices, inputs.sentiment, inputs.macro, start, end, derivatives=inputs.derivatives)
    compute_seconds = time.perf_counter() - began
    if frame.empty:
        context.log.warning("no price history in [%s, %s): nothing to compute", start, end)
    result = wh.write_partition(
        FEATURES.name, frame, start=start, end=end, run_id=context.run_id, code_version=FEATURE_SET_VERSION
    )
    complete = int((frame["bars_missing"] == 0).sum()) if len(frame) else 0
    return dg.MaterializeResult(
        metadata=write_metadata(
            FEATURES.table,
            result,
            start,
            end,
            feature_set_version=FEATURE_SET_VERSION,
            feature_count=len(FEATURE_NAMES),
            symbols=int(frame["symbol"].nunique()) if len(frame) else 0,
            rows_with_full_history=complete,
            lookback_windows=PRICE_LOOKBACK_WINDOWS,
            derivatives_lookback_windows=DERIVATIVES_LOOKBACK_WINDOWS,
            nan_ratio_by_family=dg.MetadataValue.json(nan_ratio_by_family(frame)),
            input_rows=dg.MetadataValue.json(inputs.row_counts()),
            read_seconds=round(inputs.seconds, 4),
            read_path=inputs.reader,
            compute_seconds=round(compute_seconds, 4),
            preview=preview_markdown(
                frame,
                columns=[
                    "symbol",
                    "timestamp",
                    "price",
                    "ret_1h",
                    "rsi_14",
                    "macd_hist",
                    "bb_pctb",
                    "sent_mean_24h",
                    "bars_missing",
                ],
            ),
        )
    )
