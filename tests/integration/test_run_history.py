"""Run history retention on a real on-disk SQLite instance: real runs of ``five_minute_job``, old
ones deleted with their events, check rows, compute logs and files; recent and in-flight runs, the
partition status within the horizon (through the UI's GraphQL) and the sensors' state kept."""

import hashlib
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from crypto_assets.definitions import build_definitions
from crypto_assets.partitions import PARTITION_KEY_FORMAT
from resources.config.settings import load_settings
from resources.storage.run_history import RunRetentionError, delete_run_history, run_history_cutoff
from sensors.alerts import AlertCursor, ProgressLedger
from testkit.dagster_private import create_run_for_test
from testkit.fakes.loopback import free_port
from testkit.webserver import ROOT, Webserver, platform_env
from tests.conftest import mysql_database

W = timedelta(minutes=5)
NOW = datetime.now(UTC).replace(tzinfo=None)
# Old runs: windows three days ago, inside a 5-day horizon when they ran, outside the 2-day one now.
OLD = [(NOW - timedelta(days=3)).replace(hour=12, minute=0, second=0, microsecond=0) + i * W for i in range(2)]
RECENT = [(NOW - timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0) + i * W for i in range(2)]
PARTITION_STATUS = """
query($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) { ... on AssetNode {
    assetPartitionStatuses { ... on TimePartitionStatuses { ranges { startKey endKey status } } }
} } }
"""


def key(window: datetime) -> str:
    return window.strftime(PARTITION_KEY_FORMAT)


def size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_windows(instance: dg.DagsterInstance, windows: list[datetime]) -> list[str]:
    job = build_definitions(load_settings()).resolve_job_def("five_minute_job")
    return [job.execute_in_process(instance=instance, partition_key=key(w)).run_id for w in windows]


def check_rows(instance: dg.DagsterInstance, run_ids: set[str]) -> int:
    graph = build_definitions(load_settings()).get_repository_def().asset_graph
    return sum(
        1
        for check_key in graph.asset_check_keys
        for record in instance.event_log_storage.get_asset_check_execution_history(check_key, limit=1000)
        if record.run_id in run_ids
    )


def test_old_runs_go_with_everything_they_left_and_nothing_else(tmp_path, monkeypatch):
    env = platform_env(tmp_path, "5d")
    for name in ("DAGSTER_HOME", "CRYPTO_HOME", "CRYPTO_DB_URL", "CRYPTO_PARTITION_START"):
        monkeypatch.setenv(name, env[name])
    home = Path(env["DAGSTER_HOME"])
    asset = dg.AssetKey("price_data_real")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        old = run_windows(instance, OLD)
        in_flight = [
            create_run_for_test(instance, job_name="five_minute_job", status=status).run_id
            for status in (dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED)
        ]
        time.sleep(1.1)  # SQLite's create timestamps have whole seconds
        cutoff = datetime.now(UTC).replace(tzinfo=None)
        time.sleep(1.1)
        recent = run_windows(instance, RECENT)
        ledger = ProgressLedger(instance, "check_alert_sensor")
        ledger.save(AlertCursor(after={"price_data_real:price_sanity": 7}, seq=3))
        schedules_db = digest(home / "schedules" / "schedules.db")
        shards = home / "history" / "runs"
        assert all((shards / f"{r}.db").exists() and (home / "storage" / r).is_dir() for r in old)
        assert check_rows(instance, set(old)) > 0
        before = size(home)

        report = delete_run_history(instance, cutoff, page=1)

        assert (report.runs, report.run_files) == (len(old), len(old)) and report.check_rows > 0
        assert all(instance.get_run_by_id(r) is None for r in old)
        materializations = instance.fetch_materializations(asset, limit=100).records
        assert sorted(m.run_id for m in materializations) == sorted(recent)  # the old runs' events are gone
        assert not any((shards / f"{r}.db").exists() or (home / "storage" / r).exists() for r in old)
        assert check_rows(instance, set(old)) == 0
        assert size(home) < before - len(old) * 400_000  # the per-run files (about 0.5 MB each) are gone
        assert all(instance.get_run_by_id(r) is not None for r in recent + in_flight)
        assert check_rows(instance, set(recent)) > 0
        # Outside the horizon the deleted runs' windows are no longer materialized; inside, all are.
        assert sorted(instance.get_materialized_partitions(asset)) == [key(w) for w in RECENT]
        assert ledger.load(None) == AlertCursor(after={"price_data_real:price_sanity": 7}, seq=3)
        assert digest(home / "schedules" / "schedules.db") == schedules_db
        assert delete_run_history(instance, cutoff).runs == 0
    # The UI, with the 2-day horizon of today, shows the recent windows as before.
    monkeypatch.setenv("CRYPTO_PARTITION_START", "2d")
    web = Webserver({**env, "CRYPTO_PARTITION_START": "2d"}, free_port(), tmp_path / "webserver.log")
    try:
        web.wait_ready()
        node = web.graphql(PARTITION_STATUS, {"path": ["price_data_real"]})["assetNodeOrError"]
    finally:
        web.stop()
    assert node["assetPartitionStatuses"]["ranges"] == [
        {"startKey": key(RECENT[0]), "endKey": key(RECENT[-1]), "status": "MATERIALIZED"}
    ]


