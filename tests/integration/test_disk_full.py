"""A full disk under the warehouse: the write fails cleanly, keeps the old copy, and a re-run heals.

The warehouse's files are put on a small ``tmpfs`` of their own (a private ``mariadbd`` whose data
directory is on it, or the embedded SQLite file), the disk is filled to the last byte with a
ballast file, and a backfill run is materialised over a day that already holds an older copy of
its first hours. What must hold:

* the run fails with a clear error that says the database is out of disk space;
* nothing of the failed write is kept: the table and ``partition_log`` hold exactly the old copy;
* once the ballast is deleted the same run completes, with one copy of every row.

Mounting needs root (``CAP_SYS_ADMIN``); elsewhere the tests skip.
"""

import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from crypto_assets.prices import price_data_real
from resources.config.universe import load_universe
from resources.sources.price_sources import PriceSourceResource
from resources.sources.simulated import simulated_price_frame
from resources.storage.dagster_resources import WarehouseResource
from resources.storage.schema import price_data_real as price_table
from resources.storage.warehouse import Warehouse, dispose_warehouse
from testkit.fakes.private_mariadb import INSTALL_DB, MARIADBD, PrivateMariaDB

DAY = datetime(2026, 11, 20)
OLD_END = DAY + timedelta(hours=6)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 400 MB tmpfs mounted for this test only.

    A fresh MariaDB takes about 125 MB of it (the 96 MB redo log, a 12 MB system tablespace) and
    may extend its system tablespace by 64 MB on the first large write: 400 MB leaves room for that.
    """
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=400M", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path) -> Path:
    """Write a ballast file until the disk has no byte left; returns its path."""
    ballast = disk / "ballast"
    chunk = b"\0" * (1 << 20)
    with open(ballast, "wb") as handle:
        try:
            while True:
                handle.write(chunk)
                handle.flush()
        except OSError as exc:
            assert exc.errno == 28, exc  # ENOSPC
    assert shutil.disk_usage(disk).free < (1 << 20)
    return ballast


def materialize_day(url: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [price_data_real],
        resources={"warehouse": WarehouseResource(db_url=url), "price_source": PriceSourceResource(mode="simulated")},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        tags={
            "dagster/asset_partition_range_start": "2026-11-20-00:00",
            "dagster/asset_partition_range_end": "2026-11-20-23:55",
        },
    )


def step_error(result: dg.ExecuteInProcessResult) -> str:
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    return str(failure.event_specific_data.error)


def table_state(wh: Warehouse) -> tuple[int, int, set[str]]:
    """Rows of the price table, duplicated keys, and the run ids in partition_log."""
    with wh.engine.connect() as conn:
        rows = conn.execute(sa.select(sa.func.count()).select_from(price_table)).scalar_one()
        duplicates = conn.execute(
            sa.text(
                "SELECT COUNT(*) FROM (SELECT symbol, window_start FROM price_data_real "
                "GROUP BY symbol, window_start HAVING COUNT(*) > 1) d"
            )
        ).scalar_one()
    return rows, duplicates, set(wh.committed_windows("price_data_real").run_id)


def full_disk_round(url: str, disk: Path) -> None:
    """Old copy, full disk, failed run that keeps the old copy, freed disk, completed re-run."""
    wh = Warehouse(url)
    old = simulated_price_frame(load_universe(), DAY, OLD_END)
    wh.write_partition("price_data_real", old, start=DAY, end=OLD_END, run_id="old", code_version="1")
    before = table_state(wh)
    assert before == (len(old), 0, {"old"})

    ballast = fill(disk)
    failed = materialize_day(url)
    assert not failed.success
    error = step_error(failed)
    # MariaDB may already fail the schema check (its temporary tables need disk too), else the write.
    assert "WarehouseError" in error and "out of disk space" in error and "nothing of this write was kept" in error
    assert table_state(wh) == before, "the failed write left rows or log entries behind"

    ballast.unlink()
    rerun = materialize_day(url)
    assert rerun.success
    rows, duplicates, run_ids = table_state(wh)
    assert (rows, duplicates, run_ids) == (288 * len(load_universe()), 0, {rerun.run_id})


@pytest.mark.mysql
def test_mariadb_on_a_full_disk(small_disk: Path) -> None:
    if not (os.path.exists(MARIADBD) and os.path.exists(INSTALL_DB)):
        pytest.skip("mariadbd / mariadb-install-db not installed")
    server = PrivateMariaDB(small_disk / "mariadb")
    server.start()
    url = server.create_database()
    try:
        full_disk_round(url, small_disk)
        assert server.running  # the server rode out the full disk; no restart was needed
    finally:
        dispose_warehouse(url)
        server.stop()


def test_sqlite_on_a_full_disk(small_disk: Path) -> None:
    url = f"sqlite:///{small_disk / 'warehouse.sqlite'}"
    try:
        full_disk_round(url, small_disk)
    finally:
        dispose_warehouse(url)
