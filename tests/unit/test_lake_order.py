"""The gateway's lake reads: the merge into (symbol, timestamp) order (rows in order, runs, scattered rows)."""

from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from api.key_order import in_key_order
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
