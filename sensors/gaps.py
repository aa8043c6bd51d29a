"""Gap healing: find windows of the recent horizon missing from ``partition_log`` and refill them.

Every 5 minutes the sensor compares, for each partitioned asset, the windows of its horizon (the
last day of 5-minute windows; the days of macro series the features read) with the windows
``partition_log`` holds. Missing windows are grouped into contiguous ranges that miss the same
assets, and each range becomes one run of the asset's job (``five_minute_job``, ``macro_job``) over
the missing assets and what depends on them (a range of up to a day of 5-minute windows is one
run, as in a backfill). Daily assets are requested first, so that the features healed in the same
tick read the macro series they need.

A window is left to its schedule until ``settle`` has passed since it closed, unless its schedule
tick came before the platform started (the sensor's first tick, kept in its cursor): those windows
will never get a scheduled run, so the first tick heals everything up to the window the schedule
runs next, and no window between start and the first schedule tick is lost.

Windows of an asset that reads a trailing history of its upstream assets (the features read a
day of prices and sentiment) are also stale, and re-run, when an upstream window inside their
lookback was committed after them: a price gap healed later, or late news written into its own
window. Otherwise a feature computed while a bar was missing would keep its NULLs for good.

It never asks twice for the same work: windows that a queued or running run, or a requested
backfill, already targets are left alone, and so, for an hour, are windows whose healing run
failed (the failure has been alerted; the source is probably down). At most a few runs are
requested a tick, newest windows first.

The lake copy of the features (``ml_features_lake``) is checked the same way, its windows read from
its own Delta log (:class:`WindowLogs`): a lake window is missing when no sync holds it, and stale
when its feature window was committed after the commit the lake copied.
"""

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import dagster as dg
import numpy as np
import pandas as pd

from crypto_assets.jobs import (
    FIVE_MINUTE_SCHEDULE_LAG,
    MACRO_SCHEDULE_LAG,
    TRIGGER_TAG,
    five_minute_job,
    macro_job,
)
from crypto_assets.partitions import DAILY_PARTITIONS, FIVE_MINUTE_PARTITIONS
from resources.dagster_private import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    BulkActionsFilter,
    BulkActionStatus,
    UnresolvedAssetJobDefinition,
)
from resources.storage.dagster_resources import LakeResource, WarehouseResource
from resources.storage.feature_specs import MACRO_LOOKBACK_DAYS
from resources.storage.lake import LAKE_ASSET, FeatureLake
from resources.storage.schema import CONTRACTS, FEATURES
from resources.storage.warehouse import Warehouse, to_naive_utc, utc_now
from resources.storage.windows import DAY, WINDOW, absent_windows, window_floor, window_starts

GAP_HEALING = "gap_healing"
# Assets computed from a trailing history of other assets: {asset: {upstream: lookback in windows}}.
HISTORY_LOOKBACKS: Mapping[str, Mapping[str, int]] = {
    **{c.asset: c.lookbacks for c in CONTRACTS if c.lookbacks},
    # A lake window copied before its feature window was re-committed is behind (lookback 1: itself).
    LAKE_ASSET: {FEATURES.asset: 1},
}
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dataclass(frozen=True)
class HealRequest:
    """One healing run: ``assets`` over the windows [start, end)."""

    assets: tuple[str, ...]
    start: datetime
    end: datetime
    windows: int


@dataclass(frozen=True)
class WindowLogs:
    """Where each asset's committed windows are recorded: ``partition_log``, and for the lake the Delta
    log (each sync commit names the warehouse commit it copied)."""

    warehouse: Warehouse
    lake: FeatureLake

    def of(self, asset: str, start: datetime, end: datetime) -> pd.DataFrame:
        """The windows ``asset`` holds in [start, end) with their ``committed_at``."""
        if asset == LAKE_ASSET:
            return self.lake.windows(start, end)
        return self.warehouse.committed_windows(asset, start, end)


def missing_windows(
    logs: WindowLogs, assets: Sequence[str], start: datetime, end: datetime, window: timedelta
) -> dict[datetime, set[str]]:
    """For each window of [start, end) that some asset lacks in its log (:class:`WindowLogs`): those assets."""
    missing: dict[datetime, set[str]] = {}
    for asset in assets:
        committed = logs.of(asset, start, end)
        for w in absent_windows(committed["window_start"] if len(committed) else (), start, end, window):
            missing.setdefault(w, set()).add(asset)
    return missing


