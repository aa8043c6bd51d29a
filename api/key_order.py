"""Arrow rows in (symbol, timestamp) order, the order every features response has, without a sort copy.

Shared by the gateway (merging the lake's and MySQL's rows) and the notebook client (merging the
lake files it reads itself with the rest): only numpy and pyarrow, no server code.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Above this share of rows starting a run (rows already next to each other in key order), the rows
# are gathered one by one (``take``) instead of sent a run at a time.
SCATTERED = 1 / 16


def _key_order(table: pa.Table) -> np.ndarray:
    """The row indices that put ``table`` in (symbol, timestamp) order."""
    keys = table.select(["symbol", "timestamp"]).combine_chunks()
    return pc.sort_indices(keys, sort_keys=[("symbol", "ascending"), ("timestamp", "ascending")]).to_numpy()


def _slices(table: pa.Table, starts: np.ndarray, lengths: np.ndarray) -> Iterator[pa.RecordBatch]:
    """The rows [start, start + length) of ``table`` for each run, as slices of its batches (no copy)."""
    batches = table.to_batches()
    offsets = np.cumsum([0] + [b.num_rows for b in batches])
    for start, length in zip(starts.tolist(), lengths.tolist()):
        i = int(np.searchsorted(offsets, start, side="right")) - 1
        while length:
            at = start - int(offsets[i])
            taken = min(length, batches[i].num_rows - at)
            yield batches[i].slice(at, taken)
            start, length, i = start + taken, length - taken, i + 1


def in_key_order(table: pa.Table, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """``table``'s rows in key order, in batches of at most ``batch_rows``.

    Rows in long ordered runs (the lake's files are in key order within a day, the days follow
    each other) are sent as slices of the scanned batches, without a copy (a symbol's rows of a
    day: one batch); scattered rows are gathered from one chunk (``take`` on many chunks costs ten
    times more), a batch at a time, so the sorted copy never exists whole.
    """
    if table.num_rows < 2:
        yield from table.to_batches(max_chunksize=batch_rows)
        return
    order = _key_order(table)
    breaks = np.flatnonzero(np.diff(order) != 1) + 1
    if len(breaks) <= table.num_rows * SCATTERED:
        firsts = np.concatenate([[0], breaks])
        lengths = np.diff(np.concatenate([firsts, [len(order)]]))
        for piece in _slices(table, order[firsts], lengths):
            yield from pa.Table.from_batches([piece]).to_batches(max_chunksize=batch_rows)
        return
    table = table.combine_chunks()
    for offset in range(0, len(order), batch_rows):
        yield from table.take(order[offset : offset + batch_rows]).to_batches()
