"""``python -m cli.migrate``, the Helm chart's pre-install/pre-upgrade hook, on the real MariaDB.

It creates Dagster's schema and the warehouse's tables on empty databases, is idempotent, and
repairs the partial schema that processes racing on an empty database left in the first real
cluster install (``run_tags`` missing while the schema's version was already stamped current).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from dagster import DagsterInstance, RunsFilter

from resources.dagster_private import RunStorageSqlMetadata, ScheduleStorageSqlMetadata, SqlEventLogStorageMetadata
from tests.conftest import mysql_database

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGSTER_TABLES = {
    name for m in (RunStorageSqlMetadata, SqlEventLogStorageMetadata, ScheduleStorageSqlMetadata) for name in m.tables
}


def _dagster_home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    config = {"storage": {"mysql": {"mysql_url": {"env": "DAGSTER_MYSQL_URL"}}}, "telemetry": {"enabled": False}}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def _migrate(home: Path, dagster_url: str, warehouse_url: str) -> dict:
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_MYSQL_URL": dagster_url, "CRYPTO_DB_URL": warehouse_url}
    result = subprocess.run(
        [sys.executable, "-m", "cli.migrate"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.mysql
def test_migrate_creates_both_schemas_then_repairs_a_partial_one(tmp_path: Path, monkeypatch) -> None:
    home = _dagster_home(tmp_path)
    with mysql_database() as dagster_pymysql, mysql_database(create=False) as warehouse_url:
        dagster_url = dagster_pymysql.replace("mysql+pymysql://", "mysql+mysqlconnector://", 1)
        first = _migrate(home, dagster_url, warehouse_url)
        assert first["dagster_tables_created"] == []  # Dagster made them all on the empty database
        assert DAGSTER_TABLES <= _tables(dagster_pymysql)
        assert {"ml_features_materialized", "partition_log", "price_data_real"} <= _tables(warehouse_url)
        assert first["warehouse_tables"] == len(_tables(warehouse_url))

        again = _migrate(home, dagster_url, warehouse_url)
        assert again["dagster_tables_created"] == []

        # The state a racing install left: run_tags gone, the version stamped current.
        engine = sa.create_engine(dagster_pymysql)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE run_tags")
        engine.dispose()
        repaired = _migrate(home, dagster_url, warehouse_url)
        assert repaired["dagster_tables_created"] == ["run_tags"]
        assert DAGSTER_TABLES <= _tables(dagster_pymysql)

        # A tag query, which failed with "Table 'run_tags' doesn't exist", works again.
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        monkeypatch.setenv("DAGSTER_MYSQL_URL", dagster_url)
        with DagsterInstance.get() as instance:
            assert instance.get_runs(filters=RunsFilter(tags={"dagster/partition": "x"})) == []
