"""Jobs and schedules: the 5-minute job over every live asset, and the daily macro job.

``five_minute_job`` selects the asset *groups* of the live assets (prices, derivatives, sentiment,
features), so an asset that joins one of those groups with the 5-minute partitions joins the job,
its schedule, its checks and the gap-healing sensor without another line here. Dagster orders the
steps by the assets' dependencies: prices, derivatives and news first, then sentiment, then
features.

Both jobs run their steps in the run's own process (``in_process_executor``): a step takes about
a second, while a step subprocess costs seconds of imports (pandas, torch), and the steps run in
dependency order with one slot a rate-limited pool anyway.

Retries live on the job, not on the assets: ``op_retry_policy`` retries a failed step inside its
run (a source outage, a dropped database connection), while ``run_retries`` in the instance's
``dagster.yaml`` re-launches a run whose worker died. Assets carry no ``retry_policy``, because
``materialize``/``execute_in_process`` always honour an asset's policy and would make every
fault test wait out its back-off.
"""

import json
from datetime import UTC, datetime, time, timedelta

import dagster as dg

from crypto_assets.catalog import FRESHNESS_CHECKS
from crypto_assets.partitions import DAILY_PARTITIONS, FIVE_MINUTE_PARTITIONS, offset_cron
from resources.dagster_private import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

FIVE_MINUTE_GROUPS = ("prices", "derivatives", "sentiment", "features")
MACRO_GROUPS = ("macro",)

# The schedule ticks this many minutes after each window closes, so that late bars and
# late-indexed articles of the window are in when it runs.
LATE_DATA_OFFSET_MINUTES = 1
FIVE_MINUTE_SCHEDULE_LAG = timedelta(minutes=LATE_DATA_OFFSET_MINUTES)
# The macro schedule runs each UTC day this long after it ends.
MACRO_SCHEDULE_LAG = timedelta(hours=1)

NETWORK_RETRY_POLICY = dg.RetryPolicy(
    max_retries=2,
    delay=30,
    backoff=dg.Backoff.EXPONENTIAL,
    jitter=dg.Jitter.PLUS_MINUS,
)

# The freshness checks are evaluated by their sensor (sensors/freshness.py), which knows when the
# platform started; inside a run they would judge the newest window while a backfill or a healing
# run works on older ones, and fail at start for windows due before the platform ever ran.
EVALUATED_BY_SENSOR = dg.AssetSelection.checks(*FRESHNESS_CHECKS)

WORKLOAD_TAG = "crypto/workload"
TRIGGER_TAG = "crypto/trigger"


def run_tags(workload: str) -> dict[str, str]:
    """Tags every run of a workload carries.

    ``crypto/workload`` can be named in the run coordinator's ``tag_concurrency_limits``, and the
    ``dagster-k8s/config`` tag labels the run's Kubernetes Job and Pod with it, so that
    ``kubectl get pods -l crypto/workload=five-minute`` (or a NetworkPolicy, or a cost report)
    can pick a workload's runs out of the run namespace.
    """
    labels = {WORKLOAD_TAG: workload}
    return {
        WORKLOAD_TAG: workload,
        "dagster-k8s/config": json.dumps(
            {
                "job_metadata": {"labels": labels},
                "pod_template_spec_metadata": {"labels": labels},
            }
        ),
    }


five_minute_job = dg.define_asset_job(
    name="five_minute_job",
    selection=dg.AssetSelection.groups(*FIVE_MINUTE_GROUPS) - EVALUATED_BY_SENSOR,
    partitions_def=FIVE_MINUTE_PARTITIONS,
    description=(
        "Every live asset for a 5-minute window (or a range of windows in a backfill), in "
        "dependency order, with their data-quality checks. Failed steps are retried in-run "
        "(op_retry_policy: 2 retries, 30 s exponential back-off with jitter); dead runs are "
        "re-launched by the instance's run_retries."
    ),
    tags=run_tags("five-minute"),
    op_retry_policy=NETWORK_RETRY_POLICY,
    executor_def=dg.in_process_executor,
)