def test_a_retention_inside_the_horizon_is_refused_unless_asked_for():
    now = datetime(2026, 12, 31, 23, 59)
    assert run_history_cutoff("30d", None, now=now) == datetime(2026, 12, 1)
    assert run_history_cutoff("30d", 45, now=now) == datetime(2026, 11, 16)
    assert run_history_cutoff("2026-01-01", None, now=now) == datetime(2026, 1, 1)
    with pytest.raises(RunRetentionError, match="CRYPTO_RUN_RETENTION_DAYS=7 would delete runs of partitions"):
        run_history_cutoff("30d", 7, now=now)
    assert run_history_cutoff("30d", 7, now=now, inside_horizon=True) == datetime(2026, 12, 24)


def test_the_command_applies_it_to_the_instance_at_dagster_home(tmp_path):
    env = platform_env(tmp_path, "2d")
    refused = subprocess.run(
        [sys.executable, "-m", "cli.retention", "--what", "runs", "--run-days", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2 and "--inside-horizon" in refused.stderr
    done = subprocess.run(
        [sys.executable, "-m", "cli.retention", "--what", "runs"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["runs"]["runs_deleted"] == 0


@pytest.mark.mysql
def test_on_mysql_storage_the_run_its_tags_events_and_check_rows_go(tmp_path, monkeypatch, sqlite_url):
    home = tmp_path / "dagster_home"
    home.mkdir()
    storage = {"storage": {"mysql": {"mysql_url": {"env": "DAGSTER_MYSQL_URL"}}}, "telemetry": {"enabled": False}}
    (home / "dagster.yaml").write_text(json.dumps(storage))
    monkeypatch.setenv("CRYPTO_DB_URL", sqlite_url)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with mysql_database() as url:
        monkeypatch.setenv("DAGSTER_MYSQL_URL", url.replace("mysql+pymysql://", "mysql+mysqlconnector://", 1))
        with dg.DagsterInstance.from_config(str(home)) as instance:
            old = run_windows(instance, OLD[:1])
            time.sleep(1.1)
            cutoff = datetime.now(UTC).replace(tzinfo=None)
            time.sleep(1.1)
            recent = run_windows(instance, RECENT[:1])
            assert check_rows(instance, set(old)) > 0
            report = delete_run_history(instance, cutoff)
            assert (report.runs, report.run_files) == (1, 0) and report.check_rows > 0
            assert instance.get_run_by_id(old[0]) is None and check_rows(instance, set(old)) == 0
            materializations = instance.fetch_materializations(dg.AssetKey("price_data_real"), limit=10).records
            assert [m.run_id for m in materializations] == recent
        engine = sa.create_engine(url)
        with engine.connect() as conn:  # the run's tags go by the foreign key's ON DELETE CASCADE
            tags = conn.execute(sa.text("SELECT COUNT(*) FROM run_tags WHERE run_id = :r"), {"r": old[0]}).scalar()
        engine.dispose()
        assert tags == 0
