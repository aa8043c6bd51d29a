"""The sensor that evaluates the partition freshness checks.

``build_sensor_for_freshness_checks`` launches a check run only when a result can have changed:
a check that passed is re-run once its ``fresh_until`` deadline has passed; one that failed is
re-run after the asset materializes again (the window arrived, or was healed). A late window is
thus evaluated, and alerted, once.
"""

from typing import Sequence

import dagster as dg

from crypto_assets.jobs import TRIGGER_TAG


def build_freshness_sensor(freshness_checks: Sequence[dg.AssetChecksDefinition]) -> dg.SensorDefinition:
    """The sensor over ``freshness_checks`` (from ``crypto_assets.freshness.build_freshness_checks``)."""
    return dg.build_sensor_for_freshness_checks(
        freshness_checks=freshness_checks,
        minimum_interval_seconds=60,
        name="freshness_checks_sensor",
        default_status=dg.DefaultSensorStatus.RUNNING,
        tags={TRIGGER_TAG: "freshness"},
    )
