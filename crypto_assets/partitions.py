"""Partition definitions shared by every asset.

One 5-minute ``TimeWindowPartitionsDefinition`` (UTC, key = the window's start) for the live
assets, and a daily one for ``macro_indicators``. The first partition comes from
``CRYPTO_PARTITION_START`` (an ISO date or a rolling horizon such as ``90d``, aligned to UTC
midnight so it is stable within a day); rows older than it stay in the tables and the API.
"""

from __future__ import annotations

from datetime import timedelta

from dagster import DailyPartitionsDefinition, TimeWindowPartitionsDefinition

from crypto_assets.loaded_settings import LOADED
from resources.config.settings import Settings
from resources.storage.windows import WINDOW

FIVE_MINUTE_CRON = f"*/{WINDOW // timedelta(minutes=1)} * * * *"
PARTITION_KEY_FORMAT = "%Y-%m-%d-%H:%M"


def offset_cron(minutes: int) -> str:
    """A cron that ticks every 5 minutes, ``minutes`` (0-4) after each window boundary."""
    if not 0 <= minutes < 5:
        raise ValueError("the offset must fall inside the 5-minute window: 0 to 4 minutes")
    return f"{minutes}-59/5 * * * *"


def five_minute_partitions(settings: Settings) -> TimeWindowPartitionsDefinition:
    """The 5-minute partitions of every live asset."""
    return TimeWindowPartitionsDefinition(
        cron_schedule=FIVE_MINUTE_CRON,
        start=settings.partition_start_datetime(),
        timezone="UTC",
        fmt=PARTITION_KEY_FORMAT,
    )


def daily_partitions(settings: Settings) -> DailyPartitionsDefinition:
    """The daily partitions of ``macro_indicators``, over the same horizon."""
    return DailyPartitionsDefinition(start_date=settings.partition_start_datetime(), timezone="UTC")


FIVE_MINUTE_PARTITIONS = five_minute_partitions(LOADED)
DAILY_PARTITIONS = daily_partitions(LOADED)
