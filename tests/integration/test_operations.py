"""The platform left running: ``scripts/start.sh`` (webserver, daemon, code server), a day backfill
and a few hours of the downstream assets (the feature lake too, asserted to hold them) through the
UI's GraphQL, then schedules and sensors ticking for minutes against a fake webhook.

Asserted: no sensor or schedule tick failed or timed out, and every sensor tick stayed well
inside Dagster's 60 s limit; the code location stayed loaded throughout; every alert reached the
webhook exactly once (by its alert id; a failed check and a late window are reported from outside,
since a fresh platform alerts nothing); no tick of ``five_minute_schedule`` was missed while the
daemon ran; the freshness sensor launched no run. ``CRYPTO_OPERATIONS_MINUTES`` sets how long the
platform is left ticking after the backfills (default 2, and at least until a schedule tick was due; the slow variant leaves it 15).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import psutil
import pytest
from dagster_graphql.client.query import LAUNCH_PARTITION_BACKFILL_MUTATION

from crypto_assets.partitions import PARTITION_KEY_FORMAT
from resources.storage.lake import FeatureLake, range_filter
from resources.storage.schema import FEATURES
from resources.storage.warehouse import get_warehouse
from testkit.dagster_private import InstigatorType, TickStatus
from testkit.fakes.fake_webhook import FakeWebhook
from testkit.fakes.loopback import free_port
from testkit.webserver import platform_env

ROOT = Path(__file__).resolve().parents[2]
LOCATION = """{ workspaceOrError { ... on Workspace { locationEntries {
    name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
SCHEDULE_CRON_OFFSET_MINUTES = 1  # five_minute_schedule ticks at :01, :06, ...


class Platform:
    """``scripts/start.sh`` in the background, and a GraphQL client of its UI."""

    def __init__(self, env: dict[str, str], port: int, log: Path):
        self.env, self.log = env, log
        self.url = f"http://127.0.0.1:{port}"
        with log.open("w") as out:
            self.process = subprocess.Popen(
                ["scripts/start.sh"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self.client = httpx.Client(base_url=self.url, timeout=120)
        self.location_states: list[tuple[str, str]] = []

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = self.client.post("/graphql", json={"query": query, "variables": variables or {}}).json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def location_loaded(self) -> bool:
        """Record and return whether the code location is loaded now."""
        entries = self.graphql(LOCATION)["workspaceOrError"]["locationEntries"]
        for entry in entries:
            self.location_states.append(
                (
                    entry["loadStatus"],
                    entry["locationOrLoadError"]["__typename"] if entry["locationOrLoadError"] else "None",
                )
            )
        return bool(entries) and all(
            e["loadStatus"] == "LOADED"
            and e["locationOrLoadError"]
            and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
            for e in entries
        )

    def wait_ready(self, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if self.client.get("/server_info").status_code == 200 and self.location_loaded():
                    self.location_states.clear()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise AssertionError(f"the platform did not come up: {self.log.read_text()[-3000:]}")

    def backfill(self, assets: list[str], keys: list[str]) -> str:
        data = self.graphql(
            LAUNCH_PARTITION_BACKFILL_MUTATION,
            {"backfillParams": {"assetSelection": [{"path": [a]} for a in assets], "partitionNames": keys}},
        )
        launched = data["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        return launched["backfillId"]

    def stop(self) -> None:
        self.client.close()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            for child in psutil.Process(self.process.pid).children(recursive=True):
                child.kill()
            self.process.kill()


def wait_backfill(platform: Platform, instance: dg.DagsterInstance, backfill_id: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert platform.location_loaded(), platform.location_states[-3:]
        backfill = instance.get_backfill(backfill_id)
        if backfill is not None and backfill.status.value.startswith("COMPLETED"):
            assert backfill.status.value == "COMPLETED_SUCCESS", backfill.status
            return
        time.sleep(5)
    raise AssertionError(f"backfill {backfill_id} not done after {timeout_s:.0f} s")


WINDOW = timedelta(minutes=5)


def assert_in_lake(env: dict[str, str], start: datetime, end: datetime) -> None:
    """The backfilled windows of [start, end) are in the lake: every committed features window in
    the lake's log at its commit, and the Delta table holding each window's committed rows."""
    wh = get_warehouse(env["CRYPTO_DB_URL"])
    start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    committed = wh.committed_windows(FEATURES.name, start, end)
    lake = FeatureLake(env.get("CRYPTO_LAKE_URI") or str(Path(env["CRYPTO_HOME"]) / "lake"))
    logged = lake.windows(start, end)
    assert len(committed) == int((end - start) / WINDOW) and len(logged) == len(committed), (committed, logged)
    assert list(logged["committed_at"]) == list(committed["committed_at"])
    rows = lake.table().to_pyarrow_dataset().to_table(columns=["timestamp"], filter=range_filter(start, end))
    assert rows.num_rows == int(committed["row_count"].sum()) == int(logged["row_count"].sum()) > 0


def schedule_times(start: float, end: float) -> list[float]:
    """The ticks of ``1-59/5 * * * *`` in [start, end)."""
    first = datetime.fromtimestamp(start, UTC).replace(second=0, microsecond=0)
    times = []
    t = first
    while t.timestamp() < end:
        if t.minute % 5 == SCHEDULE_CRON_OFFSET_MINUTES and t.timestamp() >= start:
            times.append(t.timestamp())
        t += timedelta(minutes=1)
    return times


def test_the_platform_left_running_ticks_cleanly_and_alerts_exactly_once(tmp_path):
    minutes = float(os.environ.get("CRYPTO_OPERATIONS_MINUTES", "2"))
    port = free_port()
    with FakeWebhook() as hook:
        env = {**platform_env(tmp_path, "2d"), "DAGSTER_PORT": str(port), "CRYPTO_ALERT_WEBHOOK_URL": hook.url}
        platform = Platform(env, port, tmp_path / "platform.log")
        try:
            platform.wait_ready()
            daemon_up = time.time()
            with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
                day = (datetime.now(UTC) - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
                keys = [(day + i * timedelta(minutes=5)).strftime(PARTITION_KEY_FORMAT) for i in range(288)]
                wait_backfill(platform, instance, platform.backfill(["price_data_real"], keys), 600)
                downstream = ["news_items", "sentiment_data", "ml_features_materialized", "ml_features_lake"]
                wait_backfill(platform, instance, platform.backfill(downstream, keys[144:180]), 600)
                assert_in_lake(env, day + 144 * WINDOW, day + 180 * WINDOW)
                # A fresh platform alerts nothing (tests/first_hour), so two failures are reported
                # from outside its runs, as a monitoring tool would: a data-quality verdict and a
                # freshness one. The alert sensors must send each exactly once while they tick.
                for check, description in (
                    ("price_sanity", "reported by the test: 1 move beyond x3 in one window"),
                    ("freshness_check", f"Asset is overdue. We expected partition {keys[-1]} to have arrived."),
                ):
                    instance.report_runless_asset_event(
                        dg.AssetCheckEvaluation(
                            asset_key=dg.AssetKey("price_data_real"),
                            check_name=check,
                            passed=False,
                            severity=dg.AssetCheckSeverity.ERROR,
                            description=description,
                        )
                    )
                # Tick for ``minutes``, and at least until a schedule tick a minute after start-up was due.
                first_tick = schedule_times(daemon_up + 60, daemon_up + 60 + 600)[0]
                ticking_until = max(time.time() + minutes * 60, first_tick + 120)
                while time.time() < ticking_until:
                    assert platform.location_loaded(), platform.location_states[-3:]
                    time.sleep(15)
                daemon_down = time.time()
                report = audit(instance, daemon_up, daemon_down)
        finally:
            platform.stop()
        log = platform.log.read_text()
    print(report)
    assert "No heartbeat received" not in log and "took longer than" not in log
    assert report["failed_ticks"] == [], report["failed_ticks"]
    # The sensors that launch nothing answer in seconds (a run-launching tick also counts the
    # daemon's run creation, which is not the sensor's evaluation).
    for name in ("check_alert_sensor", "freshness_alert_sensor", "run_failure_alert_sensor", "freshness_checks_sensor"):
        assert report["slowest_tick_s"][name] < 20, report["slowest_tick_s"]
    assert report["expected_schedule_ticks"] >= 1
    assert report["missed_schedule_ticks"] == [], report["missed_schedule_ticks"]
    assert report["freshness_runs"] == 0
    ids = Counter(
        next((e["text"] for e in m["blocks"][1]["elements"] if e["text"].startswith("alert id ")), None)
        for m in hook.messages
    )
    assert hook.messages, "nothing was alerted: the test could not tell a duplicate"
    assert None not in ids and max(ids.values()) == 1, [i for i, n in ids.items() if n > 1]
    texts = [m["text"] for m in hook.messages]
    assert any("price_data_real is late" in t for t in texts) and any("check price_sanity failed" in t for t in texts)


def audit(instance: dg.DagsterInstance, daemon_up: float, daemon_down: float) -> dict[str, Any]:
    """What the instance recorded of its schedules and sensors while the daemon ran."""
    failed, missed, expected = [], [], []
    slowest: dict[str, float] = {}
    count = 0
    for state in instance.all_instigator_state():
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=10_000)
        name = state.instigator_name
        for t in ticks:
            if t.status == TickStatus.FAILURE:
                failed.append((name, t.error.message[:300] if t.error else "?"))
            if state.instigator_type == InstigatorType.SENSOR and t.end_timestamp:
                slowest[name] = round(max(slowest.get(name, 0.0), t.end_timestamp - t.timestamp), 2)
                count += 1
        if name == "five_minute_schedule":
            seen = {round(t.timestamp) for t in ticks}
            # a tick needs its minute to have passed, and the daemon a few seconds to record it
            expected = schedule_times(daemon_up + 60, daemon_down - 60)
            missed = [datetime.fromtimestamp(s, UTC).isoformat() for s in expected if round(s) not in seen]
    runs = instance.get_runs(dg.RunsFilter(tags={"crypto/trigger": "freshness"}))
    return {
        "failed_ticks": failed,
        "slowest_tick_s": slowest,
        "sensor_ticks": count,
        "expected_schedule_ticks": len(expected),
        "missed_schedule_ticks": missed,
        "freshness_runs": len(runs),
        "runs": Counter(r.status.value for r in instance.get_runs()),
    }


@pytest.mark.slow
def test_the_platform_left_running_a_quarter_of_an_hour(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYPTO_OPERATIONS_MINUTES", "15")
    test_the_platform_left_running_ticks_cleanly_and_alerts_exactly_once(tmp_path)
