"""A release of the Helm chart on the project's test cluster, driven as a user would drive it.

The cluster is the one ``testkit/cluster/up.sh`` brings up (its facts in ``$CLUSTER_STATE/env``);
the images are the ones ``testkit/cluster/stage.sh`` builds from the Dockerfile. A
:class:`Release` installs the chart with ``helm`` into its own namespace against its own empty
databases on the cluster's MariaDB, and talks to it through its Services: the webserver's GraphQL
(runs, backfills, sensors) and the gateway's HTTP API. Used by ``tests/cluster/`` and
``benchmarks/bench_k8s_runs.py``.
"""

from __future__ import annotations

import functools
import os
import shlex
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pymysql
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from crypto_assets.partitions import PARTITION_KEY_FORMAT
from resources.storage.windows import WINDOW

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "crypto-data-platform"
VALUES = Path(__file__).with_name("values.yaml")
STATE = Path(os.environ.get("CLUSTER_STATE", "/var/lib/crypto-cluster"))
HERE = Path(__file__).resolve().parent

TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
RUN_QUERY = """
query Run($id: ID!) {
  runOrError(runId: $id) {
    __typename
    ... on Run { id status startTime endTime creationTime tags { key value } }
  }
}"""
RUNS_QUERY = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    ... on Runs { results { id status startTime endTime creationTime tags { key value } } }
  }
}"""
LAUNCH_BACKFILL = """
mutation Backfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
  }
}"""
BACKFILL_QUERY = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    ... on PartitionBackfill { id status runs(limit: 100) { id status } }
  }
}"""
SENSOR_STATE = """
query Sensor($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) { ... on Sensor { sensorState { id selectorId status } } }
}"""
STOP_SENSOR = """
mutation Stop($origin: String!, $selector: String!) {
  stopSensor(jobOriginId: $origin, jobSelectorId: $selector) {
    __typename
    ... on StopSensorMutationResult { instigationState { status } }
    ... on PythonError { message }
  }
}"""


@functools.cache
def helm_binary() -> str:
    """The helm binary ``helm.sh`` fetched (once) into the cluster's cache."""
    return subprocess.run([str(HERE / "helm.sh")], capture_output=True, text=True, check=True).stdout.strip()


