"""Backup and restore: SQLite -> Parquet -> MariaDB -> Parquet -> SQLite, byte for byte, served unchanged."""

import json
import subprocess
import sys
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from resources.config.universe import load_universe
from resources.sources.simulated import simulated_price_frame
from resources.storage.parquet_backup import export_warehouse, read_manifest, restore_warehouse
from resources.storage.schema import FEATURES, METADATA, partition_log, price_data_real
from resources.storage.warehouse import Warehouse
from resources.storage.windows import DAY

DAY1 = datetime(2026, 11, 20)
NASTY = [
    'it\'s a "quote"',
    "back\\slash\\",
    "'); DROP TABLE news_items; --",
    "new\nline\ttab",
    "nul\x00byte",
    "emoji 🚀 and 中文",
    "%s %(x)s ?",
]


def _news(start: datetime, count: int) -> pd.DataFrame:
    published = [start + timedelta(minutes=7 * i + 1) for i in range(count)]
    return pd.DataFrame(
        {
            "item_id": [f"item{start:%d%H%M}{i:03d}" for i in range(count)],
            "source": "rss",
            "published_at": published,
            "collected_at": [p + timedelta(seconds=30) for p in published],
            "window_start": [p - timedelta(minutes=p.minute % 5) for p in published],
            "title": [NASTY[i % len(NASTY)] + f" #{i}" for i in range(count)],
            "summary": [None if i % 3 == 0 else f"summary {i} ✓" for i in range(count)],
            "url": [f"https://example.invalid/{i}?a='b'" for i in range(count)],
            "symbols": ["BTC,ETH" if i % 2 else "" for i in range(count)],
        }
    )


