"""The chart on a real Kubernetes cluster, driven as a user drives it: ``helm install``, runs and a
backfill launched through the webserver's GraphQL (each run a ``dagster-run-<id>`` Job), the
gateway's Service and the notebook client reading what they wrote, a run's pod killed, the
ServiceAccount's RBAC asked of the API server, ``helm upgrade`` under load, ``helm uninstall``, and
fresh installs on empty databases. The tests of this module run in order against one release."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch

from api.client import CryptoDataClient
from resources.dagster_private import RunStorageSqlMetadata, ScheduleStorageSqlMetadata, SqlEventLogStorageMetadata
from resources.storage.windows import window_floor
from testkit.cluster.release import Cluster, Release, partition_key, partition_keys

DAGSTER_TABLES = {
    n for m in (RunStorageSqlMetadata, SqlEventLogStorageMetadata, ScheduleStorageSqlMetadata) for n in m.tables
}
WAREHOUSE_TABLES = {"partition_log", "price_data_real", "ml_features_materialized", "sentiment_data", "news_items"}
FEATURES = "ml_features_materialized"
SYMBOLS = 124


def _yesterday() -> datetime:
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    return midnight - timedelta(days=1)


def _recent_window(minutes_ago: int) -> datetime:
    return window_floor(datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=minutes_ago))


def _assert_committed_once(release: Release, first: datetime, windows: int) -> None:
    """Each window of the range is in ``partition_log`` once and holds one feature row a coin."""
    end = first + timedelta(minutes=5 * windows)
    rows = release.warehouse_query(
        "SELECT window_start, COUNT(*) FROM partition_log WHERE asset = %s AND window_start >= %s "
        "AND window_start < %s GROUP BY window_start",
        FEATURES, first, end,
    )  # fmt: skip
    assert len(rows) == windows and all(n == 1 for _, n in rows), rows[:5]
    counts = release.warehouse_query(
        f"SELECT timestamp, COUNT(*), COUNT(DISTINCT symbol) FROM {FEATURES} "
        "WHERE timestamp >= %s AND timestamp < %s GROUP BY timestamp",
        first, end,
    )  # fmt: skip
    assert len(counts) == windows
    assert all(n == distinct == SYMBOLS for _, n, distinct in counts), counts[:5]


def _job_of(release: Release, run_id: str, timeout_s: float = 120) -> k8s.V1Job:
    """The run's Job once it finished (its pod exits a moment after Dagster records the run's end)."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = release.batch.read_namespaced_job(f"dagster-run-{run_id}", release.namespace)
        if job.status.succeeded or job.status.failed or time.monotonic() > deadline:
            return job
        time.sleep(1)


def test_install_creates_the_schema_once_and_nothing_restarts(release: Release) -> None:
    assert DAGSTER_TABLES <= release.tables(release.dagster_db)
    assert WAREHOUSE_TABLES <= release.tables(release.warehouse_db)
    assert set(release.restarts().values()) == {0}, release.restarts()
    # The migration hook succeeded and was deleted (hook-succeeded) before the Deployments came up.
    assert not [j for j in release.jobs() if j.metadata.name.endswith("-migrate")]
    images = release.deployment_images()
    assert images[f"{release.fullname}-api"] == f"crypto-data-platform-gateway:{release.image_tag}"
    assert images[f"{release.fullname}-daemon"] == f"crypto-data-platform:{release.image_tag}"
    # The chart adapted itself to this API server (1.20): HPA v2beta2, TCP probes for gRPC.
    manifest = release.cluster.helm("get", "manifest", release.name, "-n", release.namespace)
    assert "apiVersion: autoscaling/v2beta2\nkind: HorizontalPodAutoscaler" in manifest
    hpa = k8s.AutoscalingV1Api(release.api_client).read_namespaced_horizontal_pod_autoscaler(
        f"{release.fullname}-api", release.namespace
    )
    assert hpa.spec.max_replicas == 3
    code = release.apps.read_namespaced_deployment(f"{release.fullname}-user-code", release.namespace)
    assert code.spec.template.spec.containers[0].readiness_probe.tcp_socket.port == 4000


