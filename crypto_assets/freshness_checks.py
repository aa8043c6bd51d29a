"""Freshness: a ``FreshnessPolicy`` on every live asset, and partition-aware freshness checks.

The policy (``FreshnessPolicy.time_window``) is what the UI shows on each asset; the instance's
freshness daemon evaluates it (``freshness: enabled: true`` in ``dagster.yaml``, the default,
and a running daemon: ``dagster dev`` starts one). It only knows *when* the asset last
materialized, so a backfill of last week makes a late asset look fresh. The partition-aware
checks (``build_time_partition_freshness_checks``) ask the question that matters instead: is the
window that closed before the deadline committed? Their failures are what the alerts send.

The checks are evaluated by ``freshness_checks_sensor`` (``sensors/freshness.py``) in the daemon,
from the same :class:`FreshnessRule` of each asset, without a run; they stay executable from the
UI, and run inside each ``five_minute_job`` run too.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import dagster as dg

from crypto_assets.partitions import DAILY_PARTITIONS, FIVE_MINUTE_PARTITIONS, offset_cron

# Dagster's name for each check of ``build_time_partition_freshness_checks``.
FRESHNESS_CHECK_NAME = "freshness_check"
# A 5-minute window is due this many minutes after it closes (the schedule starts it after 1).
FIVE_MINUTE_DEADLINE_MINUTES = 4
# A day of macro indicators is due at 03:00 UTC (the schedule starts it at 01:00).
DAILY_DEADLINE_CRON = "0 3 * * *"

FIVE_MINUTE_POLICY = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(minutes=15), warn_window=timedelta(minutes=10)
)
DAILY_POLICY = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=30), warn_window=timedelta(hours=26))


@dataclass(frozen=True)
class FreshnessRule:
    """When a partitioned asset's latest window is due: the deadline cron of its freshness check."""

    asset_key: dg.AssetKey
    partitions_def: dg.TimeWindowPartitionsDefinition
    deadline_cron: str
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR


def deadline_cron_for(partitions_def: dg.PartitionsDefinition | None) -> str | None:
    """The freshness deadline of an asset with these partitions (None: not checked)."""
    if partitions_def == FIVE_MINUTE_PARTITIONS:
        return offset_cron(FIVE_MINUTE_DEADLINE_MINUTES)
    if partitions_def == DAILY_PARTITIONS:
        return DAILY_DEADLINE_CRON
    return None


def freshness_rules(assets: Sequence[dg.AssetsDefinition]) -> list[FreshnessRule]:
    """A :class:`FreshnessRule` for each 5-minute and daily asset key of ``assets``."""
    rules: list[FreshnessRule] = []
    for asset in assets:
        cron = deadline_cron_for(asset.partitions_def)
        if cron is not None and isinstance(asset.partitions_def, dg.TimeWindowPartitionsDefinition):
            rules.extend(FreshnessRule(key, asset.partitions_def, cron) for key in asset.keys)
    return rules


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
    by_cron: dict[str, list[dg.AssetsDefinition]] = {}
    for asset in assets:
        cron = deadline_cron_for(asset.partitions_def)
        if cron is not None:
            by_cron.setdefault(cron, []).append(asset)
    checks: list[dg.AssetChecksDefinition] = []
    for cron, group in by_cron.items():
        checks += dg.build_time_partition_freshness_checks(
            assets=group, deadline_cron=cron, severity=dg.AssetCheckSeverity.ERROR
        )
    return checks
