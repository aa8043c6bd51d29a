"""The one ``Definitions`` of the platform: assets, resources, jobs, schedules, sensors.

:func:`build_definitions` hands every resource, check and schedule its values from one settings
object; ``defs`` is built from the settings this process loaded (:mod:`crypto_assets.loaded_settings`),
so the code server and each run worker read their environment once, when they load this module.
"""

from __future__ import annotations

import dagster as dg

from crypto_assets.catalog import ASSETS, FRESHNESS_CHECKS
from crypto_assets.checks import build_table_checks
from crypto_assets.derivatives import expected_perpetuals
from crypto_assets.features.lake_asset import lake_matches_warehouse
from crypto_assets.freshness_checks import freshness_rules
from crypto_assets.jobs import build_macro_schedule, five_minute_job, five_minute_schedule, macro_job
from crypto_assets.loaded_settings import LOADED
from crypto_assets.macro import MacroSourcesResource
from crypto_assets.maintenance import (
    backup_job,
    lake_maintenance_job,
    lake_maintenance_schedule,
    maintenance_schedules,
    retention_job,
)
from resources.config.settings import Settings
from resources.model.sentiment_scorers import SentimentModelResource
from resources.sources.derivatives_sources import DerivativesSourceResource
from resources.sources.news_sources import NewsSourcesResource
from resources.sources.price_sources import PriceSourceResource
from resources.storage.dagster_resources import LakeResource, MaintenanceResource, WarehouseResource
from sensors.alerts import ALERT_SENSORS, AlertResource
from sensors.freshness import build_freshness_sensor
from sensors.gaps import build_gap_sensor


def build_definitions(settings: Settings) -> dg.Definitions:
    """The platform's definitions with every resource, check and schedule taking its values from
    ``settings`` (:data:`crypto_assets.loaded_settings.LOADED` for the code location)."""
    price_source = PriceSourceResource.from_settings(settings)
    derivatives_source = DerivativesSourceResource.from_settings(settings)
    table_checks = build_table_checks(
        ASSETS,
        universe=price_source.coins(),
        snapshot_max_age_s=settings.snapshot_max_age_s,
        perpetuals=expected_perpetuals(derivatives_source),
    )
    return dg.Definitions(
        assets=ASSETS,
        # Every job, the UI's and CLI's implicit asset job included, runs its steps in the run's own
        # process: a step subprocess costs seconds of imports for a step of about a second.
        executor=dg.in_process_executor,
        asset_checks=[*table_checks, lake_matches_warehouse, *FRESHNESS_CHECKS],
        jobs=[five_minute_job, macro_job, backup_job, retention_job, lake_maintenance_job],
        schedules=[
            five_minute_schedule,
            build_macro_schedule(settings.macro_lookback_days),
            *maintenance_schedules(settings),
            lake_maintenance_schedule,
        ],
        sensors=[build_freshness_sensor(freshness_rules(ASSETS)), *ALERT_SENSORS, build_gap_sensor(ASSETS)],
        resources={
            "warehouse": WarehouseResource.from_settings(settings),
            "lake": LakeResource.from_settings(settings),
            "price_source": price_source,
            "derivatives_source": derivatives_source,
            "news_sources": NewsSourcesResource.from_settings(settings),
            "sentiment_model": SentimentModelResource.from_settings(settings),
            "macro_sources": MacroSourcesResource.from_settings(settings),
            "maintenance": MaintenanceResource.from_settings(settings),
            "alerts": AlertResource.from_settings(settings),
        },
    )


defs = build_definitions(LOADED)
