"""The sensor that evaluates the partition freshness checks, without launching runs.

Dagster's ``build_sensor_for_freshness_checks`` launches a run to evaluate a check each time its
deadline passes: with 5-minute windows, a run almost every minute, each holding a run slot that a
scheduled window then queues behind. This sensor asks the same question itself, in the daemon,
at the cost of two indexed queries per asset: is the window that closed before the latest
deadline (``crypto_assets/freshness.py``) materialized? It reports the answer as a runless
``AssetCheckEvaluation`` of the asset's ``freshness_check`` (same check, description and metadata
as Dagster's own evaluation, so the UI's check history and the freshness alert sensor read it
alike), and only when the answer changes: a new window became due, or a late window arrived. A
late window is thus evaluated, and alerted, once; no run slot is ever taken.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import dagster as dg

from crypto_assets.freshness import FreshnessRule
from resources.dagster_private import get_latest_completed_cron_tick
from sensors.alerts import FRESHNESS_CHECK_NAME

SENSOR_NAME = "freshness_checks_sensor"


def expected_partition(rule: FreshnessRule, now: datetime, instance: dg.DagsterInstance) -> tuple[str, datetime]:
    """The partition that must be committed at ``now``, and the deadline that made it due."""
    deadline = get_latest_completed_cron_tick(rule.deadline_cron, now.astimezone(UTC), "UTC")
    with dg.partition_loading_context(deadline, instance):
        window = rule.partitions_def.get_last_partition_window()
    if window is None:
        raise dg.DagsterInvariantViolationError(f"{rule.asset_key.to_user_string()} has no partition before {deadline}")
    return rule.partitions_def.get_partition_key_range_for_time_window(window).start, deadline


def evaluate_freshness(rule: FreshnessRule, now: datetime, instance: dg.DagsterInstance) -> dg.AssetCheckEvaluation:
    """The freshness check's verdict at ``now``: is the latest due partition materialized?"""
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
    return dg.AssetCheckEvaluation(
        asset_key=rule.asset_key,
        check_name=FRESHNESS_CHECK_NAME,
        passed=passed,
        metadata=metadata,
        severity=rule.severity,
        description=description,
    )


def build_freshness_sensor(
    rules: Sequence[FreshnessRule], clock: Callable[[], datetime] | None = None
) -> dg.SensorDefinition:
    """The sensor over ``rules`` (``crypto_assets.freshness.freshness_rules``); ``clock`` for tests."""
    now_of = clock or (lambda: datetime.now(UTC))

    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Evaluates each asset's partition freshness check (is the latest due window "
        "committed?) in the daemon and records it when the answer changes; launches no run.",
    )
    def freshness_checks_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        state: dict[str, list] = json.loads(context.cursor) if context.cursor else {}
        now = now_of()
        events = []
        for rule in rules:
            evaluation = evaluate_freshness(rule, now, context.instance)
            name = rule.asset_key.to_user_string()
            seen = [evaluation.metadata["expected_partition"].value, evaluation.passed]
            if state.get(name) != seen:
                events.append(evaluation)
                state[name] = seen
        late = sorted(name for name, (_, passed) in state.items() if not passed)
        message = f"recorded {len(events)} freshness evaluation(s); late: {', '.join(late) or 'none'}"
        return dg.SensorResult(asset_events=events, cursor=json.dumps(state, sort_keys=True), skip_reason=message)

    return freshness_checks_sensor