def _committed_ns(logs: WindowLogs, asset: str, grid: pd.DatetimeIndex, window: timedelta) -> np.ndarray:
    """``committed_at`` of ``asset`` for each window of ``grid``, as float nanoseconds (NaN where not committed)."""
    log = logs.of(asset, grid[0].to_pydatetime(), (grid[-1] + window).to_pydatetime())
    if not len(log):
        return np.full(len(grid), np.nan)
    committed = pd.Series(
        pd.to_datetime(log["committed_at"]).astype("datetime64[ns]").astype("int64").to_numpy(float),
        index=pd.to_datetime(log["window_start"]).astype("datetime64[ns]"),
    )
    return committed.reindex(grid).to_numpy()


def stale_windows(
    logs: WindowLogs, lookbacks: Mapping[str, Mapping[str, int]], start: datetime, end: datetime, window: timedelta
) -> dict[datetime, set[str]]:
    """Committed windows of [start, end) of a history-reading asset that an upstream window in their
    lookback was committed after: ``{window: {asset}}``."""
    stale: dict[datetime, set[str]] = {}
    for asset, upstreams in lookbacks.items():
        grid = pd.date_range(start - (max(upstreams.values()) - 1) * window, end - window, freq=window, unit="ns")
        own = _committed_ns(logs, asset, grid, window)
        latest_upstream = np.full(len(grid), np.nan)
        for upstream, lookback in upstreams.items():
            committed = pd.Series(_committed_ns(logs, upstream, grid, window))
            latest_upstream = np.fmax(latest_upstream, committed.rolling(lookback, min_periods=1).max().to_numpy())
        with np.errstate(invalid="ignore"):
            behind = (latest_upstream > own) & (grid >= pd.Timestamp(start))
        for w in grid[behind]:
            stale.setdefault(w.to_pydatetime(), set()).add(asset)
    return stale


def plan_heal_requests(
    missing: Mapping[datetime, set[str]],
    covered: Mapping[str, set[datetime]],
    downstream: Mapping[str, set[str]],
    *,
    window: timedelta,
    max_windows_per_run: int,
    max_runs: int,
) -> list[HealRequest]:
    """Group the uncovered missing windows into runs: contiguous windows missing the same assets
    (plus everything downstream of them), at most ``max_windows_per_run`` a run, newest first."""
    todo: dict[datetime, frozenset[str]] = {}
    for w, assets in missing.items():
        left = {a for a in assets if w not in covered.get(a, set())}
        if left:
            todo[w] = frozenset(left | set().union(*(downstream.get(a, set()) for a in left)))
    requests: list[HealRequest] = []
    run_start: datetime | None = None
    run_assets: frozenset[str] = frozenset()
    count = 0
    for w in sorted(todo, reverse=True):
        contiguous = run_start is not None and w + window == run_start
        if contiguous and todo[w] == run_assets and count < max_windows_per_run:
            run_start, count = w, count + 1
            continue
        if run_start is not None:
            requests.append(HealRequest(tuple(sorted(run_assets)), run_start, run_start + count * window, count))
        run_start, run_assets, count = w, todo[w], 1
    if run_start is not None:
        requests.append(HealRequest(tuple(sorted(run_assets)), run_start, run_start + count * window, count))
    return requests[:max_runs]


def _key_window(partitions_def: dg.TimeWindowPartitionsDefinition, key: str) -> tuple[datetime, datetime]:
    window = partitions_def.time_window_for_partition_key(key)
    return to_naive_utc(window.start), to_naive_utc(window.end)


def _windows_of_tags(
    tags: Mapping[str, str], partitions_def: dg.TimeWindowPartitionsDefinition, window: timedelta
) -> list[datetime]:
    if tags.get(ASSET_PARTITION_RANGE_START_TAG) and tags.get(ASSET_PARTITION_RANGE_END_TAG):
        start, _ = _key_window(partitions_def, tags[ASSET_PARTITION_RANGE_START_TAG])
        _, end = _key_window(partitions_def, tags[ASSET_PARTITION_RANGE_END_TAG])
        return window_starts(start, end, window)
    if tags.get("dagster/partition"):
        return [_key_window(partitions_def, tags["dagster/partition"])[0]]
    return []


