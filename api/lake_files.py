"""The notebook client's direct read of the lake: the files a ``/v1/features/files`` answer names,
read in the notebook's own process.

The gateway plans (which windows the lake holds at their current commit, which Delta version,
which files) and the client reads: the Parquet files straight from the disk or the bucket, a
file per thread, the answer's columns only, keeping the rows of its ranges and symbols. Nothing
passes through the gateway, so a read costs about what pyarrow costs on the files (the
``benchmarks/bench_lake_read.py`` figures). The listing names only committed windows' files of
one version, and the rows are filtered to the ranges the gateway checked, so the result equals
what ``/v1/features`` sends.

Only the standard library, numpy and pyarrow: this module ships with the client.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from api.key_order import in_key_order

# Files are decoded a column per thread from this many columns on (the full catalog), on their
# reading thread below (few columns: the threads' start costs more than they save).
THREADED_COLUMNS = 64
#: Files read at once: pyarrow releases the GIL while it reads and decodes.
READ_THREADS = max(2, min(8, 2 * (os.cpu_count() or 1)))


# The S3 options a notebook may give (the keys delta-rs and Polars take as ``storage_options``, in
# any case), as pyarrow's S3FileSystem arguments.
_S3_OPTIONS = {
    "aws_access_key_id": "access_key",
    "aws_secret_access_key": "secret_key",
    "aws_session_token": "session_token",
    "aws_region": "region",
}


def open_lake(
    table_uri: str, root: str | None = None, storage_options: Mapping[str, str] | None = None
) -> tuple[pafs.FileSystem, str] | None:
    """The file system and path of the lake table at ``root`` (or, if None, at the gateway's
    ``table_uri``), or None where this process cannot reach it (no such directory here).

    ``s3://`` is opened with ``storage_options`` (``AWS_ENDPOINT_URL`` for an S3-compatible store,
    ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``); the
    credentials not given come from pyarrow's AWS chain (the environment, ``~/.aws``, an instance
    or pod role). pyarrow does not read ``AWS_ENDPOINT_URL`` itself, so an endpoint must be given.
    """
    where = root or table_uri
    if where.startswith("s3://"):
        options: dict[str, Any] = {"connect_timeout": 5, "request_timeout": 60}
        for key, value in (storage_options or {}).items():
            name = key.lower()
            if name in _S3_OPTIONS:
                options[_S3_OPTIONS[name]] = value
            elif name in ("aws_endpoint_url", "endpoint_url"):
                scheme, _, host = value.partition("://")
                options.update(endpoint_override=host.rstrip("/"), scheme=scheme or "https")
        return pafs.S3FileSystem(**options), where.removeprefix("s3://").rstrip("/")
    if "://" in where and not where.startswith("file://"):
        try:
            filesystem, path = pafs.FileSystem.from_uri(where)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError):
            return None
        return filesystem, path
    path = where.removeprefix("file://")
    if not os.path.isdir(path):
        return None
    return pafs.LocalFileSystem(), os.path.abspath(path)


def arrow_schema(listing: Mapping[str, Any]) -> pa.Schema:
    """The response schema a listing carries (``arrow_schema``: a base64 Arrow IPC schema message)."""
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(listing["arrow_schema"])))


def _time(value: str) -> datetime:
    """A listing's UTC time (``2026-01-01T00:00:00Z``) as a naive datetime."""
    return datetime.fromisoformat(value.removesuffix("Z"))


def _ranges(listing: Mapping[str, Any], key: str) -> list[tuple[datetime, datetime]]:
    return [(_time(r["start"]), _time(r["end"])) for r in listing[key]]


def _kept(table: pa.Table, ranges: Sequence[tuple[datetime, datetime]], symbols: Sequence[str] | None) -> pa.Table:
    """The rows of ``table`` in one of ``ranges`` and of ``symbols`` (None: of every symbol); the
    table itself, without a copy, where its times lie in one range and no symbol is left out."""
    stamps = table["timestamp"]
    if symbols is None and table.num_rows:
        bounds = pc.min_max(stamps)
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        low, high = low.replace(tzinfo=None), high.replace(tzinfo=None)
        if any(start <= low and high < end for start, end in ranges):
            return table
    time_type = table.schema.field("timestamp").type
    within = pc.scalar(False)
    for start, end in ranges:
        within = within | (
            (pc.field("timestamp") >= pa.scalar(start, time_type)) & (pc.field("timestamp") < pa.scalar(end, time_type))
        )
    if symbols is not None:
        within = within & pc.field("symbol").isin(list(symbols))
    return table.filter(within)


def _read_file(
    filesystem: pafs.FileSystem,
    path: str,
    schema: pa.Schema,
    ranges: Sequence[tuple[datetime, datetime]],
    symbols: Sequence[str] | None,
) -> pa.Table:
    """One lake file's kept rows in ``schema`` (a column the file predates is all nulls)."""
    threads = len(schema) >= THREADED_COLUMNS
    with filesystem.open_input_file(path) as source:
        parquet = pq.ParquetFile(source, pre_buffer=True)
        present = set(parquet.schema_arrow.names)
        table = parquet.read(columns=[n for n in schema.names if n in present], use_threads=threads)
    table = _kept(table, ranges, symbols)
    columns = [
        table[field.name].cast(field.type) if field.name in present else pa.nulls(table.num_rows, field.type)
        for field in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def read_files(listing: Mapping[str, Any], filesystem: pafs.FileSystem, root: str) -> pa.Table:
    """The kept rows of every file a listing names, in its schema (in file order, not key order).

    Raises what pyarrow raises (``OSError``, ``pyarrow.ArrowException``) when a file cannot be read.
    """
    schema = arrow_schema(listing)
    ranges = _ranges(listing, "lake_ranges")
    symbols = listing["symbols"]
    paths = [f"{root}/{f['path']}" for f in listing["files"]]
    if not paths:
        return schema.empty_table()
    with ThreadPoolExecutor(min(READ_THREADS, len(paths))) as pool:
        parts = list(pool.map(lambda path: _read_file(filesystem, path, schema, ranges, symbols), paths))
    return pa.concat_tables(parts)


def merged(schema: pa.Schema, parts: Sequence[pa.Table]) -> pa.Table:
    """``parts`` (the lake's rows, the rest's pages) as one table in (symbol, timestamp) order, the
    runs of rows already in order taken as slices (no sort copy)."""
    tables = [part.select(schema.names).cast(schema) for part in parts if part.num_rows]
    if not tables:
        return schema.empty_table()
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    return pa.Table.from_batches(list(in_key_order(table, max(1, table.num_rows))), schema=schema)
