"""The ``price_data_real`` asset: one row per (symbol, 5-minute window)."""

import dagster as dg

from crypto_assets.common import OWNERS, preview_markdown, run_deadline, window_range, write_metadata
from crypto_assets.partitions import FIVE_MINUTE_PARTITIONS
from resources.retry_policy import DeadlineExceeded
from resources.sources.price_sources import PriceSourceResource, validate_prices
from resources.storage.dagster_resources import WarehouseResource
from resources.storage.schema import PRICES

PRICES_CODE_VERSION = "2"


@dg.asset(
    partitions_def=FIVE_MINUTE_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=288),
    group_name="prices",
    kinds={"python", "pandas", "sql"},
    owners=OWNERS,
    code_version=PRICES_CODE_VERSION,
    pool="price_sources",
    tags={"crypto/network": "true"},
)
def price_data_real(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    price_source: PriceSourceResource,
) -> dg.MaterializeResult:
    """Prices of the ~124-coin universe for each 5-minute window: OHLCV bar and market fields.

    Offline (``CRYPTO_SOURCE=simulated``) the rows come from the deterministic simulated market;
    live, each coin's 5-minute bars from the first of ``CRYPTO_EXCHANGES`` that lists it (ccxt;
    an exchange that refuses or is unreachable is skipped for the run), with CoinGecko's market
    fields: the ``/coins/markets`` snapshot for the window that just closed (unless stale), the
    cached market history joined as of the window's end for every other window. ``source`` and
    ``quote`` say where each row came from and its currency. Runs over the partition range (one
    window, or a day of windows in a backfill); validates everything before writing; replaces the
    range in one transaction. A live run gives up (without step retries; gap healing re-runs the
    window) rather than wait on a source past its deadline (``CRYPTO_LIVE_RUN_DEADLINE_S`` after
    its window's end). Key: (symbol, window_start).
    """
    start, end = window_range(context)
    try:
        fetched = price_source.fetch(
            start, end, warehouse=warehouse.get(), deadline=run_deadline(context, price_source.live_run_deadline_s)
        )
    except DeadlineExceeded as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    frame = validate_prices(fetched.frame, start, end)
    result = warehouse.get().write_partition(
        PRICES.name, frame, start=start, end=end, run_id=context.run_id, code_version=PRICES_CODE_VERSION
    )
    if fetched.missing_symbols:
        context.log.warning(
            "%d symbol(s) missing from the source: %s",
            len(fetched.missing_symbols),
            "; ".join(
                f"{s} ({fetched.missing_reasons[s]})" if s in fetched.missing_reasons else s
                for s in fetched.missing_symbols
            ),
        )
    if fetched.stale_snapshots:
        context.log.warning(
            "%d coin(s) with a stale CoinGecko snapshot not used: %s",
            len(fetched.stale_snapshots),
            ", ".join(fetched.stale_snapshots),
        )
    return dg.MaterializeResult(
        metadata=write_metadata(
            PRICES.table,
            result,
            start,
            end,
            source=fetched.source,
            sources=dg.MetadataValue.json(fetched.sources()),
            symbols=int(frame["symbol"].nunique()) if len(frame) else 0,
            symbols_missing=dg.MetadataValue.json(fetched.missing_symbols),
            missing_reasons=dg.MetadataValue.json(fetched.missing_reasons),
            unknown_ids_ignored=dg.MetadataValue.json(fetched.unknown_ids),
            exchanges=dg.MetadataValue.json(fetched.exchanges),
            stale_snapshots=dg.MetadataValue.json(fetched.stale_snapshots),
            stale_snapshot_count=len(fetched.stale_snapshots),
            market_history=dg.MetadataValue.json(fetched.market_history),
            market_fields_complete_share=round(fetched.market_fields_share(), 4),
            http=dg.MetadataValue.json(fetched.http_stats),
            preview=preview_markdown(frame, columns=["symbol", "window_start", "close", "volume", "market_cap"]),
        )
    )
