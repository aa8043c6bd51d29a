"""ML features: the pure computation over DataFrames, and the assets that store them.

The catalog (one spec a feature, the columns of ``ml_features_materialized``) lives below, in
:mod:`resources.storage.feature_specs`. Importing ``compute`` needs no Dagster; the Dagster
assets live in :mod:`crypto_assets.features.asset` and :mod:`crypto_assets.features.lake_asset`.
"""
