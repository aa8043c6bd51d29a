"""Every private Dagster name the platform's code uses, imported here and only here.

``dagster._*`` modules are not Dagster's public API: any release may move or change them. So the
Dagster family is pinned to one exact release in pyproject.toml (``dagster==1.13.27``), the assets
and sensors import these names from this module, and an upgrade checks this one file (the tests
that exercise each name: ``tests/unit/test_alerts.py``, ``test_gaps.py``, ``test_jobs.py``, ``test_migrate.py``). Names
Dagster exports publicly (``dg.partition_loading_context``, ``dg.deserialize_value``) are used
from ``dagster`` instead. The tests' and benchmarks' own private names are in ``testkit/dagster_private.py``.
"""

from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, SqlEventLogStorageMetadata
from dagster._core.storage.runs.schema import RunStorageSqlMetadata
from dagster._core.storage.schedules.schema import ScheduleStorageSqlMetadata
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG, WILL_RETRY_TAG
from dagster._utils.schedules import get_latest_completed_cron_tick

__all__ = [
    "ASSET_PARTITION_RANGE_END_TAG",
    "ASSET_PARTITION_RANGE_START_TAG",
    "WILL_RETRY_TAG",
    "AssetCheckExecutionRecordStatus",
    "AssetCheckExecutionsTable",
    "BulkActionStatus",
    "BulkActionsFilter",
    "RunStorageSqlMetadata",
    "ScheduleStorageSqlMetadata",
    "SqlEventLogStorageMetadata",
    "UnresolvedAssetJobDefinition",
    "get_latest_completed_cron_tick",
]
