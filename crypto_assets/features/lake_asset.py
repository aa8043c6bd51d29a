"""The ``ml_features_lake`` asset: the committed feature windows copied into the Delta Lake table.

No ``from __future__ import annotations`` here: Dagster reads the resource annotations at import.
"""

import dagster as dg

from crypto_assets.checks import checked_range
from crypto_assets.common import OWNERS, window_range
from crypto_assets.partitions import FIVE_MINUTE_PARTITIONS
from resources.storage.dagster_resources import LakeResource, WarehouseResource
from resources.storage.feature_specs import FEATURE_SET_VERSION
from resources.storage.lake import LAKE_ASSET, LakeError, range_filter
from resources.storage.schema import FEATURES
from resources.storage.warehouse import to_naive_utc


@dg.asset(
    name=LAKE_ASSET,
    partitions_def=FIVE_MINUTE_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=288),
    deps=[dg.AssetKey(FEATURES.asset)],
    group_name="features",
    kinds={"deltalake", "parquet", "python"},
    owners=OWNERS,
    code_version=FEATURE_SET_VERSION,
)
def ml_features_lake(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, lake: LakeResource
) -> dg.MaterializeResult:
    """The committed rows of ``ml_features_materialized`` in a Delta Lake table, for fast columnar reads.

    For the run's window range (one window live, a day in a backfill) it reads the committed rows
    back from the warehouse and replaces the range in one Delta commit (predicate overwrite), so
    the lake holds exactly the warehouse's committed windows, one copy a key. The table lives at
    ``CRYPTO_LAKE_URI`` (``$CRYPTO_HOME/lake`` by default, or ``s3://...``), partitioned by
    ``date``; each commit records which warehouse commit each window's rows come from, so a window
    re-committed in the warehouse after its copy is known to be behind. A failed write leaves the
    warehouse committed and the window behind: the gap-healing sensor re-runs it.
    """
    start, end = window_range(context)
    feature_lake = lake.get()
    result = feature_lake.sync(warehouse.get(), start, end, context.run_id)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": result.rows,
            "dagster/uri": feature_lake.uri,
            "window_start": start.isoformat(),
            "window_end": end.isoformat(),
            "windows": result.windows,
            "windows_logged": result.windows_logged,
            "delta_version": result.version,
            "read_seconds": round(result.read_seconds, 4),
            "write_seconds": round(result.write_seconds, 4),
            "seconds": round(result.seconds, 4),
        }
    )


@dg.asset_check(
    asset=ml_features_lake,
    name="lake_matches_warehouse",
    blocking=False,
    description="The lake holds as many rows as partition_log commits in the run's windows, "
    "and every committed window at its current commit.",
)
def lake_matches_warehouse(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, lake: LakeResource
) -> dg.AssetCheckResult:
    """Row counts of the run's window range in the lake against ``partition_log``; windows behind."""
    wh = warehouse.get()
    window_range_ = checked_range(context, FIVE_MINUTE_PARTITIONS, FEATURES, wh)
    if window_range_ is None:
        return dg.AssetCheckResult(passed=True, description="no feature window committed yet")
    start, end = window_range_
    committed = wh.committed_windows(FEATURES.asset, start, end)
    expected = int(committed["row_count"].sum()) if len(committed) else 0
    feature_lake = lake.get()
    logged = feature_lake.windows(start, end)
    current = {to_naive_utc(w): to_naive_utc(c) for w, c in zip(logged["window_start"], logged["committed_at"])}
    behind = [
        to_naive_utc(w)
        for w, c in zip(committed["window_start"], committed["committed_at"])
        if current.get(to_naive_utc(w)) != to_naive_utc(c)
    ]
    try:
        lake_rows = feature_lake.table().to_pyarrow_dataset().count_rows(filter=range_filter(start, end))
    except LakeError:
        lake_rows = 0
    passed = lake_rows == expected and not behind
    text = (
        f"{lake_rows} lake rows for {expected} committed rows in {len(committed)} windows; "
        f"{len(behind)} window(s) behind"
    )
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=text,
        metadata={
            "window_start": start.isoformat(),
            "window_end": end.isoformat(),
            "lake_rows": lake_rows,
            "committed_rows": expected,
            "windows_behind": len(behind),
            "first_behind": behind[0].isoformat() if behind else "",
        },
    )
