"""Every asset of the platform, with its freshness policy, and the freshness checks built from them.

One asset added here joins its group's job, its table checks, freshness and gap healing.
"""

from __future__ import annotations

from crypto_assets.derivatives import derivatives_data
from crypto_assets.features.asset import ml_features_materialized
from crypto_assets.features.lake_asset import ml_features_lake
from crypto_assets.freshness_checks import build_freshness_checks, with_freshness_policies
from crypto_assets.macro import macro_indicators
from crypto_assets.news import news_items
from crypto_assets.prices import price_data_real
from crypto_assets.sentiment import sentiment_data

ASSETS = with_freshness_policies(
    [
        price_data_real,
        derivatives_data,
        news_items,
        sentiment_data,
        ml_features_materialized,
        ml_features_lake,
        macro_indicators,
    ]
)
FRESHNESS_CHECKS = build_freshness_checks(ASSETS)