def covered_windows(
    instance: dg.DagsterInstance,
    job_name: str,
    assets: Sequence[str],
    partitions_def: dg.TimeWindowPartitionsDefinition,
    window: timedelta,
    start: datetime,
    end: datetime,
    cooldown_since: datetime,
) -> dict[str, set[datetime]]:
    """Windows of [start, end), per asset, that in-flight runs or requested backfills already
    target, or whose healing run failed after ``cooldown_since``."""
    covered: dict[str, set[datetime]] = {a: set() for a in assets}

    def cover(selection: Iterable[dg.AssetKey] | None, windows: Iterable[datetime]) -> None:
        targets = assets if selection is None else [k.to_user_string() for k in selection]
        windows = [w for w in windows if start <= w < end]
        for asset in targets:
            if asset in covered:
                covered[asset].update(windows)

    runs = list(instance.get_runs(dg.RunsFilter(statuses=IN_FLIGHT)))
    runs += instance.get_runs(
        dg.RunsFilter(
            tags={TRIGGER_TAG: GAP_HEALING},
            statuses=[dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED],
            updated_after=cooldown_since,
        )
    )
    for run in runs:
        if run.asset_selection is None and run.job_name != job_name:
            continue
        cover(run.asset_selection, _windows_of_tags(run.tags, partitions_def, window))

    for backfill in instance.get_backfills(filters=BulkActionsFilter(statuses=[BulkActionStatus.REQUESTED])):
        if backfill.is_asset_backfill:
            data = backfill.asset_backfill_data
            if data is None:  # a legacy serialized backfill: assume it covers all it selects
                cover(backfill.asset_selection, window_starts(start, end, window))
                continue
            for key, subset in data.target_subset.partitions_subsets_by_asset_key.items():
                cover([key], (_key_window(partitions_def, k)[0] for k in subset.get_partition_keys()))
        elif (
            backfill.partition_set_origin is not None
            and backfill.partition_set_origin.partition_set_name == f"{job_name}_partition_set"
        ):
            cover(backfill.asset_selection, (_key_window(partitions_def, k)[0] for k in backfill.partition_names or []))
    return covered


def _downstream(assets: Sequence[dg.AssetsDefinition], keys: set[str]) -> dict[str, set[str]]:
    """For each key, every key among ``keys`` that depends on it, directly or not."""
    children: dict[str, set[str]] = {k: set() for k in keys}
    for asset in assets:
        for spec in asset.specs:
            child = spec.key.to_user_string()
            for dep in spec.deps:
                parent = dep.asset_key.to_user_string()
                if parent in keys and child in keys:
                    children[parent].add(child)
    closure: dict[str, set[str]] = {}
    for key in keys:
        seen: set[str] = set()
        stack = list(children[key])
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(children[node])
        closure[key] = seen
    return closure


@dataclass(frozen=True)
class HealTarget:
    """One partitioning the sensor heals: the job that runs it, its windows and their timing.

    ``schedule_lag``: how long after a window closes its schedule runs it; ``settle``: how long
    after it closes the schedule's run and its retries have before the window counts as missing.
    """

    job: UnresolvedAssetJobDefinition
    partitions_def: dg.TimeWindowPartitionsDefinition
    window: timedelta
    horizon: timedelta
    schedule_lag: timedelta
    settle: timedelta
    max_windows_per_run: int


FIVE_MINUTE_TARGET = HealTarget(
    job=five_minute_job,
    partitions_def=FIVE_MINUTE_PARTITIONS,
    window=WINDOW,
    horizon=timedelta(days=1),
    schedule_lag=FIVE_MINUTE_SCHEDULE_LAG,
    settle=timedelta(minutes=10),
    max_windows_per_run=288,
)
# The days of macro series the features of the newest window read, within the partitions.
DAILY_TARGET = HealTarget(
    job=macro_job,
    partitions_def=DAILY_PARTITIONS,
    window=DAY,
    horizon=timedelta(days=MACRO_LOOKBACK_DAYS),
    schedule_lag=MACRO_SCHEDULE_LAG,
    settle=MACRO_SCHEDULE_LAG + timedelta(hours=2),
    max_windows_per_run=366,
)


@dataclass(frozen=True)
class TargetGaps:
    """What one tick found for one target: missing and stale windows, and the runs it plans."""

    missing: int
    stale: int
    plan: list[HealRequest]

    def describe(self, target: HealTarget) -> str:
        found = [f"{n} {kind}" for n, kind in ((self.missing, "missing"), (self.stale, "stale")) if n]
        return f"{target.job.name}: {' and '.join(found)} window(s)"


