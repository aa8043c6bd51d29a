"""The sensor that evaluates the partition freshness checks, without launching runs.

Dagster's ``build_sensor_for_freshness_checks`` launches a run to evaluate a check each time its
deadline passes: with 5-minute windows, a run almost every minute, each holding a run slot that a
scheduled window then queues behind. This sensor asks the same question itself, in the daemon,
at the cost of two indexed queries per asset: is the window that closed before the latest
deadline (``crypto_assets/freshness_checks.py``) materialized? It reports the answer as a runless
``AssetCheckEvaluation`` of the asset's ``freshness_check`` (same check, description and metadata
as Dagster's own evaluation, so the UI's check history and the freshness alert sensor read it
alike), and only when the answer changes: a new window became due, or a late window arrived. A
late window is thus evaluated, and alerted, once; no run slot is ever taken.

A window that fell due before the platform started (the sensor's first tick, kept in its cursor)
is not late: it is recorded once it arrives (gap healing fills the last day at start), never as
a failure. A platform restarted after downtime is past its first tick, so what fell due while it
was down is late.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import dagster as dg

from crypto_assets.freshness_checks import FRESHNESS_CHECK_NAME, FreshnessRule
from resources.dagster_private import get_latest_completed_cron_tick

SENSOR_NAME = "freshness_checks_sensor"


def expected_partition(rule: FreshnessRule, now: datetime, instance: dg.DagsterInstance) -> tuple[str, datetime]:
    """The partition that must be committed at ``now``, and the deadline that made it due."""
    deadline = get_latest_completed_cron_tick(rule.deadline_cron, now.astimezone(UTC), "UTC")
    with dg.partition_loading_context(deadline, instance):
        window = rule.partitions_def.get_last_partition_window()
    if window is None:
        raise dg.DagsterInvariantViolationError(f"{rule.asset_key.to_user_string()} has no partition before {deadline}")
    return rule.partitions_def.get_partition_key_range_for_time_window(window).start, deadline


def evaluate_freshness(
    rule: FreshnessRule, now: datetime, instance: dg.DagsterInstance
) -> tuple[dg.AssetCheckEvaluation, datetime]:
    """The freshness check's verdict at ``now`` (is the latest due partition materialized?), and
    the deadline that made that partition due."""
    key, deadline = expected_partition(rule, now, instance)
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=rule.asset_key, asset_partitions=[key]), limit=1
    ).records
    passed = bool(records)
    metadata: dict[str, dg.RawMetadataValue] = {
        "expected_partition": key,
        "dagster/latest_cron_tick_timestamp": dg.MetadataValue.timestamp(deadline.timestamp()),
    }
    if passed:
        description = f"Asset is currently fresh, since partition {key} has been observed/materialized."
    elif instance.get_latest_materialization_event(rule.asset_key) is None:
        description = (
            f"The asset has never been observed/materialized. We currently expect partition {key} to have arrived."
        )
    else:
        description = f"Asset is overdue. We expected partition {key} to have arrived, and it has not."
        metadata["dagster/overdue_seconds"] = max(0.0, now.timestamp() - deadline.timestamp())
    evaluation = dg.AssetCheckEvaluation(
        asset_key=rule.asset_key,
        check_name=FRESHNESS_CHECK_NAME,
        passed=passed,
        metadata=metadata,
        severity=rule.severity,
        description=description,
    )
    return evaluation, deadline


def build_freshness_sensor(
    rules: Sequence[FreshnessRule], clock: Callable[[], datetime] | None = None
) -> dg.SensorDefinition:
    """The sensor over ``rules`` (``crypto_assets.freshness_checks.freshness_rules``); ``clock`` for tests."""
    now_of = clock or (lambda: datetime.now(UTC))

    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Evaluates each asset's partition freshness check (is the latest due window "
        "committed?) in the daemon and records it when the answer changes; launches no run.",
    )
    def freshness_checks_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        now = now_of()
        cursor = json.loads(context.cursor) if context.cursor else {}
        since = datetime.fromisoformat(cursor["since"]) if "since" in cursor else now
        seen: dict[str, list] = cursor.get("seen", {})
        events = []
        for rule in rules:
            evaluation, deadline = evaluate_freshness(rule, now, context.instance)
            if not evaluation.passed and deadline < since:
                continue  # due before the platform started: recorded once it arrives
            name = rule.asset_key.to_user_string()
            state = [evaluation.metadata["expected_partition"].value, evaluation.passed]
            if seen.get(name) != state:
                events.append(evaluation)
                seen[name] = state
        late = sorted(name for name, (_, passed) in seen.items() if not passed)
        message = f"recorded {len(events)} freshness evaluation(s); late: {', '.join(late) or 'none'}"
        cursor = {"since": since.isoformat(), "seen": seen}
        return dg.SensorResult(asset_events=events, cursor=json.dumps(cursor, sort_keys=True), skip_reason=message)

    return freshness_checks_sensor
