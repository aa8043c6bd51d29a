"""Freshness: a ``FreshnessPolicy`` on every live asset, and partition-aware freshness checks.

The policy (``FreshnessPolicy.time_window``) is what the UI shows on each asset; the instance's
freshness daemon evaluates it (``freshness: enabled: true`` in ``dagster.yaml``, the default,
and a running daemon: ``dagster dev`` starts one). It only knows *when* the asset last
materialized, so a backfill of last week makes a late asset look fresh. The partition-aware
checks (``build_time_partition_freshness_checks``) ask the question that matters instead: is the
window that closed before the deadline committed? Their failures are what the alerts send.
"""

from datetime import timedelta
from typing import Sequence

import dagster as dg

from crypto_assets.jobs import offset_cron
from crypto_assets.partitions import DAILY_PARTITIONS, FIVE_MINUTE_PARTITIONS

# A 5-minute window is due this many minutes after it closes (the schedule starts it after 1).
FIVE_MINUTE_DEADLINE_MINUTES = 4
# A day of macro indicators is due at 03:00 UTC (the schedule starts it at 01:00).
DAILY_DEADLINE_CRON = "0 3 * * *"

FIVE_MINUTE_POLICY = dg.FreshnessPolicy.time_window(fail_window=timedelta(minutes=15),
                                                    warn_window=timedelta(minutes=10))
DAILY_POLICY = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=30), warn_window=timedelta(hours=26))


def policy_for(partitions_def: dg.PartitionsDefinition | None) -> dg.FreshnessPolicy | None:
    """The freshness policy of an asset with these partitions (None: not a live asset)."""
    if partitions_def == FIVE_MINUTE_PARTITIONS:
        return FIVE_MINUTE_POLICY
    if partitions_def == DAILY_PARTITIONS:
        return DAILY_POLICY
    return None


def with_freshness_policies(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """``assets`` with the live-asset policy set on every spec that declares none of its own."""

    def add_policy(spec: dg.AssetSpec) -> dg.AssetSpec:
        policy = policy_for(spec.partitions_def)
        if spec.freshness_policy is not None or policy is None:
            return spec
        return spec.replace_attributes(freshness_policy=policy)

    return [asset.map_asset_specs(add_policy) for asset in assets]


def build_freshness_checks(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetChecksDefinition]:
    """A ``freshness_check`` on each 5-minute and daily asset: is the latest due window committed?"""
    five_minute = [a for a in assets if a.partitions_def == FIVE_MINUTE_PARTITIONS]
    daily = [a for a in assets if a.partitions_def == DAILY_PARTITIONS]
    checks: list[dg.AssetChecksDefinition] = []
    if five_minute:
        checks += dg.build_time_partition_freshness_checks(
            assets=five_minute, deadline_cron=offset_cron(FIVE_MINUTE_DEADLINE_MINUTES),
            severity=dg.AssetCheckSeverity.ERROR)
    if daily:
        checks += dg.build_time_partition_freshness_checks(
            assets=daily, deadline_cron=DAILY_DEADLINE_CRON, severity=dg.AssetCheckSeverity.ERROR)
    return checks
