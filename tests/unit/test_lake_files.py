"""The client's direct read of the lake's files: opening the lake, keeping the planned rows, a file
that predates a column, and the merge into key order."""

import base64
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from api import lake_files

T0 = datetime(2026, 1, 1)
TIME = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema([("symbol", pa.string()), ("timestamp", TIME), ("a", pa.float64()), ("b", pa.float64())])


def day_file(path, day: int, symbols: list[str], columns: list[str]) -> None:
    """A day's file as the lake writes it: by symbol, then time, four windows a symbol."""
    stamps = [T0 + timedelta(days=day, minutes=5 * i) for i in range(4)]
    table = {
        "symbol": [s for s in symbols for _ in stamps],
        "timestamp": pa.array(stamps * len(symbols), TIME),
    }
    for column in columns:
        table[column] = [float(day * 100 + i) for i in range(len(symbols) * len(stamps))]
    pq.write_table(pa.table(table), path)


def listing(files: list[str], ranges, symbols=None) -> dict:
    return {
        "arrow_schema": base64.b64encode(SCHEMA.serialize().to_pybytes()).decode(),
        "lake_ranges": [{"start": a.isoformat() + "Z", "end": b.isoformat() + "Z"} for a, b in ranges],
        "symbols": symbols,
        "files": [{"path": f, "size_bytes": 0} for f in files],
    }


def test_open_lake_finds_a_local_table_and_names_an_s3_one(tmp_path):
    assert lake_files.open_lake(str(tmp_path / "absent")) is None
    filesystem, path = lake_files.open_lake("elsewhere", root=f"file://{tmp_path}")
    assert isinstance(filesystem, pafs.LocalFileSystem) and path == str(tmp_path)
    options = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "aws_region": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
    }
    filesystem, path = lake_files.open_lake("s3://bucket/prefix/ml_features/", storage_options=options)
    assert isinstance(filesystem, pafs.S3FileSystem) and path == "bucket/prefix/ml_features"
    assert filesystem.region == "eu-west-1"


def test_the_planned_rows_are_kept_in_key_order_with_nulls_for_a_column_a_file_predates(tmp_path):
    day_file(tmp_path / "d0.parquet", 0, ["BTC", "ETH"], ["a"])  # written before column b existed
    day_file(tmp_path / "d1.parquet", 1, ["BTC", "ETH"], ["a", "b"])
    whole_first_day = (T0, T0 + timedelta(days=1))
    second_day_two_windows = (T0 + timedelta(days=1, minutes=5), T0 + timedelta(days=1, minutes=15))
    plan = listing(["d1.parquet", "d0.parquet"], [whole_first_day, second_day_two_windows])
    table = lake_files.read_files(plan, pafs.LocalFileSystem(), str(tmp_path))
    assert table.schema == SCHEMA and table.num_rows == 2 * 4 + 2 * 2
    assert table.filter(pa.compute.field("timestamp") < pa.scalar(T0 + timedelta(days=1), TIME))["b"].null_count == 8
    merged = lake_files.merged(SCHEMA, [table])
    keys = list(zip(merged["symbol"].to_pylist(), merged["timestamp"].to_pylist()))
    assert keys == sorted(keys) and merged["symbol"].to_pylist()[:6] == ["BTC"] * 6
    only_eth = lake_files.read_files(
        listing(["d0.parquet"], [whole_first_day], ["ETH"]), pafs.LocalFileSystem(), str(tmp_path)
    )
    assert set(only_eth["symbol"].to_pylist()) == {"ETH"} and only_eth.num_rows == 4
    assert lake_files.read_files(listing([], [whole_first_day]), pafs.LocalFileSystem(), str(tmp_path)).num_rows == 0