def test_a_window_runs_as_a_job_and_the_gateway_serves_it(release: Release) -> None:
    window = _recent_window(20)
    run_id = release.launch_window(partition_key(window))
    run = release.wait_run(run_id, timeout_s=300)
    assert run["status"] == "SUCCESS", run
    job = _job_of(release, run_id)
    assert job.status.succeeded == 1
    assert job.spec.template.spec.containers[0].image == f"crypto-data-platform:{release.image_tag}"
    _assert_committed_once(release, window, 1)

    api = release.service_url("api")
    assert httpx.get(f"{api}/ready", timeout=30).status_code == 200
    end = window + timedelta(minutes=5)
    params = {"symbols": "BTC,ETH", "start": window.isoformat(), "end": end.isoformat()}
    response = httpx.get(f"{api}/v1/features", params=params, timeout=60)
    assert response.status_code == 200, response.text
    rows = response.json()["data"]
    assert sorted(r["symbol"] for r in rows) == ["BTC", "ETH"]

    frame = CryptoDataClient(base_url=api).features(["BTC", "ETH", "SOL"], start=window, end=end)
    assert sorted(frame["symbol"]) == ["BTC", "ETH", "SOL"]


def test_a_day_backfill_runs_as_jobs(release: Release) -> None:
    day = _yesterday()
    keys = list(partition_keys(day, 288))
    assets = release.five_minute_assets()
    backfill_id = release.launch_backfill(keys, assets)
    backfill = release.wait_backfill(backfill_id, timeout_s=1200)
    assert backfill["status"] == "COMPLETED_SUCCESS", backfill
    runs = backfill["runs"]
    assert runs and all(r["status"] == "SUCCESS" for r in runs), runs
    for run in runs:
        assert _job_of(release, run["id"]).status.succeeded == 1
    _assert_committed_once(release, day, 288)


def test_a_killed_run_pod_is_failed_by_monitoring_and_retried_once(release: Release) -> None:
    first = _yesterday() + timedelta(hours=6)
    last = first + timedelta(hours=6) - timedelta(minutes=5)
    run_id = release.launch_range(partition_key(first), partition_key(last))
    release.wait_run(run_id, timeout_s=300, statuses={"STARTED", "SUCCESS", "FAILURE"})
    pod = release.run_pod(run_id)
    assert pod is not None and release.run(run_id)["status"] == "STARTED", "the run ended before its pod was killed"
    release.core.delete_namespaced_pod(pod.metadata.name, release.namespace, grace_period_seconds=0)

    killed = release.wait_run(run_id, timeout_s=180)
    assert killed["status"] == "FAILURE", killed
    deadline = time.monotonic() + 300
    while not (retries := release.retries_of(run_id)) and time.monotonic() < deadline:
        time.sleep(2)
    assert len(retries) == 1, retries
    retried = release.wait_run(retries[0]["id"], timeout_s=600)
    assert retried["status"] == "SUCCESS", retried
    assert retried["tags"]["dagster/parent_run_id"] == run_id
    assert _job_of(release, retried["id"]).status.succeeded == 1
    _assert_committed_once(release, first, 72)


@pytest.mark.parametrize(
    "namespace_of,verb,resource,subresource,group,allowed",
    [
        ("own", "create", "jobs", "", "batch", True),
        ("own", "watch", "jobs", "", "batch", True),
        ("own", "delete", "jobs", "", "batch", True),
        ("own", "get", "pods", "log", "", True),
        ("own", "list", "pods", "", "", True),
        ("own", "get", "secrets", "", "", False),
        ("own", "list", "secrets", "", "", False),
        ("own", "create", "deployments", "", "apps", False),
        ("other", "create", "jobs", "", "batch", False),
        ("other", "get", "pods", "log", "", False),
    ],
)
def test_the_service_account_may_run_jobs_and_nothing_more(
    release: Release, namespace_of: str, verb: str, resource: str, subresource: str, group: str, allowed: bool
) -> None:
    namespace = release.namespace if namespace_of == "own" else "default"
    review = k8s.V1SubjectAccessReview(
        spec=k8s.V1SubjectAccessReviewSpec(
            user=f"system:serviceaccount:{release.namespace}:{release.fullname}",
            groups=["system:serviceaccounts", f"system:serviceaccounts:{release.namespace}"],
            resource_attributes=k8s.V1ResourceAttributes(
                namespace=namespace, verb=verb, resource=resource, subresource=subresource or None, group=group
            ),
        )
    )
    answer = k8s.AuthorizationV1Api(release.api_client).create_subject_access_review(review)
    assert answer.status.allowed is allowed, (namespace, verb, resource, subresource, answer.status.reason)


