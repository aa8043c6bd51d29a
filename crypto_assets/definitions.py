"""The one ``Definitions`` of the platform: assets, resources, jobs, schedules, sensors."""

from __future__ import annotations

import dagster as dg

from crypto_assets.checks import build_table_checks
from crypto_assets.features.asset import ml_features_materialized
from crypto_assets.features.lake_asset import lake_matches_warehouse, ml_features_lake
from crypto_assets.freshness import build_freshness_checks, freshness_rules, with_freshness_policies
from crypto_assets.jobs import five_minute_job, five_minute_schedule, macro_job, macro_schedule
from crypto_assets.macro import MacroSourcesResource, macro_indicators
from crypto_assets.maintenance import (
    backup_job,
    backup_schedule,
    lake_maintenance_job,
    lake_maintenance_schedule,
    retention_job,
    retention_schedule,
)
from crypto_assets.news import news_items
from crypto_assets.prices import price_data_real
from crypto_assets.sentiment import sentiment_data
from resources.model.sentiment import SentimentModelResource
from resources.sources.news_sources import NewsSourcesResource
from resources.sources.price_sources import PriceSourceResource
from resources.storage.dagster_resources import LakeResource, WarehouseResource
from sensors.alerts import ALERT_SENSORS
from sensors.freshness import build_freshness_sensor
from sensors.gaps import build_gap_sensor

# Every asset; one added here joins its group's job, its table checks, freshness and gap healing.
ASSETS = with_freshness_policies(
    [
        price_data_real,
        news_items,
        sentiment_data,
        ml_features_materialized,
        ml_features_lake,
        macro_indicators,
    ]
)
FRESHNESS_CHECKS = build_freshness_checks(ASSETS)

defs = dg.Definitions(
    assets=ASSETS,
    # Every job, the UI's and CLI's implicit asset job included, runs its steps in the run's own
    # process: a step subprocess costs seconds of imports for a step of about a second.
    executor=dg.in_process_executor,
    asset_checks=[*build_table_checks(ASSETS), lake_matches_warehouse, *FRESHNESS_CHECKS],
    jobs=[five_minute_job, macro_job, backup_job, retention_job, lake_maintenance_job],
    schedules=[five_minute_schedule, macro_schedule, backup_schedule, retention_schedule, lake_maintenance_schedule],
    sensors=[build_freshness_sensor(freshness_rules(ASSETS)), *ALERT_SENSORS, build_gap_sensor(ASSETS)],
    resources={
        "warehouse": WarehouseResource(),
        "lake": LakeResource(),
        "price_source": PriceSourceResource(),
        "news_sources": NewsSourcesResource(),
        "sentiment_model": SentimentModelResource(),
        "macro_sources": MacroSourcesResource(),
    },
)