macro_job = dg.define_asset_job(
    name="macro_job",
    selection=dg.AssetSelection.groups(*MACRO_GROUPS) - EVALUATED_BY_SENSOR,
    partitions_def=DAILY_PARTITIONS,
    description="The daily macro indicators (FRED, Yahoo) for one UTC day, or a range of days.",
    tags=run_tags("macro"),
    op_retry_policy=NETWORK_RETRY_POLICY,
    executor_def=dg.in_process_executor,
)


_built_schedule = dg.build_schedule_from_partitioned_job(
    five_minute_job,
    name="five_minute_partition_schedule",
    tags={TRIGGER_TAG: "schedule"},
)
# The job states its partitions, so the builder resolves the schedule at once (the unresolved kind,
# which cannot be evaluated, is for asset jobs that take their partitions from the assets).
if not isinstance(_built_schedule, dg.ScheduleDefinition):
    raise TypeError("five_minute_job must state its partitions_def")
_five_minute_partition_schedule: dg.ScheduleDefinition = _built_schedule


@dg.schedule(
    name="five_minute_schedule",
    cron_schedule=offset_cron(LATE_DATA_OFFSET_MINUTES),
    execution_timezone="UTC",
    job=five_minute_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def five_minute_schedule(context: dg.ScheduleEvaluationContext):
    """Runs ``five_minute_job`` for the window that just closed, a minute after it closes.

    The run request (partition, run key = partition key, tags) is the one
    ``build_schedule_from_partitioned_job`` makes for the tick's time; the builder itself cannot
    offset a ``*/5`` cron, so this schedule ticks at :01, :06, ... and delegates to it. The run key
    makes a tick retried after a daemon restart launch nothing twice.
    """
    return _five_minute_partition_schedule(context)


def build_macro_schedule(lookback_days: int) -> dg.ScheduleDefinition:
    """The schedule of ``macro_job``: 01:00 UTC over the trailing ``lookback_days``
    (``CRYPTO_MACRO_LOOKBACK_DAYS``) days."""

    @dg.schedule(
        name="macro_schedule",
        cron_schedule=f"0 {MACRO_SCHEDULE_LAG // timedelta(hours=1)} * * *",
        execution_timezone="UTC",
        job=macro_job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def macro_schedule(context: dg.ScheduleEvaluationContext):
        """Runs ``macro_job`` at 01:00 UTC over the trailing ``CRYPTO_MACRO_LOOKBACK_DAYS`` days.

        The range ends with the UTC day that just ended and starts that many days earlier (never
        before the first partition), in one run. Macro observations arrive late and get revised
        (CPI about six weeks after its month starts), so re-fetching the trailing range picks them
        up without a manual backfill; the asset merges by key and the features read publication
        dates, so a re-fetch never duplicates a row nor leaks a value into an earlier window.
        """
        days = macro_run_days(context.scheduled_execution_time, lookback_days)
        if not days:
            return dg.SkipReason("no complete UTC day inside the partitions yet")
        first, last = days[0], days[-1]
        return dg.RunRequest(
            run_key=f"{first}...{last}",
            tags={TRIGGER_TAG: "schedule", ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
        )

    return macro_schedule


def macro_run_days(tick: datetime, lookback_days: int) -> list[str]:
    """Daily partition keys a macro tick at ``tick`` covers: the last ``lookback_days`` complete days."""
    last_day = tick.astimezone(UTC).date() - timedelta(days=1)
    first = datetime.combine(last_day - timedelta(days=lookback_days - 1), time(), tzinfo=UTC)
    end = datetime.combine(last_day + timedelta(days=1), time(), tzinfo=UTC)
    first = max(first, DAILY_PARTITIONS.start.astimezone(UTC))
    if first >= end:
        return []
    return list(DAILY_PARTITIONS.get_partition_keys_in_time_window(dg.TimeWindow(first, end)))
