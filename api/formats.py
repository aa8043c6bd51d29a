"""Response formats: negotiation (``format=`` or ``Accept``) and streaming encoders over Arrow batches.

JSON is the default and is paginated; CSV, Parquet and the Arrow IPC stream are written a record
batch at a time, so a large range streams with memory bounded by one batch. Times read the same
in JSON and CSV (``2026-11-30T00:00:00Z``); Parquet and Arrow keep typed UTC timestamps.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from api.schemas import Format

#: How a list (news ``symbols``) is written in one CSV field.
CSV_LIST_SEPARATOR = ";"

MEDIA_TYPES = {
    Format.json: "application/json",
    Format.csv: "text/csv; charset=utf-8",
    Format.parquet: "application/vnd.apache.parquet",
    Format.arrow: "application/vnd.apache.arrow.stream",
}
_ACCEPTED = {
    "application/json": Format.json,
    "text/csv": Format.csv,
    "application/vnd.apache.parquet": Format.parquet,
    "application/x-parquet": Format.parquet,
    "application/vnd.apache.arrow.stream": Format.arrow,
}


def negotiate(format_param: Format | None, accept: str | None) -> Format:
    """``format=`` wins; otherwise the first acceptable media type in ``Accept`` (by q); JSON by default."""
    if format_param is not None:
        return format_param
    if not accept:
        return Format.json
    choices: list[tuple[float, int, Format]] = []
    for position, part in enumerate(accept.split(",")[:32]):
        pieces = part.strip().split(";")
        media = pieces[0].strip().lower()
        quality = 1.0
        for param in pieces[1:]:
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media in _ACCEPTED and quality > 0:
            choices.append((-quality, position, _ACCEPTED[media]))
    return min(choices)[2] if choices else Format.json


def json_body(payload: dict[str, Any]) -> bytes:
    """A JSON body: UTC datetimes with ``Z``, NaN as null, numpy scalars as numbers."""
    return orjson.dumps(payload, option=orjson.OPT_UTC_Z | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC)


class _ChunkSink:
    """A write-only file that hands over what was written since the last ``take``."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks = []
        return out


def iso_text(times: pa.Array) -> pa.Array:
    """UTC timestamps as JSON writes them: ``2026-11-30T00:00:00Z``, microseconds only when there are some."""
    text = pc.strftime(pc.cast(times, pa.timestamp("us")), format="%Y-%m-%dT%H:%M:%S")  # seconds as SS.ffffff
    return pc.binary_join_element_wise(pc.replace_substring_regex(text, r"\.000000$", ""), "Z", "")


def csv_batch(batch: pa.RecordBatch | pa.Table) -> pa.RecordBatch | pa.Table:
    """``batch`` with the columns CSV cannot hold as JSON shows them rendered as text.

    Timestamps become ISO 8601 text in JSON's form (:func:`iso_text`); lists of strings (news
    ``symbols``) are joined with ``;`` (an empty list is an empty field).
    """
    columns = []
    for field, column in zip(batch.schema, batch.columns):
        if pa.types.is_timestamp(field.type):
            column = iso_text(column)
        elif pa.types.is_list(field.type):
            column = pc.binary_join(column, CSV_LIST_SEPARATOR)
        columns.append(column)
    names = batch.schema.names
    return (
        pa.Table.from_arrays(columns, names=names)
        if isinstance(batch, pa.Table)
        else pa.RecordBatch.from_arrays(columns, names=names)
    )


#: The end of an Arrow IPC stream: a continuation marker and a zero length.
ARROW_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"
# Arrow messages smaller than this are sent together (one HTTP chunk), larger ones as they are.
ARROW_CHUNK = 1 << 18  # a symbol's day of the full catalog (288 rows, 720 KB) goes as it is
#: CSV and Parquet are written this many rows at a time (a lake read yields a batch a symbol and day).
GATHER_ROWS = 32_768


def arrow_stream(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes | memoryview]:
    """``batches`` as an Arrow IPC stream, uncompressed (reads over loopback or a LAN are bound by
    copies, not bytes): each batch serialised once by Arrow (no Python call per buffer), a large
    message sent as it is, small ones gathered into chunks of about ``ARROW_CHUNK`` bytes."""
    pending: list[Any] = [schema.serialize()]
    held = 0
    for batch in batches:
        message = batch.serialize()
        if message.size >= ARROW_CHUNK:
            if pending:
                yield b"".join(pending)
                pending, held = [], 0
            yield memoryview(message)
            continue
        pending.append(message)
        held += message.size
        if held >= ARROW_CHUNK:
            yield b"".join(pending)
            pending, held = [], 0
    pending.append(ARROW_EOS)
    yield b"".join(pending)


def gathered(batches: Iterable[pa.RecordBatch], rows: int = GATHER_ROWS) -> Iterator[pa.Table]:
    """``batches`` gathered into tables of at least ``rows`` rows (the last one may hold fewer), without copies."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        pending.append(batch)
        held += batch.num_rows
        if held >= rows:
            yield pa.Table.from_batches(pending)
            pending, held = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def stream(fmt: Format, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes | memoryview]:
    """Encode ``batches`` as ``fmt`` (csv, parquet or arrow). CSV and Parquet are written
    ``GATHER_ROWS`` rows at a time (a Parquet row group each, however small the batches are)."""
    sink = _ChunkSink()
    if fmt is Format.csv:
        header = True
        for table in gathered(batches):
            pa_csv.write_csv(csv_batch(table), sink, write_options=pa_csv.WriteOptions(include_header=header))
            header = False
            yield sink.take()
        if header:  # no rows: still say which columns there would have been
            pa_csv.write_csv(csv_batch(schema.empty_table()), sink)
            yield sink.take()
        return
    if fmt is Format.arrow:
        yield from arrow_stream(schema, batches)
        return
    if fmt is not Format.parquet:
        raise ValueError(f"{fmt} is not a streamed format")
    writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema, compression="zstd")
    for table in gathered(batches):
        writer.write_table(table)
        yield sink.take()
    writer.close()
    yield sink.take()
