"""Thin Dagster ``ConfigurableResource`` wrappers over the plain warehouse, lake and maintenance code.

Each takes its values explicitly (``crypto_assets/definitions.py`` builds them from the settings
with ``from_settings``); none reads the environment itself. A credential is handed on as
``dg.EnvVar`` of its variable (:func:`resource_value`): Dagster resolves it when it builds the
resource, and shows only the variable's name in the UI and the run's config.
"""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource, DagsterInvariantViolationError, EnvVar, InitResourceContext
from pydantic import Field
from sqlalchemy.engine import make_url

from resources.config.settings import LAKE_STORAGE_FIELDS, Settings, is_secret, setting_default, setting_variable
from resources.storage.lake import FeatureLake
from resources.storage.warehouse import Warehouse, get_warehouse


def resource_value(settings: Settings, name: str) -> str:
    """The setting ``name`` as a resource field: "" when unset, a secret as ``EnvVar`` of its variable
    (validated by the settings, resolved by Dagster), anything else as its value."""
    value = getattr(settings, name)
    if not value:
        return ""
    return EnvVar(setting_variable(name)) if is_secret(name) else str(value)


class WarehouseResource(ConfigurableResource):
    """The warehouse database (``CRYPTO_DB_URL``; SQLite under ``CRYPTO_HOME`` by default)."""

    db_url: str = Field(description="SQLAlchemy URL of the warehouse")
    ui_instance: str = Field(
        default="",
        description="the Dagster instance directory the UI shows (DAGSTER_HOME); empty: not checked",
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> WarehouseResource:
        """The warehouse of ``settings`` (a URL with a password through ``CRYPTO_DB_URL``'s ``EnvVar``;
        a SQLite URL, which has none, as the settings made it absolute)."""
        has_password = make_url(settings.db_url).password is not None
        return cls(
            db_url=resource_value(settings, "db_url") if has_password else settings.db_url,
            ui_instance=str(settings.instance_dir),
        )

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Refuse a run on another instance than the UI's while the UI's exists (the `dagster`
        command without DAGSTER_HOME runs on a throw-away one): its windows would be written, and
        the UI would never know."""
        ui_instance = Path(self.ui_instance).resolve() if self.ui_instance else None
        if context.instance is None or ui_instance is None or not (ui_instance / "dagster.yaml").exists():
            return
        if Path(context.instance.root_directory).resolve() != ui_instance:
            raise DagsterInvariantViolationError(
                f"this run is on the Dagster instance {context.instance.root_directory} (a throw-away one "
                f"when DAGSTER_HOME is not set), not on the UI's, {ui_instance}: the UI would never see "
                f"what it writes. Run the command through scripts/dagster.sh, or set DAGSTER_HOME={ui_instance}"
            )

    def get(self) -> Warehouse:
        """The process-wide :class:`Warehouse` for this URL (one engine and pool)."""
        return get_warehouse(self.db_url)


class LakeResource(ConfigurableResource):
    """The Delta Lake copy of the committed features (``CRYPTO_LAKE_URI``; ``$CRYPTO_HOME/lake`` by default)."""

    uri: str = Field(description="a directory, or s3://bucket/prefix")
    retention_days: int = Field(default=setting_default("lake_retention_days"), description="days of old versions")
    # The S3 settings of an s3:// lake (delta-rs storage options; empty: not passed on).
    aws_access_key_id: str = ""
    aws_secret_access_key: str = ""
    aws_session_token: str = ""
    aws_region: str = ""
    aws_endpoint_url: str = ""
    aws_allow_http: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> LakeResource:
        """The lake of ``settings``: its location, retention and S3 settings."""
        return cls(
            uri=settings.lake_location,
            retention_days=settings.lake_retention_days,
            **{name: resource_value(settings, name) for name in LAKE_STORAGE_FIELDS},
        )

    def get(self) -> FeatureLake:
        """The features table of the lake."""
        options = {setting_variable(name): getattr(self, name) for name in LAKE_STORAGE_FIELDS}
        storage = {variable: value for variable, value in options.items() if value}
        return FeatureLake(self.uri, storage, retention_days=self.retention_days)


class MaintenanceResource(ConfigurableResource):
    """Where ``backup_job`` writes (``CRYPTO_BACKUP_DIR``; unset: no backup), how many days of windows
    ``retention_job`` keeps (``CRYPTO_RETENTION_DAYS``; unset: all) and of runs (``CRYPTO_RUN_RETENTION_DAYS``;
    unset: back to the first partition of ``CRYPTO_PARTITION_START``)."""

    backup_dir: str | None = None
    retention_days: int | None = None
    run_retention_days: int | None = None
    partition_start: str = Field(default=setting_default("partition_start"))

    @classmethod
    def from_settings(cls, settings: Settings) -> MaintenanceResource:
        """The maintenance settings of ``settings``."""
        return cls(
            backup_dir=settings.backup_dir,
            retention_days=settings.retention_days,
            run_retention_days=settings.run_retention_days,
            partition_start=settings.partition_start,
        )
