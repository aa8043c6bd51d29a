"""Database faults on a real MariaDB: a crash mid-backfill, lock waits, deadlocks, dropped connections.

Every test runs on a private ``mariadbd`` (``testkit/fakes/private_mariadb.py``) that it may kill
and restart, never on the shared server. What must hold:

* the server killed while a backfill run is inserting: the run fails with a clear error, the
  table keeps the previous copy of the range (InnoDB rolls the half-done transaction back), and
  after a restart the same run completes with exactly one copy;
* a lock wait timeout (1205) and a deadlock (1213) inside a partition write are retried, and
  leave one copy;
* a pooled connection killed while idle, or every connection lost to a server restart, is
  replaced on next use (``pool_pre_ping``);
* the API gateway answers 503, not 500, on ``/ready`` and data routes while the database is
  down, and recovers by itself when it is back.
"""

import logging
import threading
import time
from datetime import datetime, timedelta

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from crypto_assets.prices import price_data_real
from resources.config.universe import load_universe
from resources.sources.price_sources import PriceSourceResource
from resources.sources.simulated import simulated_price_frame
from resources.storage.dagster_resources import WarehouseResource
from resources.storage.schema import partition_log
from resources.storage.schema import price_data_real as price_table
from resources.storage.warehouse import Warehouse, WarehouseError
from testkit.fakes.private_mariadb import PrivateMariaDB

pytestmark = pytest.mark.mysql

START = datetime(2026, 11, 20)


def _count(wh: Warehouse, table: sa.Table = price_table) -> int:
    with wh.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def _log_run_ids(wh: Warehouse) -> set[str]:
    return set(wh.committed_windows("price_data_real").run_id)


