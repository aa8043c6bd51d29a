"""Retention of old windows: rows and their partition_log rows go together, in day batches."""

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from resources.config.universe import load_universe
from resources.sources.simulated import simulated_price_frame
from resources.storage.schema import CONTRACTS, TableContract, partition_log, price_data_real
from resources.storage.warehouse import Warehouse, utc_now
from resources.storage.window_retention import RetentionError, apply_retention, retention_cutoff, retention_days
from resources.storage.windows import DAY

DAY1 = datetime(2026, 11, 20)
ROOT = Path(__file__).resolve().parents[2]


def _populate(url: str) -> Warehouse:
    wh = Warehouse(url)
    coins = load_universe()[:5]
    end = DAY1 + 3 * DAY
    wh.write_partition(
        "price_data_real", simulated_price_frame(coins, DAY1, end), start=DAY1, end=end, run_id="r", code_version="1"
    )
    item = {"source": "rss", "title": "t", "summary": None, "url": "u", "symbols": "BTC"}
    news = pd.DataFrame(
        [
            {
                "item_id": f"n{d}",
                "published_at": DAY1 + d * DAY,
                "collected_at": DAY1 + d * DAY,
                "window_start": DAY1 + d * DAY,
                **item,
            }
            for d in range(3)
        ]
    )
    wh.write_partition("news_items", news, start=DAY1, end=end, run_id="n", code_version="1", mode="merge")
    macro = pd.DataFrame(
        {
            "series_id": "DFF",
            "observation_date": [(DAY1 + d * DAY).date() for d in range(3)],
            "value": 5.0,
            "realtime_start": DAY1.date(),
            "source": "fred",
        }
    )
    wh.write_partition(
        "macro_indicators",
        macro,
        start=DAY1,
        end=end,
        run_id="m",
        code_version="1",
        time_column="observation_date",
        window=DAY,
    )
    return wh


def _count(wh: Warehouse, stmt) -> int:
    with wh.engine.connect() as conn:
        return conn.execute(stmt).scalar_one()


def test_old_windows_and_their_log_rows_are_deleted_together(db_url):
    wh = _populate(db_url)
    report = apply_retention(wh, 1, now=DAY1 + 2 * DAY + timedelta(hours=13))
    assert report.cutoff == DAY1 + DAY
    assert report.rows["price_data_real"] == 5 * 288 and report.windows["price_data_real"] == 288
    assert report.rows["news_items"] == 1 and report.windows["news_items"] == 288
    assert report.rows["macro_indicators"] == 1 and report.windows["macro_indicators"] == 1
    oldest = _count(wh, sa.select(sa.func.min(price_data_real.c.window_start)))
    assert pd.Timestamp(oldest) == pd.Timestamp(DAY1 + DAY)
    assert _count(wh, sa.select(sa.func.count()).select_from(price_data_real)) == 5 * 576
    assert (
        _count(
            wh, sa.select(sa.func.count()).select_from(partition_log).where(partition_log.c.window_start < DAY1 + DAY)
        )
        == 0
    )
    assert _count(wh, sa.select(sa.func.count()).select_from(partition_log)) == 576 + 576 + 2
    again = apply_retention(wh, 1, now=DAY1 + 2 * DAY + timedelta(hours=13))
    assert sum(again.rows.values()) == 0 and again.batches == 0


def test_batches_are_bounded(sqlite_url):
    wh = _populate(sqlite_url)
    report = apply_retention(wh, 1, now=DAY1 + 3 * DAY, tables=["price_data_real"], batch=timedelta(hours=6))
    assert report.batches == 8 and report.rows == {"price_data_real": 5 * 576}


def test_the_setting():
    assert retention_days({}) is None and retention_days({"CRYPTO_RETENTION_DAYS": " "}) is None
    assert retention_days({"CRYPTO_RETENTION_DAYS": "90"}) == 90
    for bad in ("0", "-3", "ninety", "1.5"):
        with pytest.raises(RetentionError, match="CRYPTO_RETENTION_DAYS"):
            retention_days({"CRYPTO_RETENTION_DAYS": bad})
    assert retention_cutoff(30, datetime(2026, 12, 31, 23, 59)) == datetime(2026, 12, 1)


def _rows(contract: TableContract, at: datetime, n: int) -> pd.DataFrame:
    """``n`` rows of the contract's table in the window starting at ``at``: every column filled by its type."""
    rows = []
    for i in range(n):
        row: dict[str, object] = {}
        for column in contract.table.columns:
            if isinstance(column.type, sa.DateTime):
                row[column.name] = at
            elif isinstance(column.type, sa.Date):
                row[column.name] = at.date()
            elif isinstance(column.type, (sa.Float, sa.Integer)):
                row[column.name] = 1.0
            else:
                row[column.name] = f"{at:%d}{i}{column.name[:3]}"  # unique, and short enough for every column
        rows.append(row)
    return pd.DataFrame(rows)


def test_the_command_line_deletes_old_windows_of_every_table_and_keeps_new_ones(db_url):
    wh = Warehouse(db_url)
    today = utc_now().replace(hour=0, minute=0, second=0, microsecond=0)
    old, new = today - 4 * DAY, today - DAY  # --days 2 keeps what is at or after today - 2 days
    for contract in CONTRACTS:
        for day in (old, new):
            wh.write_partition(
                contract.name,
                _rows(contract, day, 3),
                start=day,
                end=contract.window_end(day),
                run_id="r",
                code_version="1",
            )
    done = subprocess.run(
        [sys.executable, "-m", "cli.retention", "--what", "windows", "--days", "2", "--db-url", db_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)["windows"]
    cutoff = today - 2 * DAY
    for contract in CONTRACTS:
        table, column = contract.table, contract.table.c[contract.time_column]
        low, _ = contract.time_bounds(cutoff, cutoff)
        assert report["rows_deleted"][contract.name] == 3, contract.name
        assert report["windows_deleted"][contract.name] == 1, contract.name
        assert _count(wh, sa.select(sa.func.count()).select_from(table).where(column < low)) == 0, contract.name
        assert _count(wh, sa.select(sa.func.count()).select_from(table).where(column >= low)) == 3, contract.name
        logged = wh.committed_windows(contract.asset)["window_start"]
        assert [pd.Timestamp(w) for w in logged] == [pd.Timestamp(new)], contract.name
