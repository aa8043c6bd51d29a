"""End to end through the UI's own API: ``dagster-webserver`` over the workspace, queried by GraphQL.

One webserver per module, on a free loopback port, with its own DAGSTER_HOME (the local
``dagster.yaml``) and CRYPTO_HOME; one window is materialized through the instance first.
"""

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from crypto_assets.definitions import build_definitions, defs
from crypto_assets.partitions import PARTITION_KEY_FORMAT
from resources.config.settings import load_settings
from testkit.fakes.loopback import free_port
from testkit.webserver import ROOT, Webserver, platform_env

MATERIALIZED = (datetime.now(UTC) - timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
KEY = MATERIALIZED.strftime(PARTITION_KEY_FORMAT)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Webserver]:
    home = tmp_path_factory.mktemp("platform")
    env = platform_env(home, "2d")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("DAGSTER_HOME", "CRYPTO_HOME", "CRYPTO_DB_URL"):
            patch.setenv(name, env[name])
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            result = (
                build_definitions(load_settings())
                .resolve_job_def("five_minute_job")
                .execute_in_process(instance=instance, partition_key=KEY, raise_on_error=False)
            )
            assert result.success
    web = Webserver(env, free_port(), home / "webserver.log")
    try:
        web.wait_ready()
        yield web
    finally:
        web.stop()


ASSET_NODES = """
{ assetNodes {
    assetKey { path } groupName description kinds opVersion isPartitioned hasAssetChecks
    dependencyKeys { path }
    owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
    internalFreshnessPolicy { ... on TimeWindowFreshnessPolicy { failWindowSeconds warnWindowSeconds } }
    assetChecksOrError { ... on AssetChecks { checks { name blocking } } }
} }
"""


def test_the_asset_graph_has_every_asset_edge_group_kind_and_check(server):
    nodes = {"/".join(n["assetKey"]["path"]): n for n in server.graphql(ASSET_NODES)["assetNodes"]}
    graph = defs.get_repository_def().asset_graph
    expected = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert set(nodes) == expected and "price_data_real" in nodes
    for key in graph.get_all_asset_keys():
        node = nodes[key.to_user_string()]
        assert {"/".join(d["path"]) for d in node["dependencyKeys"]} == {
            k.to_user_string() for k in graph.get(key).parent_keys
        }
        assert node["groupName"] and node["groupName"] != "default"
        assert node["description"] and node["kinds"] and node["opVersion"]
        assert node["owners"] == [{"team": "data-platform"}]
        checks = {c["name"] for c in node["assetChecksOrError"]["checks"]}
        assert checks == {k.name for k in graph.asset_check_keys if k.asset_key == key}
        if graph.get(key).partitions_def is not None:  # every live (partitioned) asset
            assert "freshness_check" in checks
            assert node["internalFreshnessPolicy"]["failWindowSeconds"] > 0
    price = nodes["price_data_real"]
    assert price["groupName"] == "prices" and {"python", "pandas", "sql"} <= set(price["kinds"])
    blocking = {c["name"] for c in price["assetChecksOrError"]["checks"] if c["blocking"]}
    assert blocking == {"unique_non_null_keys", "price_sanity"}
    assert price["internalFreshnessPolicy"] == {"failWindowSeconds": 900, "warnWindowSeconds": 600}


PARTITION_STATUS = """
query($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) { ... on AssetNode {
    partitionStats { numMaterialized numPartitions numFailed }
    assetPartitionStatuses { ... on TimePartitionStatuses { ranges { startKey endKey status } } }
    assetMaterializations(limit: 1) { partition metadataEntries { label } }
} } }
"""


def test_a_materialized_window_shows_in_the_partition_status(server):
    node = server.graphql(PARTITION_STATUS, {"path": ["price_data_real"]})["assetNodeOrError"]
    assert node["partitionStats"]["numMaterialized"] == 1
    assert node["partitionStats"]["numPartitions"] >= 2 * 288
    assert node["assetPartitionStatuses"]["ranges"] == [{"startKey": KEY, "endKey": KEY, "status": "MATERIALIZED"}]
    (latest,) = node["assetMaterializations"]
    assert latest["partition"] == KEY
    labels = {e["label"] for e in latest["metadataEntries"]}
    assert {"dagster/row_count", "dagster/column_schema", "window_start", "preview"} <= labels


REPOSITORY = """
{ repositoriesOrError { ... on RepositoryConnection { nodes {
    jobs { name }
    schedules { name cronSchedule executionTimezone scheduleState { status } }
    sensors { name sensorState { status } }
} } }
  instance { freshnessEvaluationEnabled runQueuingSupported }
}
"""


def test_schedules_sensors_and_jobs_are_present_and_on(server):
    data = server.graphql(REPOSITORY)
    (repo,) = data["repositoriesOrError"]["nodes"]
    assert "five_minute_job" in {j["name"] for j in repo["jobs"]}
    schedules = {s["name"]: s for s in repo["schedules"]}
    assert schedules["five_minute_schedule"]["cronSchedule"] == "1-59/5 * * * *"
    assert schedules["five_minute_schedule"]["executionTimezone"] == "UTC"
    assert schedules["five_minute_schedule"]["scheduleState"]["status"] == "RUNNING"
    sensors = {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}
    assert sensors == {
        name: "RUNNING"
        for name in (
            "freshness_checks_sensor",
            "check_alert_sensor",
            "freshness_alert_sensor",
            "run_failure_alert_sensor",
            "gap_healing_sensor",
        )
    }
    assert data["instance"] == {"freshnessEvaluationEnabled": True, "runQueuingSupported": True}


def test_definitions_validate_from_the_command_line(server):
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "definitions", "validate", "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT,
        env=server.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "All code locations passed validation" in done.stdout
