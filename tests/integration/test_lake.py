"""The Delta Lake copy of the features: writes on disk and on a loopback S3 server, heals, races,
failures and their healing, and the gateway reading it (lake and MySQL paths equal, ``as_of``)."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta

import boto3
import dagster as dg
import duckdb
import httpx
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.ipc as pa_ipc
import pytest
import sqlalchemy as sa
from deltalake import DeltaTable
from fastapi.testclient import TestClient

from api.client import CryptoDataClient
from crypto_assets.features.lake_asset import lake_matches_warehouse, ml_features_lake
from resources.storage.dagster_resources import LakeResource, WarehouseResource
from resources.storage.lake import AsOfBeforeLake, AsOfExpired, FeatureLake
from resources.storage.schema import FEATURES, partition_log
from resources.storage.warehouse import get_warehouse, utc_now
from sensors.gaps import WindowLogs, missing_windows, stale_windows
from tests.integration.test_api_support import (
    PRICE_END,
    SYMBOLS,
    T0,
    WINDOW,
    feature_columns,
    feature_frame,
    free_port,
    make_app,
    seed,
    serve,
)

HEALED = T0 + 5 * WINDOW
COLUMNS = ["price", *feature_columns()[:3]]


def commit_features(
    url: str, window: datetime, frame: pd.DataFrame | None = None, run_id: str = "later"
) -> pd.DataFrame:
    """Commit one feature window (``frame``, or the seed's values) as a features run does."""
    frame = feature_frame([window]) if frame is None else frame
    get_warehouse(url).write_partition(
        FEATURES.name,
        frame,
        start=window,
        end=window + WINDOW,
        run_id=run_id,
        code_version="1",
        time_column="timestamp",
    )
    return frame


def heal(url: str, window: datetime = HEALED, offset: float = 1000.0) -> pd.DataFrame:
    """Re-commit one feature window with new values (a healed gap, a recomputation)."""
    frame = feature_frame([window])
    frame["price"] = frame["price"] + offset
    return commit_features(url, window, frame, "heal")


def lake_frame(lake: FeatureLake, **kwargs) -> pd.DataFrame:
    table = lake.table(**kwargs).to_pyarrow_table(columns=["symbol", "timestamp", "price"])
    return table.to_pandas().sort_values(["symbol", "timestamp"]).reset_index(drop=True)


def arrow(response) -> pa.Table:
    assert response.status_code == 200, response.text
    return pa_ipc.open_stream(io.BytesIO(response.content)).read_all()


@pytest.fixture
def s3():
    """A real S3-compatible server (moto's server mode) on loopback, with a bucket ``lake``.

    In a process of its own: delta-rs holds the GIL in some blocking calls, which would starve a
    server thread of this process (``ThreadedMotoServer``)."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(endpoint + "/moto-api/", timeout=1).status_code < 500:
                break
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("moto's S3 server did not start")
        time.sleep(0.1)
    options = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
    }
    boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    ).create_bucket(Bucket="lake")
    yield options
    server.terminate()
    server.wait(timeout=10)


# ---------------------------------------------------------------------------------- writes
def test_sync_copies_committed_windows_and_a_heal_replaces_its_window_in_one_commit(db_url, tmp_path):
    seed(db_url)  # includes a window with rows but no partition_log row
    wh = get_warehouse(db_url)
    lake = FeatureLake(str(tmp_path / "lake"))
    first = lake.sync(wh, T0, PRICE_END + 4 * WINDOW, "lake-1")
    committed = wh.committed_windows(FEATURES.name, T0, PRICE_END + 4 * WINDOW)
    assert first.rows == int(committed["row_count"].sum()) == 24 * len(SYMBOLS)
    assert first.windows == first.windows_logged == 24
    before = lake_frame(lake)
    assert before["timestamp"].max() == pd.Timestamp(PRICE_END - WINDOW, tz="UTC")  # the uncommitted one is absent

    new = heal(db_url)
    second = lake.sync(wh, HEALED, HEALED + WINDOW, "lake-2")
    assert second.version == first.version + 1  # one Delta commit for the window
    after = lake_frame(lake)
    assert len(after) == len(before) and not after.duplicated(["symbol", "timestamp"]).any()
    healed = after[after["timestamp"] == pd.Timestamp(HEALED, tz="UTC")].set_index("symbol")["price"]
    assert healed.to_dict() == new.set_index("symbol")["price"].to_dict()
    others = after["timestamp"] != pd.Timestamp(HEALED, tz="UTC")
    assert (
        after[others]["price"].tolist()
        == before[before["timestamp"] != pd.Timestamp(HEALED, tz="UTC")]["price"].tolist()
    )
    commit = DeltaTable(lake.uri).history(1)[0]
    assert commit["operation"] == "WRITE" and commit["crypto.run_id"] == "lake-2"
    logged = lake.windows(T0, PRICE_END)
    assert len(logged) == 24 and set(logged[logged.window_start == HEALED]["lake_version"]) == {second.version}


def test_the_lake_log_names_each_windows_copied_commit_and_the_newest_sync_decides(sqlite_url, tmp_path):
    seed(sqlite_url)
    wh = get_warehouse(sqlite_url)
    lake = FeatureLake(str(tmp_path / "lake"))
    assert lake.windows(T0, PRICE_END).empty  # no table yet
    first = lake.sync(wh, T0, PRICE_END, "lake-1")
    committed = wh.committed_windows(FEATURES.name, T0, PRICE_END)
    logged = lake.windows(T0, PRICE_END)
    assert list(logged["committed_at"]) == list(committed["committed_at"])
    assert list(logged["row_count"]) == list(committed["row_count"]) and set(logged["lake_version"]) == {first.version}
    # A window no longer committed when the range is copied again is absent: the newest sync decides.
    with wh.engine.begin() as conn:
        conn.execute(
            sa.delete(partition_log).where(
                partition_log.c.asset == FEATURES.name, partition_log.c.window_start == HEALED
            )
        )
    lake.sync(wh, HEALED, HEALED + WINDOW, "lake-2")
    assert HEALED not in set(lake.windows(T0, PRICE_END)["window_start"])
    assert len(lake.windows(T0, PRICE_END)) == len(committed) - 1


def test_lake_on_a_loopback_s3_server_read_by_duckdb_and_polars(sqlite_url, s3):
    seed(sqlite_url)
    wh = get_warehouse(sqlite_url)
    lake = FeatureLake("s3://lake/prod", s3)
    middle = T0 + 12 * WINDOW
    lake.sync(wh, T0, middle, "lake-s3")
    lake.sync(wh, middle, PRICE_END, "lake-s3-live")  # a second file in the day
    heal(sqlite_url)
    lake.sync(wh, HEALED, HEALED + WINDOW, "lake-s3-heal")
    table = lake.table()
    assert table.version() == 2 and len(lake_frame(lake)) == 24 * len(SYMBOLS)
    dataset = table.to_pyarrow_dataset()  # noqa: F841 (DuckDB's replacement scan reads it by name, as in the README)
    by_duckdb = duckdb.sql(
        "SELECT symbol, count(*) AS n, max(price) AS top FROM dataset GROUP BY symbol ORDER BY symbol"
    ).fetchall()
    assert [(s, n) for s, n, _ in by_duckdb] == [(s, 24) for s in sorted(SYMBOLS)]
    assert min(top for _, _, top in by_duckdb) > 1000  # the healed window's values
    by_polars = pl.scan_delta("s3://lake/prod/ml_features", storage_options=s3).select("symbol", "price").collect()
    assert by_polars.height == 24 * len(SYMBOLS)
    maintenance = lake.maintain(wh)
    assert maintenance["days_compacted"] == 1 and lake_frame(lake).equals(lake_frame(lake, version=2))
    assert len(lake.table().file_uris()) == 1
    compacted = lake.table().to_pyarrow_table(columns=["symbol", "timestamp"])  # the day's one file, in key order
    assert compacted.equals(compacted.sort_by([("symbol", "ascending"), ("timestamp", "ascending")]))


def test_two_syncs_racing_on_a_window_leave_one_copy(sqlite_url, s3):
    seed(sqlite_url)
    wh = get_warehouse(sqlite_url)
    lake = FeatureLake("s3://lake/race", s3)
    lake.sync(wh, T0, PRICE_END, "lake-0")
    heal(sqlite_url)
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            lake.sync(wh, HEALED, HEALED + WINDOW, name)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"racer-{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    frame = lake_frame(lake)
    assert len(frame) == 24 * len(SYMBOLS) and not frame.duplicated(["symbol", "timestamp"]).any()
    assert lake.table().version() == 3  # one commit each, serialised on the lake lock


def test_a_failed_lake_write_leaves_the_warehouse_committed_and_the_gap_sensor_finds_it(sqlite_url, tmp_path):
    wh = get_warehouse(sqlite_url)
    now = utc_now()
    window = datetime(now.year, now.month, now.day) - timedelta(days=1)  # inside the partitions' horizon
    commit_features(sqlite_url, window, run_id="features")
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the lake should be")
    partition = window.strftime("%Y-%m-%d-%H:%M")
    failed = dg.materialize(
        [ml_features_lake, lake_matches_warehouse],
        partition_key=partition,
        raise_on_error=False,
        resources={"warehouse": WarehouseResource(db_url=sqlite_url), "lake": LakeResource(uri=str(blocked))},
    )
    assert not failed.success
    assert len(wh.committed_windows(FEATURES.name, window, window + WINDOW)) == 1  # the warehouse is untouched
    logs = WindowLogs(wh, FeatureLake(str(tmp_path / "lake")))
    assert window in missing_windows(logs, ["ml_features_lake"], window, window + WINDOW, WINDOW)

    good = {"warehouse": WarehouseResource(db_url=sqlite_url), "lake": LakeResource(uri=str(tmp_path / "lake"))}
    healed = dg.materialize([ml_features_lake, lake_matches_warehouse], partition_key=partition, resources=good)
    assert healed.success
    check = healed.get_asset_check_evaluations()[0]
    assert check.passed and check.metadata["lake_rows"].value == len(SYMBOLS)
    assert not missing_windows(logs, ["ml_features_lake"], window, window + WINDOW, WINDOW)
    # A feature window re-committed after its copy makes the lake window stale until it is re-run.
    time.sleep(0.01)
    heal(sqlite_url, window=window)
    assert stale_windows(logs, {"ml_features_lake": {FEATURES.name: 1}}, window, window + WINDOW, WINDOW) == {
        window: {"ml_features_lake"}
    }


# ---------------------------------------------------------------------------------- the gateway
@pytest.fixture
def lake_url(db_url, tmp_path):
    """A seeded warehouse whose committed windows are all in the lake at ``tmp_path / 'lake'``."""
    seed(db_url)
    FeatureLake(str(tmp_path / "lake")).sync(get_warehouse(db_url), T0, PRICE_END, "lake-run")
    return db_url


def _features(client: TestClient, **params) -> tuple[pa.Table, dict]:
    query = {"start": T0.isoformat(), "end": (PRICE_END + 4 * WINDOW).isoformat(), "format": "arrow", **params}
    response = client.get("/v1/features", params=query)
    return arrow(response), response.headers


def test_live_reads_come_from_the_warehouse_and_the_lake_version_has_the_same_values(lake_url, tmp_path):
    """Live ``/v1/features`` is the warehouse's with or without a lake (no ``X-Lake-Version``); the
    lake's version of now (``as_of``) holds the same values, JSON pages and cursors included."""
    with (
        TestClient(make_app(lake_url, CRYPTO_LAKE_URI=str(tmp_path / "lake"))) as lake_client,
        TestClient(make_app(lake_url, CRYPTO_LAKE_URI=str(tmp_path / "no-lake"))) as mysql_client,
    ):
        for params in ({}, {"columns": ",".join(COLUMNS), "symbols": "eth,btc"}):
            live, live_headers = _features(lake_client, **params)
            from_mysql, mysql_headers = _features(mysql_client, **params)
            from_lake, lake_headers = _features(lake_client, **params, as_of=utc_now().isoformat())
            assert "X-Lake-Version" not in live_headers and "X-Lake-Version" not in mysql_headers
            assert lake_headers["X-Lake-Version"] == "0"
            assert (
                lake_headers["X-Data-As-Of"]
                == live_headers["X-Data-As-Of"]
                == mysql_headers["X-Data-As-Of"]
                == (PRICE_END - WINDOW).isoformat() + "Z"
            )
            assert from_lake.schema == from_mysql.schema and from_lake.num_rows == 24 * (3 if not params else 2)
            assert from_lake.equals(from_mysql) and live.equals(from_mysql)
        # JSON pages and their cursors are the same on both stores.
        pages = []
        for extra in ({}, {"as_of": utc_now().isoformat()}):
            cursor, rows = None, []
            while True:
                body = lake_client.get(
                    "/v1/features",
                    params={
                        "start": T0.isoformat(),
                        "end": PRICE_END.isoformat(),
                        "columns": "price",
                        "limit": 25,
                        **extra,
                        **({"cursor": cursor} if cursor else {}),
                    },
                ).json()
                rows += body["data"]
                cursor = body["next_cursor"]
                if cursor is None:
                    break
            pages.append(rows)
        assert pages[0] == pages[1] and len(pages[0]) == 72
        # A window committed after the copy is served at once (from the warehouse).
        commit_features(lake_url, PRICE_END)
        partial, headers = _features(lake_client)
        assert "X-Lake-Version" not in headers and partial.equals(_features(mysql_client)[0])
        assert partial.num_rows == 25 * 3
        # A window re-committed after its copy (a heal): its new values at once.
        new = heal(lake_url)
        behind, headers = _features(lake_client)
        assert behind.equals(_features(mysql_client)[0])
        served = behind.to_pandas().set_index(["symbol", "timestamp"])["price"]
        assert served[("BTC", pd.Timestamp(HEALED, tz="UTC"))] == new.set_index("symbol")["price"]["BTC"]


def test_as_of_shows_the_values_before_a_heal_and_rejects_bad_times(lake_url, tmp_path):
    lake = FeatureLake(str(tmp_path / "lake"))
    created = utc_now()
    time.sleep(0.05)
    before_heal = utc_now()
    time.sleep(0.05)
    new = heal(lake_url)
    lake.sync(get_warehouse(lake_url), HEALED, HEALED + WINDOW, "lake-heal")
    window = {"start": HEALED.isoformat(), "end": (HEALED + WINDOW).isoformat(), "columns": "price"}
    with TestClient(make_app(lake_url, CRYPTO_LAKE_URI=str(tmp_path / "lake"))) as client:
        now, headers = _features(client, **window)
        then, then_headers = _features(client, **window, as_of=before_heal.isoformat() + "Z")
        assert "X-Lake-Version" not in headers and then_headers["X-Lake-Version"] == "0"
        assert then_headers["X-Data-As-Of"] == (PRICE_END - WINDOW).isoformat() + "Z"
        prices_now = dict(zip(now["symbol"].to_pylist(), now["price"].to_pylist()))
        prices_then = dict(zip(then["symbol"].to_pylist(), then["price"].to_pylist()))
        assert prices_now == new.set_index("symbol")["price"].to_dict()
        original = lake_frame(lake, version=0)
        original = original[original["timestamp"] == pd.Timestamp(HEALED, tz="UTC")]
        assert prices_then == dict(zip(original["symbol"], original["price"]))
        assert all(prices_then[s] != prices_now[s] for s in SYMBOLS)
        future = client.get("/v1/features", params={**window, "as_of": (utc_now() + timedelta(hours=1)).isoformat()})
        assert future.status_code == 400 and "future" in future.json()["detail"]
        assert future.json()["parameter"] == "as_of"
        first = lake.first_version_at(lake.table())
        assert first is not None and created - timedelta(seconds=1) <= first <= before_heal
        for old in (created - timedelta(seconds=30), utc_now() - timedelta(days=31)):
            younger = client.get("/v1/features", params={**window, "as_of": old.isoformat()})
            assert younger.status_code == 404 and younger.json()["parameter"] == "as_of"
            assert "the lake did not exist yet" in younger.json()["detail"]
            assert f"first version, written at {first.isoformat(timespec='seconds')}Z" in younger.json()["detail"]
        malformed = client.get("/v1/features", params={**window, "as_of": "yesterday"})
        assert 400 <= malformed.status_code < 500
    with serve(lake_url, CRYPTO_LAKE_URI=str(tmp_path / "lake")) as base, CryptoDataClient(base) as notebook:
        frame = notebook.features(["BTC"], start=HEALED, end=HEALED + WINDOW, columns=["price"], as_of=before_heal)
        assert frame["price"].iloc[0] == pytest.approx(prices_then["BTC"])
        assert notebook.features(["BTC"], start=HEALED, end=HEALED + WINDOW, columns=["price"])["price"].iloc[
            0
        ] == pytest.approx(prices_now["BTC"])


def test_an_as_of_whose_version_was_vacuumed_is_gone_not_missing(lake_url, tmp_path):
    lake = FeatureLake(str(tmp_path / "lake"), retention_days=1)
    written = lake.first_version_at(lake.table())
    assert written is not None
    later = written + timedelta(days=2)  # the retention has passed over the first version
    with pytest.raises(AsOfExpired, match="versions are kept 1 days, CRYPTO_LAKE_RETENTION_DAYS"):
        lake.table_as_of(written + timedelta(seconds=1), now=later)
    with pytest.raises(AsOfBeforeLake, match="the lake did not exist yet"):
        lake.table_as_of(written - timedelta(days=3), now=later)
    assert lake.table_as_of(later - timedelta(hours=1), now=later).version() == 0


def test_freshness_lists_the_lake_copy(lake_url, tmp_path):
    with TestClient(make_app(lake_url, CRYPTO_LAKE_URI=str(tmp_path / "lake"))) as client:
        assets = {a["asset"]: a for a in client.get("/v1/freshness").json()["assets"]}
    lake, features = assets["ml_features_lake"], assets["ml_features_materialized"]
    assert lake["status"] == "materialized" and lake["last_run_id"] == "lake-run"
    assert lake["last_window_start"] == features["last_window_start"]
    assert lake["windows"] == features["windows"] and lake["rows"] == features["rows"]
    assert lake["last_committed_at"] is not None and lake["age_seconds"] >= 0


def test_no_lake_yet_as_of_is_a_404_and_live_reads_fall_back(sqlite_url, tmp_path):
    seed(sqlite_url)
    with TestClient(make_app(sqlite_url, CRYPTO_LAKE_URI=str(tmp_path / "empty"))) as client:
        table, headers = _features(client)
        assert "X-Lake-Version" not in headers and table.num_rows == 24 * len(SYMBOLS)
        missing = client.get("/v1/features", params={"as_of": utc_now().isoformat()})
        assert missing.status_code == 404 and "no lake table" in missing.json()["detail"]


def test_lake_values_keep_nulls_as_nulls(lake_url, tmp_path):
    lake = FeatureLake(str(tmp_path / "lake"))
    first = feature_columns()[0]
    values = lake.table().to_pyarrow_table(columns=["symbol", "timestamp", first]).to_pandas()
    assert values[first].isna().sum() == 1 and np.isfinite(values[first].dropna()).all()


def test_a_heal_is_served_at_once_and_its_lake_copy_at_the_new_version(sqlite_url, tmp_path):
    seed(sqlite_url)
    lake = FeatureLake(str(tmp_path / "lake"))
    lake.sync(get_warehouse(sqlite_url), T0, PRICE_END, "lake-run")
    window = {"start": HEALED.isoformat(), "end": (HEALED + WINDOW).isoformat(), "columns": "price"}
    # The gateway keeps its view of the lake (and of partition_log) for a minute.
    with TestClient(make_app(sqlite_url, CRYPTO_LAKE_URI=str(tmp_path / "lake"), CRYPTO_API_STATE_TTL="60")) as client:
        before, _ = _features(client, **window)
        new = heal(sqlite_url)
        lake.sync(get_warehouse(sqlite_url), HEALED, HEALED + WINDOW, "lake-heal")
        after, headers = _features(client, **window)
        copied, lake_headers = _features(client, **window, as_of=utc_now().isoformat())
        assert "X-Lake-Version" not in headers and lake_headers["X-Lake-Version"] == "1"
        assert (
            dict(zip(after["symbol"].to_pylist(), after["price"].to_pylist()))
            == dict(zip(copied["symbol"].to_pylist(), copied["price"].to_pylist()))
            == new.set_index("symbol")["price"].to_dict()
            != dict(zip(before["symbol"].to_pylist(), before["price"].to_pylist()))
        )


# ---------------------------------------------------------------------------------- the client reading files
def test_the_client_reads_the_lake_files_itself_and_gets_the_gateways_rows(lake_url, tmp_path):
    """``CryptoDataClient(direct_lake=True)`` reads the files ``/v1/features/files`` names and equals
    the gateway's rows: all from the lake, with a window not copied yet (read through the gateway),
    with a healed window once the lake has copied it, and ``as_of``; where it cannot open the lake it
    reads through the gateway."""
    lake_dir = str(tmp_path / "lake")
    with (
        serve(lake_url, CRYPTO_LAKE_URI=lake_dir, CRYPTO_API_MAX_ROWS="50") as base,
        CryptoDataClient(base) as direct,
        CryptoDataClient(base, direct_lake=False) as gateway,
        CryptoDataClient(base, lake_root=str(tmp_path / "not-mounted")) as elsewhere,
    ):
        end = PRICE_END + 4 * WINDOW

        def same(expected_path: str = "lake files", **params) -> pd.DataFrame:
            mine = direct.features(start=T0, end=end, **params)
            theirs = gateway.features(start=T0, end=end, **params)
            assert direct.last_features_path == expected_path and gateway.last_features_path == "gateway"
            pd.testing.assert_frame_equal(mine, theirs)
            assert direct.last_as_of == gateway.last_as_of
            return mine

        assert len(same()) == 24 * len(SYMBOLS)
        assert len(same(symbols=["ETH", "BTC"], columns=COLUMNS)) == 48
        listing = httpx.get(f"{base}/v1/features/files", params={"start": T0.isoformat(), "symbols": "BTC"}).json()
        assert listing["direct"] and listing["lake_version"] == 0 and listing["symbols"] == ["BTC"]
        assert listing["table_uri"].endswith("ml_features") and listing["files"] and listing["rest_ranges"] == []
        assert listing["columns"][:2] == ["symbol", "timestamp"]
        # A window committed after the copy: read through the gateway, merged in key order.
        commit_features(lake_url, PRICE_END)
        assert len(same(columns=COLUMNS)) == 25 * len(SYMBOLS)
        before_heal = utc_now()
        time.sleep(0.05)
        # A window re-committed and copied again (the lake asset runs after the features, in the same run).
        new = heal(lake_url)
        FeatureLake(lake_dir).sync(get_warehouse(lake_url), HEALED, HEALED + WINDOW, "lake-heal")
        healed = same(columns=COLUMNS)
        at = healed[healed.index == pd.Timestamp(HEALED, tz="UTC")].set_index("symbol")["price"]
        assert at.to_dict() == new.set_index("symbol")["price"].to_dict()
        # As of before the heal: the lake's values of then.
        then = same(columns=["price"], as_of=before_heal)
        assert (then[then.index == pd.Timestamp(HEALED, tz="UTC")].set_index("symbol")["price"] != at).all()
        # Where this process cannot see the lake, the rows come through the gateway.
        pd.testing.assert_frame_equal(elsewhere.features(start=T0, end=end), gateway.features(start=T0, end=end))
        assert elsewhere.last_features_path == "gateway"
        bad = httpx.get(f"{base}/v1/features/files", params={"columns": "nope"})
        assert bad.status_code == 400 and "nope" in bad.json()["detail"]
        future = httpx.get(f"{base}/v1/features/files", params={"as_of": (utc_now() + timedelta(hours=1)).isoformat()})
        assert future.status_code == 400 and "future" in future.json()["detail"]


def test_the_client_reads_the_lake_files_on_a_loopback_s3_server(sqlite_url, s3):
    seed(sqlite_url)
    FeatureLake("s3://lake/prod", s3).sync(get_warehouse(sqlite_url), T0, PRICE_END, "lake-s3")
    with (
        serve(sqlite_url, CRYPTO_LAKE_URI="s3://lake/prod", **s3) as base,
        CryptoDataClient(base, lake_storage_options=s3) as direct,
        CryptoDataClient(base, direct_lake=False) as gateway,
    ):
        mine = direct.features(["BTC", "SOL"], start=T0, end=PRICE_END, columns=COLUMNS)
        assert direct.last_features_path == "lake files" and len(mine) == 48
        pd.testing.assert_frame_equal(mine, gateway.features(["BTC", "SOL"], start=T0, end=PRICE_END, columns=COLUMNS))