def _wait_for(condition, timeout_s: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _statement_running(server: PrivateMariaDB, prefix: str) -> bool:
    rows = server.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE %s", (prefix + "%",))
    return rows[0][0] > 0


def _materialize_range(url: str, first: str, last: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [price_data_real],
        resources={"warehouse": WarehouseResource(db_url=url), "price_source": PriceSourceResource(mode="simulated")},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
    )


def test_server_killed_mid_backfill_keeps_the_old_copy_and_a_rerun_completes(private_mariadb, private_db_url):
    first, last = "2026-11-20-00:00", "2026-11-20-23:55"  # a day as one backfill run: 288 windows
    old = simulated_price_frame(load_universe(), START, START + timedelta(days=1))
    windows, rows = 288, len(old)
    wh = Warehouse(private_db_url)
    wh.write_partition(
        "price_data_real", old, start=START, end=START + timedelta(days=1), run_id="old", code_version="1"
    )

    outcome: dict[str, dg.ExecuteInProcessResult] = {}
    runner = threading.Thread(target=lambda: outcome.setdefault("run", _materialize_range(private_db_url, first, last)))
    runner.start()
    _wait_for(lambda: _statement_running(private_mariadb, "LOAD DATA LOCAL INFILE"), what="the INSERT")
    private_mariadb.kill()
    runner.join(120)
    crashed = outcome["run"]
    assert not crashed.success
    failure = next(e for e in crashed.all_events if e.event_type_value == "STEP_FAILURE")
    error = str(failure.event_specific_data.error)
    assert "WarehouseError" in error and "price_data_real: write of [2026-11-20 00:00:00, 2026-11-21 00:00:00)" in error

    private_mariadb.start()  # InnoDB crash recovery rolls the half-written transaction back
    assert _count(wh) == rows, "the crashed run left a partial copy"
    assert _log_run_ids(wh) == {"old"} and len(wh.committed_windows("price_data_real")) == windows

    rerun = _materialize_range(private_db_url, first, last)
    assert rerun.success
    assert _count(wh) == rows and _log_run_ids(wh) == {rerun.run_id}
    with wh.engine.connect() as conn:
        duplicates = conn.execute(
            sa.text(
                "SELECT COUNT(*) FROM (SELECT symbol, window_start FROM price_data_real "
                "GROUP BY symbol, window_start HAVING COUNT(*) > 1) d"
            )
        ).scalar_one()
    assert duplicates == 0


def _small_frame(windows: int = 12) -> tuple[pd.DataFrame, datetime]:
    end = START + timedelta(minutes=5 * windows)
    return simulated_price_frame(load_universe()[:10], START, end), end


def _short_lock_waits(wh: Warehouse, seconds: int) -> None:
    """Give every connection of ``wh`` a short innodb_lock_wait_timeout (a session variable)."""

    @sa.event.listens_for(wh.engine, "connect")
    def _session(dbapi_conn, _record) -> None:
        with dbapi_conn.cursor() as cursor:
            cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {int(seconds)}")

    wh.dispose()


def test_a_lock_wait_timeout_is_retried_and_leaves_one_copy(private_mariadb, private_db_url, caplog):
    frame, end = _small_frame()
    wh = Warehouse(private_db_url)
    wh.write_partition("price_data_real", frame, start=START, end=end, run_id="old", code_version="1")
    _short_lock_waits(wh, 1)

    blocker = private_mariadb.admin(wh.engine.url.database)
    blocker.autocommit(False)
    with blocker.cursor() as cursor:  # a foreign transaction holds the range's rows
        cursor.execute(
            "SELECT symbol FROM price_data_real WHERE window_start >= %s AND window_start < %s FOR UPDATE", (START, end)
        )
    release = threading.Timer(2.0, blocker.commit)
    release.start()
    try:
        with caplog.at_level(logging.WARNING, logger="resources.storage.warehouse"):
            result = wh.write_partition("price_data_real", frame, start=START, end=end, run_id="new", code_version="1")
    finally:
        release.join()
        blocker.close()
    assert result.attempts >= 2
    assert "Lock wait timeout exceeded" in caplog.text
    assert _count(wh) == len(frame) and _log_run_ids(wh) == {"new"}


def test_a_deadlock_is_retried_and_leaves_one_copy(private_mariadb, private_db_url, caplog):
    frame, end = _small_frame()
    wh = Warehouse(private_db_url)
    wh.write_partition("price_data_real", frame, start=START, end=end, run_id="old", code_version="1")
    database = wh.engine.url.database
    private_mariadb.execute("CREATE TABLE ballast (id INT PRIMARY KEY, pad VARCHAR(64))", database=database)

    # A foreign transaction, made heavier than the write (so InnoDB picks the write as the victim),
    # locks the range's partition_log rows, then asks for its price rows once the write holds them.
    other = private_mariadb.admin(database)
    other.autocommit(False)
    with other.cursor() as cursor:
        cursor.executemany("INSERT INTO ballast VALUES (%s, %s)", [(i, "x" * 64) for i in range(5000)])
        cursor.execute(
            "SELECT window_start FROM partition_log WHERE asset = 'price_data_real' "
            "AND window_start >= %s AND window_start < %s FOR UPDATE",
            (START, end),
        )

    outcome: dict[str, object] = {}

    def write() -> None:
        try:
            outcome["result"] = wh.write_partition(
                "price_data_real", frame, start=START, end=end, run_id="new", code_version="1"
            )
        except Exception as exc:  # reported below
            outcome["error"] = exc

    with caplog.at_level(logging.WARNING, logger="resources.storage.warehouse"):
        writer = threading.Thread(target=write)
        writer.start()
        _wait_for(
            lambda: _statement_running(private_mariadb, "DELETE FROM partition_log"),
            what="the write to wait on partition_log",
        )
        time.sleep(0.2)  # the DELETE is now blocked on the foreign transaction's locks
        with other.cursor() as cursor:  # closes the cycle: the write is chosen as the victim
            cursor.execute(
                "SELECT symbol FROM price_data_real WHERE window_start >= %s AND window_start < %s FOR UPDATE",
                (START, end),
            )
        other.commit()
        other.close()
        writer.join(60)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"].attempts == 2
    assert "Deadlock found" in caplog.text
    assert _count(wh) == len(frame) and _log_run_ids(wh) == {"new"}


def test_two_writers_racing_on_the_same_windows_leave_one_copy(private_db_url):
    frame, end = _small_frame()
    wh = Warehouse(private_db_url)
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def write(run_id: str) -> None:
        try:
            barrier.wait()
            for _ in range(3):
                wh.write_partition("price_data_real", frame, start=START, end=end, run_id=run_id, code_version="1")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert _count(wh) == len(frame) and len(wh.committed_windows("price_data_real")) == 12
    assert len(_log_run_ids(wh)) == 1


def test_an_idle_connection_killed_by_the_server_is_replaced(private_mariadb, private_db_url):
    wh = Warehouse(private_db_url)
    with wh.engine.connect() as conn:
        victim = conn.execute(sa.text("SELECT CONNECTION_ID()")).scalar_one()
    private_mariadb.execute(f"KILL {int(victim)}")  # the pooled connection dies while idle
    with wh.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT CONNECTION_ID()")).scalar_one() != victim
    frame, end = _small_frame(2)
    result = wh.write_partition("price_data_real", frame, start=START, end=end, run_id="r", code_version="1")
    assert result.attempts == 1 and _count(wh) == len(frame)


def test_pooled_connections_survive_a_server_restart_and_a_crash(private_mariadb, private_db_url):
    wh = Warehouse(private_db_url)
    frame, end = _small_frame(2)
    wh.write_partition("price_data_real", frame, start=START, end=end, run_id="r1", code_version="1")
    held = [wh.engine.connect() for _ in range(3)]  # fill the pool with live connections
    for conn in held:
        conn.close()
    private_mariadb.restart()  # clean shutdown: every pooled connection is now dead
    wh.ping()
    private_mariadb.kill()
    with pytest.raises(sa.exc.OperationalError):
        wh.ping()
    private_mariadb.start()
    wh.ping()
    result = wh.write_partition("price_data_real", frame, start=START, end=end, run_id="r2", code_version="1")
    assert result.attempts == 1 and _count(wh) == len(frame) and _log_run_ids(wh) == {"r2"}


def test_a_write_while_the_server_is_down_fails_fast_with_a_clear_error(private_mariadb, private_db_url):
    wh = Warehouse(private_db_url)
    frame, end = _small_frame(2)
    private_mariadb.kill()
    began = time.monotonic()
    with pytest.raises(WarehouseError, match=r"price_data_real: write of .* failed"):
        wh.write_partition("price_data_real", frame, start=START, end=end, run_id="r", code_version="1")
    assert time.monotonic() - began < 30
    private_mariadb.start()
    assert _count(wh) == 0 and _count(wh, partition_log) == 0


def test_the_api_answers_503_while_the_database_is_down_and_recovers(private_mariadb, private_db_url, tmp_path):
    api_app = pytest.importorskip("api.app")
    from fastapi.testclient import TestClient

    from resources.config.settings import load_settings

    frame, end = _small_frame(2)
    Warehouse(private_db_url).write_partition(
        "price_data_real", frame, start=START, end=end, run_id="r", code_version="1"
    )
    settings = load_settings(
        {"CRYPTO_DB_URL": private_db_url, "CRYPTO_HOME": str(tmp_path), "CRYPTO_API_STATE_TTL": "0"}
    )
    routes = [
        "/v1/prices/latest",
        f"/v1/prices?start={START.isoformat()}&end={end.isoformat()}",
        "/v1/symbols",
        "/v1/freshness",
    ]
    with TestClient(api_app.create_app(settings, cache_prefix="faults:"), raise_server_exceptions=False) as client:
        assert client.get("/ready").status_code == 200
        before = {route: client.get(route) for route in routes}
        assert {r: resp.status_code for r, resp in before.items()} == dict.fromkeys(routes, 200)

        private_mariadb.kill()
        down = {route: client.get(route) for route in ["/ready", *routes]}
        assert {r: resp.status_code for r, resp in down.items()} == dict.fromkeys(["/ready", *routes], 503)
        assert all("Retry-After" in resp.headers for resp in down.values())
        assert client.get("/health").status_code == 200

        private_mariadb.start()
        assert client.get("/ready").status_code == 200
        after = client.get(routes[0])
        assert after.status_code == 200 and after.json()["data"] == before[routes[0]].json()["data"]