def find_gaps(
    target: HealTarget,
    keys: Sequence[str],
    downstream: Mapping[str, set[str]],
    lookbacks: Mapping[str, Mapping[str, int]],
    logs: WindowLogs,
    instance: dg.DagsterInstance,
    *,
    now: datetime,
    since: datetime,
    retry_cooldown: timedelta,
    max_runs: int,
) -> TargetGaps | None:
    """The gaps of ``target``'s ``keys`` at ``now`` on a platform running since ``since``, with the
    runs that heal them (None: no eligible window)."""
    w = target.window
    # Windows whose schedule tick came before the platform started, and those it had time to run.
    end = min(
        window_floor(now, w), max(window_floor(now - target.settle, w), window_floor(since - target.schedule_lag, w))
    )
    start = max(to_naive_utc(target.partitions_def.start), window_floor(now - target.horizon, w))
    if end <= start or not keys:
        return None
    missing = missing_windows(logs, keys, start, end, w)
    stale = stale_windows(logs, {a: up for a, up in lookbacks.items() if a in keys}, start, end, w)
    todo = {window: set(assets) for window, assets in missing.items()}
    for window, assets in stale.items():
        todo.setdefault(window, set()).update(assets)
    plan = []
    if todo:
        covered = covered_windows(
            instance, target.job.name, keys, target.partitions_def, w, start, end, now - retry_cooldown
        )
        plan = plan_heal_requests(
            todo, covered, downstream, window=w, max_windows_per_run=target.max_windows_per_run, max_runs=max_runs
        )
    return TargetGaps(len(missing), len(set(stale) - set(missing)), plan)


def build_gap_sensor(
    assets: Sequence[dg.AssetsDefinition],
    *,
    targets: Sequence[HealTarget] = (DAILY_TARGET, FIVE_MINUTE_TARGET),
    max_runs_per_tick: int = 4,
    retry_cooldown: timedelta = timedelta(hours=1),
    clock: Callable[[], datetime] = utc_now,
    lookbacks: Mapping[str, Mapping[str, int]] = HISTORY_LOOKBACKS,
    name: str = "gap_healing_sensor",
) -> dg.SensorDefinition:
    """The gap-healing sensor over the assets of ``assets`` partitioned like one of ``targets``,
    requested in the order of ``targets``.

    ``partition_log.asset`` is each asset's key (``write_partition``'s default: the table name).
    The cursor holds when the sensor first ticked: the platform's start.
    """
    keys = [
        sorted(
            key.to_user_string() for asset in assets if asset.partitions_def == t.partitions_def for key in asset.keys
        )
        for t in targets
    ]
    downstream = [_downstream(assets, set(k)) for k in keys]

    @dg.sensor(
        name=name,
        jobs=[target.job for target in targets],
        minimum_interval_seconds=int(WINDOW.total_seconds()),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Requests runs of "
            + ", ".join(f"{t.job.name} for windows of the last {t.horizon}" for t in targets)
            + " missing from partition_log (deleted, failed or never run) or stale, never for windows a run or "
            f"backfill already targets; at most {max_runs_per_tick} runs a tick."
        ),
    )
    def gap_healing(
        context: dg.SensorEvaluationContext, warehouse: WarehouseResource, lake: LakeResource
    ) -> dg.SensorResult:
        now = clock()
        since = datetime.fromisoformat(json.loads(context.cursor)["since"]) if context.cursor else now
        cursor = json.dumps({"since": since.isoformat()})
        logs = WindowLogs(warehouse.get(), lake.get())
        found: list[str] = []
        requests: list[dg.RunRequest] = []
        for target, target_keys, target_downstream in zip(targets, keys, downstream):
            gaps = find_gaps(
                target,
                target_keys,
                target_downstream,
                lookbacks,
                logs,
                context.instance,
                now=now,
                since=since,
                retry_cooldown=retry_cooldown,
                max_runs=max_runs_per_tick - len(requests),
            )
            if gaps is None or not (gaps.missing or gaps.stale):
                continue
            found.append(gaps.describe(target))
            requests += [heal_run_request(r, target) for r in gaps.plan]
        if not found:
            return dg.SensorResult(skip_reason="no gaps", cursor=cursor)
        if not requests:
            return dg.SensorResult(skip_reason=f"{'; '.join(found)}, all already being handled", cursor=cursor)
        context.log.info("%s; requesting %d healing run(s)", "; ".join(found), len(requests))
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return gap_healing


def heal_run_request(request: HealRequest, target: HealTarget) -> dg.RunRequest:
    """The run request of one healing run: a partition, or a partition range, of the target's job."""
    fmt = target.partitions_def.fmt
    first = request.start.strftime(fmt)
    last = (request.end - target.window).strftime(fmt)
    selection = [dg.AssetKey.from_user_string(a) for a in request.assets]
    tags = {TRIGGER_TAG: GAP_HEALING}
    if request.windows == 1:
        return dg.RunRequest(job_name=target.job.name, partition_key=first, asset_selection=selection, tags=tags)
    return dg.RunRequest(
        job_name=target.job.name,
        asset_selection=selection,
        tags={**tags, ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
    )
