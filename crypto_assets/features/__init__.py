"""ML features: the catalog (one spec a feature) and the pure computation over DataFrames.

Importing this package (or ``catalog``/``compute``) needs no Dagster: the API imports the catalog.
The Dagster asset lives in :mod:`crypto_assets.features.asset`.
"""