class JobWatcher(threading.Thread):
    """Keeps the last state of every Job of a namespace while it runs, from the API server's watch
    stream (a hook Job is deleted once it succeeded: its DELETED event carries that last state)."""

    def __init__(self, release: Release):
        super().__init__(daemon=True)
        self.release, self.watch = release, k8s_watch.Watch()
        self.seen: dict[str, k8s.V1Job] = {}

    def run(self) -> None:
        for event in self.watch.stream(self.release.batch.list_namespaced_job, self.release.namespace):
            self.seen[event["object"].metadata.name] = event["object"]

    def stop(self) -> None:
        self.watch.stop()
        self.join(timeout=30)


def test_upgrade_to_a_new_image_while_windows_run_loses_none(release: Release) -> None:
    first = _recent_window(60)
    run_ids = [release.launch_window(k) for k in partition_keys(first, 3)]
    new_tag = f"{release.image_tag}-2"
    watcher = JobWatcher(release)
    watcher.start()
    release.upgrade("--set", f"image.tag={new_tag}")
    watcher.stop()
    # The pre-upgrade hook migrated with the new image, and finished before any new pod started.
    migrate = watcher.seen[f"{release.fullname}-migrate"]
    assert migrate.spec.template.spec.containers[0].image == f"crypto-data-platform:{new_tag}"
    assert migrate.status.succeeded == 1, migrate.status
    new_pods = [p for p in release.pods() if p.spec.containers[0].image.endswith(f":{new_tag}")]
    assert new_pods and all(p.metadata.creation_timestamp >= migrate.status.completion_time for p in new_pods)
    for run_id in run_ids:
        assert release.wait_run(run_id, timeout_s=600)["status"] == "SUCCESS"
    _assert_committed_once(release, first, 3)
    images = release.deployment_images()
    assert images[f"{release.fullname}-daemon"] == f"crypto-data-platform:{new_tag}"
    assert images[f"{release.fullname}-api"] == f"crypto-data-platform-gateway:{new_tag}"
    assert DAGSTER_TABLES <= release.tables(release.dagster_db)
    assert set(release.restarts().values()) == {0}, release.restarts()
    release.wait_location_loaded()
    after = release.launch_window(partition_key(first + timedelta(minutes=15)))
    assert release.wait_run(after, timeout_s=300)["status"] == "SUCCESS"
    assert _job_of(release, after).spec.template.spec.containers[0].image == f"crypto-data-platform:{new_tag}"


def test_uninstall_leaves_no_job_or_pod(release: Release) -> None:
    first = _yesterday() + timedelta(hours=12)
    running = release.launch_range(partition_key(first), partition_key(first + timedelta(hours=11)))
    release.wait_run(running, timeout_s=300, statuses={"STARTED", "SUCCESS", "FAILURE"})
    assert release.jobs(), "runs' Jobs exist before the uninstall"
    release.uninstall()
    assert release.jobs() == []
    # The Deployments' pods end within their termination grace period (30 s).
    deadline = time.monotonic() + 90
    while (left := [p.metadata.name for p in release.pods()]) and time.monotonic() < deadline:
        time.sleep(2)
    assert left == []


@pytest.mark.parametrize("attempt", [1, 2])
def test_a_fresh_install_on_empty_databases_always_ends_complete(cluster: Cluster, attempt: int) -> None:
    fresh = Release(cluster)
    try:
        fresh.install()
        assert DAGSTER_TABLES <= fresh.tables(fresh.dagster_db)
        assert WAREHOUSE_TABLES <= fresh.tables(fresh.warehouse_db)
        assert set(fresh.restarts().values()) == {0}, fresh.restarts()
        fresh.uninstall()
    finally:
        fresh.destroy()
