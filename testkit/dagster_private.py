"""Every private Dagster name the tests and benchmarks use beyond the platform's own, imported here and only here.

Test utilities, the daemon's backfill iteration, instance config validation and run origins are
``dagster._*`` names that any release may move; Dagster is pinned exactly in pyproject.toml for
that reason, and an upgrade checks this file and ``resources/dagster_private.py`` (the names the
platform's code uses, which tests import from there).
"""

from dagster._config import process_config, validate_config
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.events import StepMaterializationData
from dagster._core.execution.api import create_execution_plan, execute_run
from dagster._core.execution.backfill import PartitionBackfill
from dagster._core.instance.config import dagster_instance_config, storage_config_schema
from dagster._core.instance.ref import InstanceRef
from dagster._core.launcher import LaunchRunContext
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.remote_origin import (
    GrpcServerCodeLocationOrigin,
    InProcessCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import InstigatorType, TickStatus
from dagster._core.test_utils import create_run_for_test, create_test_daemon_workspace_context, freeze_time
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.backfill import execute_backfill_iteration
from dagster._serdes import class_from_code_pointer

__all__ = [
    "GrpcServerCodeLocationOrigin",
    "RemoteJobOrigin",
    "RemoteRepositoryOrigin",
    "InProcessCodeLocationOrigin",
    "InProcessWorkspaceLoadTarget",
    "InstanceRef",
    "InstigatorType",
    "JobPythonOrigin",
    "LaunchRunContext",
    "LoadableTargetOrigin",
    "ModuleCodePointer",
    "PartitionBackfill",
    "ReconstructableRepository",
    "RepositoryPythonOrigin",
    "StepMaterializationData",
    "TickStatus",
    "class_from_code_pointer",
    "create_execution_plan",
    "create_run_for_test",
    "create_test_daemon_workspace_context",
    "dagster_instance_config",
    "execute_backfill_iteration",
    "execute_run",
    "freeze_time",
    "process_config",
    "storage_config_schema",
    "validate_config",
]