@dataclass(frozen=True)
class Cluster:
    """The facts ``up.sh`` wrote to ``$CLUSTER_STATE/env``."""

    env: Mapping[str, str]

    @classmethod
    def load(cls, state: Path = STATE) -> Cluster | None:
        """The running cluster's facts, or None when ``up.sh`` has not run here."""
        path = state / "env"
        if not path.exists():
            return None
        values: dict[str, str] = {}
        for line in path.read_text().splitlines():
            line = line.strip()
            if line.startswith("export "):
                key, _, value = line[len("export ") :].partition("=")
                values[key] = shlex.split(value)[0] if value else ""
        return cls(values)

    @property
    def mysql(self) -> tuple[str, int, str, str]:
        e = self.env
        return (
            e["CLUSTER_MYSQL_HOST"],
            int(e["CLUSTER_MYSQL_PORT"]),
            e["CLUSTER_MYSQL_USER"],
            e["CLUSTER_MYSQL_PASSWORD"],
        )

    def mysql_connect(self, database: str | None = None) -> pymysql.connections.Connection:
        host, port, user, password = self.mysql
        return pymysql.connect(host=host, port=port, user=user, password=password, database=database, autocommit=True)

    def api(self) -> k8s.ApiClient:
        """A Kubernetes API client with the cluster's admin credentials."""
        return k8s_config.new_client_from_config(config_file=self.env["KUBECONFIG"])

    def helm(self, *args: str, timeout: float = 600) -> str:
        """Run helm against the cluster; its stdout (a failure raises with its output)."""
        binary = helm_binary()
        env = {**os.environ, "KUBECONFIG": self.env["KUBECONFIG"]}
        result = subprocess.run([binary, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def wait_service(self, namespace: str, name: str, timeout_s: float = 120) -> None:
        """Wait until kube-proxy programmed the Service and it has ready endpoints (a ClusterIP
        packet that beats kube-proxy leaves through the host's egress, which answers 404)."""
        subprocess.run(
            [self.env["CLUSTER_WAIT_SERVICE"], namespace, name],
            check=True,
            timeout=timeout_s,
            capture_output=True,
            env={**os.environ, **self.env},
        )


@dataclass
class Release:
    """One install of the chart: its own namespace and its own empty databases."""

    cluster: Cluster
    name: str = "cdp"
    namespace: str = field(default_factory=lambda: f"cdp-{uuid.uuid4().hex[:6]}")
    image_tag: str = field(default_factory=lambda: os.environ.get("CLUSTER_IMAGE_TAG", "ci"))

    def __post_init__(self) -> None:
        suffix = self.namespace.replace("-", "_")
        self.dagster_db = f"dagster_{suffix}"
        self.warehouse_db = f"crypto_{suffix}"
        self.fullname = f"{self.name}-crypto-data-platform"
        self.api_client = self.cluster.api()
        self.core = k8s.CoreV1Api(self.api_client)
        self.batch = k8s.BatchV1Api(self.api_client)
        self.apps = k8s.AppsV1Api(self.api_client)
        self._http = httpx.Client(timeout=60)
        self._service_urls: dict[str, str] = {}

    # ----------------------------------------------------------------------------- lifecycle

    def create_prerequisites(self) -> None:
        """What the operator creates before ``helm install`` (docs/deploy.md): the namespace, two
        empty databases and the Secret holding their URLs."""
        host, port, user, password = self.cluster.mysql
        with self.cluster.mysql_connect() as conn, conn.cursor() as cur:
            for db in (self.dagster_db, self.warehouse_db):
                cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
                cur.execute(f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4")
        self.core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=self.namespace)))
        auth = f"{user}:{password}@{host}:{port}"
        self.core.create_namespaced_secret(
            self.namespace,
            k8s.V1Secret(
                metadata=k8s.V1ObjectMeta(name=f"{self.fullname}-secrets"),
                string_data={
                    "DAGSTER_MYSQL_URL": f"mysql+mysqlconnector://{auth}/{self.dagster_db}",
                    "CRYPTO_DB_URL": f"mysql+pymysql://{auth}/{self.warehouse_db}",
                },
            ),
        )

    def install(self, *extra: str) -> float:
        """``helm install --wait`` with the test values; the seconds it took."""
        self.create_prerequisites()
        began = time.monotonic()
        self.cluster.helm(
            "install", self.name, str(CHART), "-n", self.namespace, "-f", str(VALUES),
            "--set", f"image.tag={self.image_tag}", "--wait", "--timeout", "8m", *extra,
        )  # fmt: skip
        return time.monotonic() - began

    def upgrade(self, *extra: str) -> float:
        """``helm upgrade --wait --reuse-values`` with more settings; the seconds it took."""
        began = time.monotonic()
        self.cluster.helm(
            "upgrade", self.name, str(CHART), "-n", self.namespace, "--reuse-values", "--wait", "--timeout", "8m",
            *extra,
        )  # fmt: skip
        return time.monotonic() - began

    def uninstall(self) -> None:
        """``helm uninstall --wait`` (the pre-delete hook deletes the runs' Jobs first)."""
        self.cluster.helm("uninstall", self.name, "-n", self.namespace, "--wait", "--timeout", "5m")

    def destroy(self) -> None:
        """Remove what is left: the namespace and both databases."""
        self._http.close()
        try:
            self.core.delete_namespace(self.namespace)
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise
        with self.cluster.mysql_connect() as conn, conn.cursor() as cur:
            for db in (self.dagster_db, self.warehouse_db):
                cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        self.api_client.close()

    # ----------------------------------------------------------------------------- reading state

    def pods(self, selector: str = "") -> list[k8s.V1Pod]:
        return self.core.list_namespaced_pod(self.namespace, label_selector=selector).items

    def restarts(self) -> dict[str, int]:
        """Container restarts of every pod of the release's Deployments."""
        counts: dict[str, int] = {}
        for pod in self.pods(f"app.kubernetes.io/instance={self.name}"):
            if pod.metadata.labels.get("app.kubernetes.io/component") in (None, "run_worker", "migrate"):
                continue
            counts[pod.metadata.name] = sum(s.restart_count for s in pod.status.container_statuses or [])
        return counts

    def deployment_images(self) -> dict[str, str]:
        deployments = self.apps.list_namespaced_deployment(self.namespace).items
        return {d.metadata.name: d.spec.template.spec.containers[0].image for d in deployments}

    def jobs(self) -> list[k8s.V1Job]:
        return self.batch.list_namespaced_job(self.namespace).items

    def tables(self, database: str) -> set[str]:
        with self.cluster.mysql_connect(database) as conn, conn.cursor() as cur:
            cur.execute("SHOW TABLES")
            return {row[0] for row in cur.fetchall()}

    def warehouse_query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self.cluster.mysql_connect(self.warehouse_db) as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    # ----------------------------------------------------------------------------- services

    def service_url(self, component: str) -> str:
        """``http://<ClusterIP>:<port>`` of a component's Service, once kube-proxy programmed it
        (looked up once: a Service keeps its ClusterIP across upgrades)."""
        if component not in self._service_urls:
            name = f"{self.fullname}-{component}"
            self.cluster.wait_service(self.namespace, name)
            service = self.core.read_namespaced_service(name, self.namespace)
            self._service_urls[component] = f"http://{service.spec.cluster_ip}:{service.spec.ports[0].port}"
        return self._service_urls[component]

    def graphql(self, query: str, variables: dict[str, Any] | None = None, *, timeout_s: float = 120) -> dict[str, Any]:
        """A GraphQL call to the webserver, retried while it (re)starts."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                url = self.service_url("webserver")
                response = self._http.post(f"{url}/graphql", json={"query": query, "variables": variables or {}})
                if response.status_code == 400:  # the query itself is wrong: no retry
                    raise AssertionError(f"GraphQL rejected the query: {response.text[:2000]}")
                response.raise_for_status()
                body = response.json()
                if body.get("errors"):
                    raise RuntimeError(body["errors"])
                return body["data"]
            except (httpx.HTTPError, subprocess.SubprocessError) as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"webserver GraphQL unavailable: {exc}") from exc
                time.sleep(1)

    def wait_location_loaded(self, timeout_s: float = 300) -> None:
        query = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus locationOrLoadError { __typename } } } } }"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            entries = self.graphql(query)["workspaceOrError"]["locationEntries"]
            if entries and all(
                e["loadStatus"] == "LOADED" and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
                for e in entries
            ):
                return
            time.sleep(2)
        raise AssertionError("the code location did not load")

    def stop_sensor(self, sensor: str) -> None:
        """Stop a sensor, as an operator does in the UI."""
        selector = {"repositoryLocationName": "crypto_assets", "repositoryName": "__repository__", "sensorName": sensor}
        state = self.graphql(SENSOR_STATE, {"selector": selector})["sensorOrError"]["sensorState"]
        stopped = self.graphql(STOP_SENSOR, {"origin": state["id"], "selector": state["selectorId"]})["stopSensor"]
        assert stopped.get("instigationState", {}).get("status") == "STOPPED", stopped

    # ----------------------------------------------------------------------------- runs

    def launch(self, tags: dict[str, str]) -> str:
        """Launch ``five_minute_job`` with ``tags`` (a partition, or a partition range) through the
        webserver; the run's id."""
        mutation = """
        mutation Launch($params: ExecutionParams!) {
          launchRun(executionParams: $params) {
            __typename
            ... on LaunchRunSuccess { run { id } }
            ... on PythonError { message }
            ... on RunConfigValidationInvalid { errors { message } }
            ... on InvalidSubsetError { message }
          }
        }"""
        params = {
            "selector": {
                "repositoryLocationName": "crypto_assets",
                "repositoryName": "__repository__",
                "jobName": "five_minute_job",
            },
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        }
        launched = self.graphql(mutation, {"params": params})["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return launched["run"]["id"]

    def launch_window(self, partition: str) -> str:
        return self.launch({"dagster/partition": partition})

    def launch_range(self, first: str, last: str) -> str:
        return self.launch({"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last})

    def five_minute_assets(self) -> list[str]:
        """The asset keys ``five_minute_job`` materializes."""
        query = """
        query Assets($job: PipelineSelector!) {
          assetNodes(pipeline: $job) { assetKey { path } }
        }"""
        job = {
            "repositoryLocationName": "crypto_assets",
            "repositoryName": "__repository__",
            "pipelineName": "five_minute_job",
        }
        nodes = self.graphql(query, {"job": job})["assetNodes"]
        return ["/".join(n["assetKey"]["path"]) for n in nodes]

    def launch_backfill(self, partitions: list[str], assets: list[str]) -> str:
        params = {"assetSelection": [{"path": [a]} for a in assets], "partitionNames": partitions}
        launched = self.graphql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        return launched["backfillId"]

    def run(self, run_id: str) -> dict[str, Any]:
        found = self.graphql(RUN_QUERY, {"id": run_id})["runOrError"]
        assert found["__typename"] == "Run", found
        found["tags"] = {t["key"]: t["value"] for t in found["tags"]}
        return found

    def runs(self, **filter_: Any) -> list[dict[str, Any]]:
        results = self.graphql(RUNS_QUERY, {"filter": filter_})["runsOrError"]["results"]
        for r in results:
            r["tags"] = {t["key"]: t["value"] for t in r["tags"]}
        return results

    def wait_run(self, run_id: str, timeout_s: float = 600, statuses: set[str] = TERMINAL) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            run = self.run(run_id)
            if run["status"] in statuses:
                return run
            time.sleep(1)
        raise AssertionError(f"run {run_id} not in {statuses} after {timeout_s:.0f} s: {self.run(run_id)['status']}")

    def wait_idle(self, timeout_s: float = 900) -> None:
        """Wait until no run is queued, starting or in progress."""
        deadline = time.monotonic() + timeout_s
        busy = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"]
        while time.monotonic() < deadline:
            if not self.runs(statuses=busy):
                return
            time.sleep(3)
        raise AssertionError(f"runs still in progress after {timeout_s:.0f} s: {self.runs(statuses=busy)}")

    def retries_of(self, run_id: str) -> list[dict[str, Any]]:
        """The runs Dagster's run retries launched for ``run_id`` (its root run)."""
        return self.runs(tags=[{"key": "dagster/root_run_id", "value": run_id}])

    def wait_backfill(self, backfill_id: str, timeout_s: float = 900) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            backfill = self.graphql(BACKFILL_QUERY, {"id": backfill_id})["partitionBackfillOrError"]
            if backfill["status"] in ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"):
                return backfill
            time.sleep(3)
        raise AssertionError(f"backfill {backfill_id} not done after {timeout_s:.0f} s")

    def run_pod(self, run_id: str) -> k8s.V1Pod | None:
        pods = self.pods(f"job-name=dagster-run-{run_id}")
        return pods[0] if pods else None


def partition_key(start: datetime) -> str:
    """The partition key of the window starting at ``start``."""
    return start.strftime(PARTITION_KEY_FORMAT)


def partition_keys(first: datetime, count: int) -> Iterator[str]:
    """The keys of ``count`` consecutive windows from the one starting at ``first``."""
    for i in range(count):
        yield partition_key(first + i * WINDOW)
