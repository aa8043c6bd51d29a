"""The gateway's lake reads: the per-file scan, and the merge into (symbol, timestamp) order (rows in order, runs, scattered rows)."""

from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from api.key_order import in_key_order
from api.lake_reads import PARQUET, Footers, _time_filter, scan
from resources.storage.lake import TIME_TYPE

T0 = datetime(2026, 1, 1)


def rows(symbols: list[str], days: int, per_day: int) -> pa.Table:
    """A table as the lake's day files give it: each day's rows by symbol then time, day after day."""
    chunks = []
    for day in range(days):
        stamps = [T0 + timedelta(days=day, minutes=5 * i) for i in range(per_day)]
        chunk = pa.table(
            {
                "symbol": [s for s in symbols for _ in stamps],
                "timestamp": pa.array(stamps * len(symbols), TIME_TYPE),
                "value": np.arange(len(symbols) * per_day, dtype=float) + day * 1000,
            }
        )
        chunks.append(chunk)
    return pa.concat_tables(chunks)


def expected(table: pa.Table) -> pa.Table:
    return table.sort_by([("symbol", "ascending"), ("timestamp", "ascending")])


@pytest.mark.parametrize(
    "table",
    [
        rows(["A"], 3, 10),  # one symbol: already in order, sent without a copy
        rows(["A", "B", "C"], 4, 40),  # long runs: a symbol's rows of each day
        rows(["A", "B", "C"], 4, 40).take(np.random.default_rng(1).permutation(480)),  # scattered rows
        rows(["A", "B"], 1, 1).slice(0, 1),  # one row
    ],
    ids=["in-order", "runs", "scattered", "one-row"],
)
def test_rows_come_out_in_key_order_in_batches_of_about_the_size_asked(table):
    batches = list(in_key_order(table, 64))
    merged = pa.Table.from_batches(batches, schema=table.schema)
    assert merged.equals(expected(table))
    assert all(b.num_rows <= 64 for b in batches)


def test_scan_reads_files_whole_filters_the_rest_and_fills_a_column_a_file_lacks(tmp_path):

    old, new = rows(["A", "B"], 1, 4), rows(["A", "B"], 2, 4).slice(8)  # day 0 and day 1
    pq.write_table(old.drop_columns(["value"]), tmp_path / "old.parquet")  # written before "value" existed
    pq.write_table(new, tmp_path / "new.parquet", row_group_size=4)  # a row group a symbol
    schema = new.schema.append(pa.field("date", pa.date32()))
    fs = pafs.LocalFileSystem()
    fragments = [
        PARQUET.make_fragment(str(tmp_path / f"{name}.parquet"), fs, partition_expression=pc.field("date") == day)
        for name, day in (
            ("old", pa.scalar(T0.date(), pa.date32())),
            ("new", pa.scalar((T0 + timedelta(days=1)).date(), pa.date32())),
        )
    ]
    dataset = pads.FileSystemDataset(fragments, schema, PARQUET, fs)
    everything = [(T0, T0 + timedelta(days=2))]
    footers = Footers(size=1)
    read = scan(
        dataset,
        footers,
        ["symbol", "timestamp", "value"],
        _time_filter(everything),
        _time_filter(everything, days=False),
        everything,
    )
    assert read.num_rows == 16 and read["value"].null_count == 8 and read.slice(8).equals(new)
    some = [(T0 + timedelta(days=1, minutes=5), T0 + timedelta(days=1, minutes=15))]
    named = pc.field("symbol").isin(["B"])
    read = scan(
        dataset, footers, ["timestamp", "value"], _time_filter(some) & named, _time_filter(some, days=False) & named
    )
    assert read.num_rows == 2 and read.column_names == ["timestamp", "value"]
    assert len(footers) == 1  # the footers of the most recently read file only


def test_footers_are_kept_for_the_most_recently_read_files_only(tmp_path):
    fs = pafs.LocalFileSystem()
    listed = []
    for name in ("a", "b", "c"):
        pq.write_table(rows(["A"], 1, 2), tmp_path / f"{name}.parquet")
        listed.append(PARQUET.make_fragment(str(tmp_path / f"{name}.parquet"), fs))
    footers = Footers(size=2)
    a = footers.fragment(listed[0])
    assert footers.fragment(listed[0]) is a and a.metadata.num_rows == 2  # parsed once, on the kept fragment
    b = footers.fragment(listed[1])
    footers.fragment(listed[0])  # read again: now the most recent
    footers.fragment(listed[2])  # drops b, the least recently read
    assert len(footers) == 2 and footers.fragment(listed[0]) is a
    assert footers.fragment(listed[1]) is not b  # made anew, its footer to be parsed again