def _sentiment(news: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    rows = news[news.symbols != ""]
    return pd.DataFrame(
        {
            "item_id": rows.item_id.to_numpy(),
            "symbol": "BTC",
            "model": "lexicon",
            "window_start": rows.window_start.to_numpy(),
            "sentiment_score": rng.uniform(-1, 1, len(rows)),
            "confidence": rng.uniform(0, 1, len(rows)),
            "label": "neutral",
            "source": "rss",
            "analyzed_at": rows.collected_at.to_numpy(),
        }
    )


def _features(coins, start: datetime, windows: int) -> pd.DataFrame:
    names = [
        c.name
        for c in METADATA.tables[FEATURES.name].columns
        if c.name not in ("symbol", "timestamp", "price", "feature_set_version")
    ]
    rng = np.random.default_rng(3)
    keys = pd.DataFrame(
        [(c.symbol, start + i * timedelta(minutes=5)) for i in range(windows) for c in coins],
        columns=["symbol", "timestamp"],
    )
    values = rng.normal(size=(len(keys), len(names)))
    values[rng.uniform(size=values.shape) < 0.1] = np.nan
    return pd.concat(
        [
            keys.assign(price=rng.uniform(1, 100, len(keys)), feature_set_version="v1"),
            pd.DataFrame(values, columns=names),
        ],
        axis=1,
    )


def _populate(url: str) -> Warehouse:
    """Two days of prices (with an uncommitted gap), news, sentiment, macro, and a stray uncommitted row."""
    wh = Warehouse(url)
    coins = load_universe()[:15]
    for start, end, run in [
        (DAY1, DAY1 + timedelta(hours=10), "day1-a"),
        (DAY1 + timedelta(hours=11), DAY1 + DAY, "day1-b"),
        (DAY1 + DAY, DAY1 + DAY + timedelta(hours=6), "day2"),
    ]:
        frame = simulated_price_frame(coins, start, end)
        frame.loc[frame.index[::97], "market_cap"] = np.nan  # NULLs must survive
        wh.write_partition("price_data_real", frame, start=start, end=end, run_id=run, code_version="1")
    news = _news(DAY1, 40)
    end = DAY1 + timedelta(hours=5)
    wh.write_partition("news_items", news, start=DAY1, end=end, run_id="news", code_version="2", mode="merge")
    wh.write_partition("sentiment_data", _sentiment(news), start=DAY1, end=end, run_id="sent", code_version="1")
    features = _features(coins, DAY1 + timedelta(hours=2), 24)
    wh.write_partition(
        FEATURES.name,
        features,
        start=DAY1 + timedelta(hours=2),
        end=DAY1 + timedelta(hours=4),
        run_id="feat",
        code_version="3",
        time_column="timestamp",
    )
    macro = pd.DataFrame(
        {
            "series_id": ["DGS10", "DFF"],
            "observation_date": [DAY1.date(), DAY1.date()],
            "value": [4.25, None],
            "realtime_start": [DAY1.date(), DAY1.date()],
            "source": "fred",
        }
    )
    wh.write_partition(
        "macro_indicators",
        macro,
        start=DAY1,
        end=DAY1 + DAY,
        run_id="macro",
        code_version="1",
        time_column="observation_date",
        window=DAY,
    )
    with wh.engine.begin() as conn:  # a row in a window that was never committed: not backed up
        stray = simulated_price_frame(
            coins[:1], DAY1 + timedelta(hours=10, minutes=5), DAY1 + timedelta(hours=10, minutes=10)
        )
        conn.execute(price_data_real.insert(), stray.to_dict("records"))
    return wh


def _dump(directory) -> dict[str, pd.DataFrame]:
    out = {}
    for table in [
        "price_data_real",
        "news_items",
        "sentiment_data",
        "macro_indicators",
        FEATURES.name,
        "partition_log",
    ]:
        frame = pq.read_table(directory / table).to_pandas()
        frame = frame.drop(columns=[c for c in ("date", "run_id", "committed_at") if c in frame.columns])
        out[table] = frame.sort_values(list(frame.columns[:3])).reset_index(drop=True)
    return out


def _assert_same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    assert a.keys() == b.keys()
    for table in a:
        pd.testing.assert_frame_equal(a[table], b[table], check_exact=True, obj=table)


def test_round_trip_sqlite_parquet_mariadb_parquet_sqlite(sqlite_url, mysql_url, tmp_path):
    source = _populate(sqlite_url)
    first = export_warehouse(source, tmp_path / "b1")
    assert first.rows["price_data_real"] == 15 * (288 - 12 + 72)  # the uncommitted hour and stray row are out
    assert first.windows["price_data_real"] == 288 - 12 + 72
    assert first.rows["news_items"] == 40 and first.rows["macro_indicators"] == 2
    assert first.dates == ["2026-11-20", "2026-11-21"]
    assert (tmp_path / "b1" / "price_data_real" / "date=2026-11-21" / "part.parquet").is_file()
    manifest = read_manifest(tmp_path / "b1")
    assert manifest["tables"]["price_data_real"]["dates"]["2026-11-20"] == {"rows": 15 * 276, "windows": 276}

    target = Warehouse(mysql_url)
    restored = restore_warehouse(target, tmp_path / "b1")
    assert restored.rows == first.rows
    assert restored.writes == 3 + 1 + 1 + 1 + 1  # one write a run of consecutive windows, a day at most
    export_warehouse(target, tmp_path / "b2")
    _assert_same(_dump(tmp_path / "b1"), _dump(tmp_path / "b2"))
    assert set(target.committed_windows("price_data_real").run_id) == {
        f"restore:{manifest['exports'][-1]['backup_id']}"
    }

    back = Warehouse(sqlite_url.replace("warehouse.sqlite", "restored.sqlite"))
    restore_warehouse(back, tmp_path / "b2")
    export_warehouse(back, tmp_path / "b3")
    _assert_same(_dump(tmp_path / "b1"), _dump(tmp_path / "b3"))


def test_restore_into_an_existing_warehouse_replaces_only_the_backed_up_windows(sqlite_url, tmp_path):
    wh = _populate(sqlite_url)
    export_warehouse(wh, tmp_path / "b", start="2026-11-21", end="2026-11-22")
    assert sorted(p.name for p in (tmp_path / "b" / "price_data_real").iterdir()) == ["date=2026-11-21"]
    with wh.engine.begin() as conn:  # damage: day 2 loses rows, day 1 is edited (and must stay edited)
        conn.execute(
            sa.delete(price_data_real).where(
                price_data_real.c.window_start >= DAY1 + DAY, price_data_real.c.symbol == "BTC"
            )
        )
        conn.execute(
            sa.update(price_data_real)
            .where(price_data_real.c.window_start < DAY1 + timedelta(hours=1))
            .values(close=1.0)
        )
    report = restore_warehouse(wh, tmp_path / "b")
    assert report.rows["price_data_real"] == 15 * 72
    day2 = wh.read_frame(sa.select(price_data_real).where(price_data_real.c.window_start >= DAY1 + DAY))
    assert len(day2) == 15 * 72
    edited = wh.read_frame(
        sa.select(price_data_real.c.close).where(price_data_real.c.window_start < DAY1 + timedelta(hours=1))
    )
    assert set(edited.close) == {1.0}


def test_export_of_a_day_already_backed_up_replaces_it_and_keeps_the_others(sqlite_url, tmp_path):
    wh = _populate(sqlite_url)
    export_warehouse(wh, tmp_path / "b")
    new_day = simulated_price_frame(load_universe()[:3], DAY1 + DAY, DAY1 + DAY + timedelta(hours=7))
    wh.write_partition(
        "price_data_real",
        new_day,
        start=DAY1 + DAY,
        end=DAY1 + DAY + timedelta(hours=7),
        run_id="later",
        code_version="1",
    )
    second = export_warehouse(wh, tmp_path / "b", start="2026-11-21")
    assert second.rows["price_data_real"] == 3 * 84
    manifest = read_manifest(tmp_path / "b")
    assert manifest["tables"]["price_data_real"]["dates"]["2026-11-20"]["rows"] == 15 * 276
    assert manifest["tables"]["price_data_real"]["dates"]["2026-11-21"]["rows"] == 3 * 84
    assert len(manifest["exports"]) == 2 and "password" not in json.dumps(manifest)


def test_cli_exports_and_restores(sqlite_url, tmp_path):
    _populate(sqlite_url)
    target = f"sqlite:///{tmp_path / 'cli_target.sqlite'}"
    for action, url in [("export", sqlite_url), ("restore", target)]:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "cli.backup",
                action,
                "--db-url",
                url,
                "--dir",
                str(tmp_path / "cli"),
                "--start",
                "2026-11-20",
                "--end",
                "2026-11-21",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        summary = json.loads(done.stdout)
        assert summary["action"] == action and summary["rows"]["price_data_real"] == 15 * 276
    rows = Warehouse(target).read_frame(sa.select(sa.func.count()).select_from(partition_log))
    assert rows.iloc[0, 0] == 276 + 60 + 60 + 24 + 1  # prices, news, sentiment (5 h), features (2 h), a macro day


def test_the_api_serves_the_restored_warehouse_unchanged(sqlite_url, mysql_url, tmp_path):
    api_app = pytest.importorskip("api.app")
    from fastapi.testclient import TestClient

    from resources.config.settings import load_settings

    source = _populate(sqlite_url)
    export_warehouse(source, tmp_path / "b")
    restore_warehouse(Warehouse(mysql_url), tmp_path / "b")
    window = "start=2026-11-20T00:00:00Z&end=2026-11-22T00:00:00Z"
    routes = [
        f"/v1/prices?{window}&limit=10000",
        f"/v1/prices?{window}&format=csv&symbols=BTC,ETH",
        "/v1/prices/latest",
        f"/v1/news?{window}",
        f"/v1/sentiment?{window}",
        f"/v1/features?{window}&symbols=BTC,ETH&limit=10000",
        "/v1/macro?start=2026-11-01&end=2026-12-01",
        "/v1/symbols",
    ]

    def serve(url: str) -> dict[str, object]:
        settings = load_settings({"CRYPTO_DB_URL": url, "CRYPTO_HOME": str(tmp_path / "home")})
        with TestClient(api_app.create_app(settings, cache_prefix=f"backup-{url[-8:]}:")) as client:
            out = {}
            for route in routes:
                response = client.get(route)
                assert response.status_code == 200, (route, response.text[:500])
                out[route] = response.text if "csv" in route else response.json()
            return out

    original, restored = serve(sqlite_url), serve(mysql_url)
    for route in routes:
        if isinstance(original[route], dict):
            assert original[route].get("data") == restored[route].get("data"), route
        else:
            assert original[route] == restored[route], route
    assert original[routes[0]]["count"] == 15 * (276 + 72)


def test_the_maintenance_jobs_back_up_a_day_and_apply_retention(sqlite_url, tmp_path, monkeypatch):
    from crypto_assets.maintenance import backup_job, retention_job
    from resources.config.settings import load_settings
    from resources.storage.dagster_resources import MaintenanceResource, WarehouseResource

    def resources() -> dict:
        """The job's resources as the definitions build them, from the settings of the environment now."""
        maintenance = MaintenanceResource.from_settings(load_settings())
        return {"warehouse": WarehouseResource(db_url=sqlite_url), "maintenance": maintenance}

    wh = _populate(sqlite_url)
    skipped = backup_job.execute_in_process(resources=resources(), tags={"crypto/backup_day": "2026-11-21"})
    assert skipped.success and not (tmp_path / "daily").exists()
    monkeypatch.setenv("CRYPTO_BACKUP_DIR", str(tmp_path / "daily"))
    done = backup_job.execute_in_process(resources=resources(), tags={"crypto/backup_day": "2026-11-21"})
    assert done.success
    assert sorted(p.name for p in (tmp_path / "daily" / "price_data_real").iterdir()) == ["date=2026-11-21"]
    monkeypatch.setenv("CRYPTO_RETENTION_DAYS", "1")
    pruned = retention_job.execute_in_process(resources=resources())
    assert pruned.success  # today is long after the test data: every window goes
    assert wh.read_frame(sa.select(sa.func.count()).select_from(price_data_real)).iloc[0, 0] == 0
