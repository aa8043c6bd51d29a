"""Thin Dagster ``ConfigurableResource`` wrappers over the plain warehouse and settings code."""

from __future__ import annotations

from dagster import ConfigurableResource

from resources.settings import load_settings
from resources.warehouse import Warehouse, get_warehouse


class WarehouseResource(ConfigurableResource):
    """The warehouse database (``CRYPTO_DB_URL``; SQLite under ``CRYPTO_HOME`` by default)."""

    db_url: str = ""

    def get(self) -> Warehouse:
        """The process-wide :class:`Warehouse` for this URL (one engine and pool)."""
        return get_warehouse(self.db_url or load_settings().db_url)
