"""The one ``Definitions`` of the platform: assets, resources, jobs, schedules, sensors."""

from __future__ import annotations

import dagster as dg

from crypto_assets.prices import price_data_real
from resources.dagster_resources import WarehouseResource
from resources.price_sources import PriceSourceResource

defs = dg.Definitions(
    assets=[price_data_real],
    resources={
        "warehouse": WarehouseResource(),
        "price_source": PriceSourceResource(),
    },
)
