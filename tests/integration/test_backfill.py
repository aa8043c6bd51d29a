"""A backfill of a day launched as the UI launches it makes one run, not 288, and that run fills the day.

The backfill is created by the UI's own GraphQL mutation (``launchPartitionBackfill``) against a
workspace over ``crypto_assets.definitions``, then handed to the backfill daemon's iteration,
in-process, on an instance whose run coordinator queues runs (as ``dagster.yaml`` configures).
"""

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster import DagsterEvent, DagsterEventType
from dagster_graphql.client.query import LAUNCH_PARTITION_BACKFILL_MUTATION
from dagster_graphql.test.utils import execute_dagster_graphql

from crypto_assets.definitions import build_definitions
from crypto_assets.partitions import FIVE_MINUTE_PARTITIONS, PARTITION_KEY_FORMAT
from resources.config.settings import load_settings
from resources.storage.warehouse import Warehouse
from testkit.dagster_private import (
    InProcessCodeLocationOrigin,
    InProcessWorkspaceLoadTarget,
    LoadableTargetOrigin,
    ReconstructableRepository,
    create_test_daemon_workspace_context,
    execute_backfill_iteration,
    execute_run,
)

ROOT = Path(__file__).resolve().parents[2]
DAY = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
KEYS = [(DAY + i * timedelta(minutes=5)).strftime(PARTITION_KEY_FORMAT) for i in range(288)]


def definitions_of_the_environment() -> dg.Definitions:
    """The definitions as a run worker started now loads them: from the environment's settings."""
    return build_definitions(load_settings())


@pytest.fixture
def workspace(sqlite_url, monkeypatch):
    monkeypatch.setenv("CRYPTO_DB_URL", sqlite_url)
    overrides = {"run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}}
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="crypto_assets.definitions", working_directory=str(ROOT))
    )
    with (
        dg.instance_for_test(overrides=overrides) as instance,
        create_test_daemon_workspace_context(InProcessWorkspaceLoadTarget(origin), instance) as context,
    ):
        yield instance, context


def launch(context, params: dict) -> str:
    result = execute_dagster_graphql(
        context.create_request_context(), LAUNCH_PARTITION_BACKFILL_MUTATION, {"backfillParams": params}
    )
    assert not result.errors, result.errors
    launched = result.data["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return launched["backfillId"]


def run_daemon(context, instance, backfill_id: str) -> list[dg.DagsterRun]:
    for _ in range(3):  # the daemon loops every 30 s; three iterations are plenty for one run
        list(execute_backfill_iteration(context, logging.getLogger("backfill-test")))
    return list(instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id})))


@pytest.mark.parametrize("asset", ["price_data_real", "derivatives_data"])
def test_asset_backfill_of_a_day_is_one_run_that_fills_the_day(workspace, sqlite_url, asset):
    instance, context = workspace
    assert FIVE_MINUTE_PARTITIONS.has_partition_key(KEYS[0]) and FIVE_MINUTE_PARTITIONS.has_partition_key(KEYS[-1])
    backfill_id = launch(context, {"assetSelection": [{"path": [asset]}], "partitionNames": KEYS})
    (run,) = run_daemon(context, instance, backfill_id)
    assert run.status == dg.DagsterRunStatus.QUEUED
    assert (run.tags["dagster/asset_partition_range_start"], run.tags["dagster/asset_partition_range_end"]) == (
        KEYS[0],
        KEYS[-1],
    )
    # Dequeue it as the run coordinator would, then run it here instead of in a subprocess.
    instance.report_dagster_event(
        DagsterEvent(DagsterEventType.RUN_STARTING.value, job_name=run.job_name), run_id=run.run_id
    )
    recon = ReconstructableRepository.for_module(
        __name__, definitions_of_the_environment.__name__, str(ROOT)
    ).get_reconstructable_job(run.job_name)
    finished = execute_run(recon, instance.get_run_by_id(run.run_id), instance)
    assert finished.success
    committed = Warehouse(sqlite_url).committed_windows(asset)
    assert len(committed) == 288 and set(committed.run_id) == {run.run_id}


def test_job_backfill_of_a_day_from_the_partitions_page_is_one_run(workspace):
    instance, context = workspace
    (location,) = context.create_request_context().code_location_names
    selector = {
        "partitionSetName": "five_minute_job_partition_set",
        "repositorySelector": {"repositoryLocationName": location, "repositoryName": "__repository__"},
    }
    backfill_id = launch(context, {"selector": selector, "partitionNames": KEYS})
    (run,) = run_daemon(context, instance, backfill_id)
    assert run.job_name == "five_minute_job"
    assert run.tags["dagster/asset_partition_range_end"] == KEYS[-1]
    assert run.tags["crypto/workload"] == "five-minute"
