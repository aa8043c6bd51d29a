"""The ``derivatives_data`` asset: one row per (coin with a perpetual swap, 5-minute window)."""

import dagster as dg
import pandas as pd

from crypto_assets.common import OWNERS, preview_markdown, run_deadline, window_range, write_metadata
from crypto_assets.partitions import FIVE_MINUTE_PARTITIONS
from resources.retry_policy import DeadlineExceeded
from resources.sources.derivatives_sources import DerivativesSourceResource, validate_derivatives
from resources.sources.simulated import has_simulated_perpetual
from resources.storage.dagster_resources import WarehouseResource
from resources.storage.schema import DERIVATIVES

DERIVATIVES_CODE_VERSION = "1"


@dg.asset(
    partitions_def=FIVE_MINUTE_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=288),
    group_name="derivatives",
    kinds={"python", "pandas", "sql"},
    owners=OWNERS,
    code_version=DERIVATIVES_CODE_VERSION,
    pool="derivatives_sources",
    tags={"crypto/network": "true"},
)
def derivatives_data(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    derivatives_source: DerivativesSourceResource,
) -> dg.MaterializeResult:
    """Perpetual swaps of the universe's coins for each 5-minute window: mark/index bars, funding, open interest.

    A row is one coin's perpetual on one exchange for window [ws, ws+5min): the contract (ccxt
    symbol) and its settle currency; the mark and index price bars of the window and the premium
    (mark close over index close, minus one); the funding rate of the latest settlement strictly
    before the window's end (``funding_time``) as a fraction per interval; the predicted next rate
    and its time as observed at the window's end (live only: NULL in windows backfilled from
    before the live observation); the funding interval in hours; open interest in contracts and
    in settle currency as of the latest observation at or before the window's end. Nothing a row
    holds was published after its window closed.

    Offline (``CRYPTO_SOURCE=simulated``) the rows come from the simulated market's perpetuals;
    live, from the first of ``CRYPTO_DERIVATIVES_EXCHANGES`` that lists the coin's perpetual
    (ccxt). A coin no configured exchange lists is counted (``no_perpetual``), not an error; a coin
    an exchange refused (a delisted or invalid pair) is reported missing with the exchange's
    reason, and the run goes on. Runs over the partition range (a window, or a day in a backfill),
    validates everything, replaces the range in one transaction; a live run gives up past its
    deadline (``CRYPTO_LIVE_RUN_DEADLINE_S`` after its window's end) and gap healing re-runs it.
    Key: (symbol, window_start).
    """
    start, end = window_range(context)
    try:
        fetched = derivatives_source.fetch(
            start, end, deadline=run_deadline(context, derivatives_source.live_run_deadline_s)
        )
    except DeadlineExceeded as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    frame = validate_derivatives(fetched.frame, start, end)
    result = warehouse.get().write_partition(
        DERIVATIVES.name, frame, start=start, end=end, run_id=context.run_id, code_version=DERIVATIVES_CODE_VERSION
    )
    served = sorted(frame["symbol"].unique()) if len(frame) else []
    if fetched.missing_reasons:
        context.log.warning(
            "%d coin(s) with a perpetual missing: %s",
            len(fetched.missing_reasons),
            "; ".join(f"{s} ({reason})" for s, reason in sorted(fetched.missing_reasons.items())),
        )
    for exchange, state in fetched.exchanges.items():
        if state.get("refused"):
            context.log.warning("%s refused this run: %s", exchange, state.get("detail"))
    return dg.MaterializeResult(
        metadata=write_metadata(
            DERIVATIVES.table,
            result,
            start,
            end,
            source=fetched.source,
            perpetuals=len(served) + len(set(fetched.missing_reasons) - set(served)),
            symbols=len(served),
            symbols_served=dg.MetadataValue.json(served),
            no_perpetual=len(fetched.no_perpetual),
            no_perpetual_symbols=dg.MetadataValue.json(sorted(fetched.no_perpetual)),
            symbols_missing=dg.MetadataValue.json(sorted(fetched.missing_reasons)),
            missing_reasons=dg.MetadataValue.json(fetched.missing_reasons),
            exchanges=dg.MetadataValue.json(fetched.exchanges),
            rows_by_exchange=dg.MetadataValue.json(rows_by(frame, "exchange")),
            complete_rows_share=round(complete_share(frame), 4),
            preview=preview_markdown(
                frame, columns=["symbol", "window_start", "exchange", "mark_close", "funding_rate", "open_interest"]
            ),
        )
    )


def rows_by(frame: pd.DataFrame, column: str) -> dict[str, int]:
    """Row counts of ``frame`` per value of ``column``."""
    return {str(k): int(v) for k, v in frame[column].value_counts().sort_index().items()} if len(frame) else {}


def complete_share(frame: pd.DataFrame) -> float:
    """The share of ``frame``'s rows with every field filled (1.0 for no rows)."""
    return float(frame.notna().all(axis=1).mean()) if len(frame) else 1.0


def expected_perpetuals(source: DerivativesSourceResource) -> frozenset[str] | None:
    """The coins that must have a ``derivatives_data`` row in every window when known up front:
    the simulated market's perpetuals offline; None live (each run's metadata says which coins were
    served or missing)."""
    if source.mode != "simulated":
        return None
    return frozenset(c.symbol for c in source.coins() if has_simulated_perpetual(c))
