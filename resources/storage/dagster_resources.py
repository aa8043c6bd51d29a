"""Thin Dagster ``ConfigurableResource`` wrappers over the plain warehouse and settings code."""

from __future__ import annotations

from dagster import ConfigurableResource

from resources.config.settings import load_settings
from resources.storage.lake import FeatureLake
from resources.storage.warehouse import Warehouse, get_warehouse


class WarehouseResource(ConfigurableResource):
    """The warehouse database (``CRYPTO_DB_URL``; SQLite under ``CRYPTO_HOME`` by default)."""

    db_url: str = ""

    def get(self) -> Warehouse:
        """The process-wide :class:`Warehouse` for this URL (one engine and pool)."""
        return get_warehouse(self.db_url or load_settings().db_url)


class LakeResource(ConfigurableResource):
    """The Delta Lake copy of the committed features (``CRYPTO_LAKE_URI``; ``$CRYPTO_HOME/lake`` by default)."""

    uri: str = ""

    def get(self) -> FeatureLake:
        """The features table of the lake, with the S3 settings and retention of the environment."""
        settings = load_settings()
        lake = FeatureLake.from_settings(settings)
        return FeatureLake(self.uri, lake.storage_options, retention_days=lake.retention_days) if self.uri else lake
