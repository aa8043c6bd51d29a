"""Fast columnar reads from MySQL/MariaDB: server-side prepared statements, decoded with numpy.

``pandas.read_sql`` over pymysql spends its time twice over on a wide numeric table: the server
formats every DOUBLE as text (the text protocol), and pymysql parses every value back in Python.
This module keeps pymysql's connection and authentication but speaks the *binary* protocol for
one statement: ``COM_STMT_PREPARE`` with ``?`` placeholders (the parameters are bound on the
server, never spliced into SQL), ``COM_STMT_EXECUTE``, then the result rows arrive as raw 8-byte
values that numpy decodes a batch at a time, so memory stays bounded by the batch size.

Only statements whose every selected column is 8 bytes wide in the binary protocol (``DOUBLE``
and ``BIGINT``) are accepted; the caller encodes symbols as an index (``FIELD``) and datetimes as
microseconds since the epoch (``TIMESTAMPDIFF``). Anything else raises :class:`UnsupportedResult`
before a row is read.

pymysql has no public API for this, so the module uses private members of its ``Connection``:
``_execute_command``, ``_read_packet``, ``_rfile``, ``_sock`` and ``_force_close``. pyproject.toml
pins pymysql to the tested minor release (``>=1.2,<1.3``) for that reason.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
from pymysql import err as mysql_err

COM_STMT_PREPARE = 0x16
COM_STMT_EXECUTE = 0x17
COM_STMT_CLOSE = 0x19

TYPE_DOUBLE = 5
TYPE_LONGLONG = 8
TYPE_DATETIME = 12
TYPE_VAR_STRING = 253
_WIDE_TYPES = {TYPE_DOUBLE: "f8", TYPE_LONGLONG: "i8"}
_MAX_PAYLOAD = 0xFFFFFF


class UnsupportedResult(ValueError):
    """The statement selects a column that is not an 8-byte DOUBLE or BIGINT."""


def _lenenc_int(value: int) -> bytes:
    if value < 251:
        return bytes([value])
    if value < 1 << 16:
        return b"\xfc" + struct.pack("<H", value)
    if value < 1 << 24:
        return b"\xfd" + struct.pack("<I", value)[:3]
    return b"\xfe" + struct.pack("<Q", value)


def _encode_param(value: Any) -> tuple[int, bytes]:
    """The binary-protocol type code and encoding of one bound parameter."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return TYPE_LONGLONG, struct.pack("<q", value)
    if isinstance(value, float):
        return TYPE_DOUBLE, struct.pack("<d", value)
    if isinstance(value, datetime):
        return TYPE_DATETIME, struct.pack(
            "<BHBBBBBI",
            11,
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
        )
    if isinstance(value, date):
        return TYPE_DATETIME, struct.pack("<BHBB", 4, value.year, value.month, value.day)
    data = str(value).encode("utf8")
    return TYPE_VAR_STRING, _lenenc_int(len(data)) + data


def _execute_payload(stmt_id: int, params: Sequence[Any]) -> bytes:
    head = struct.pack("<IBI", stmt_id, 0, 1)  # statement, CURSOR_TYPE_NO_CURSOR, one iteration
    if not params:
        return head
    null_bitmap = bytearray((len(params) + 7) // 8)
    types = bytearray()
    values = bytearray()
    for i, value in enumerate(params):
        if value is None:
            null_bitmap[i // 8] |= 1 << (i % 8)
            types += struct.pack("<BB", TYPE_VAR_STRING, 0)
            continue
        code, encoded = _encode_param(value)
        types += struct.pack("<BB", code, 0)
        values += encoded
    return head + bytes(null_bitmap) + b"\x01" + bytes(types) + bytes(values)


def _column_type(packet: Any) -> int:
    """The field type of a column-definition packet (protocol 4.1)."""
    for _ in range(6):  # catalog, schema, table, org_table, name, org_name
        packet.read_length_coded_string()
    packet.read_length_encoded_integer()  # length of the fixed fields (0x0c)
    packet.read(2 + 4)  # character set, column length
    return packet.read_uint8()


def _read_definitions(conn: Any, count: int) -> list[int]:
    types = [_column_type(conn._read_packet()) for _ in range(count)]
    if count:
        conn._read_packet()  # EOF after the definitions (pymysql does not deprecate EOF)
    return types


def _raise_error_packet(payload: bytes) -> None:
    mysql_err.raise_mysql_exception(payload)


def read_batches(
    conn: Any, sql: str, params: Sequence[Any], batch_rows: int = 65_536
) -> Iterator[tuple[list[np.ndarray], list[np.ndarray | None]]]:
    """Run ``sql`` (``?`` placeholders) as a prepared statement on the pymysql connection ``conn``.

    Yields ``(values, nulls)`` per batch of at most ``batch_rows`` rows: one numpy array a
    selected column (``float64`` for DOUBLE, ``int64`` for BIGINT) and, a column, a boolean null
    mask or None when the batch has no NULL there. If the caller stops early, or the result is
    refused, the rows left on the wire make the connection unusable: it is closed here, and the
    caller must discard it (``invalidate`` it in a pool).
    """
    conn._execute_command(COM_STMT_PREPARE, sql)
    ok = conn._read_packet()
    ok.read_uint8()
    stmt_id = ok.read_uint32()
    ncols = ok.read_uint16()
    nparams = ok.read_uint16()
    _read_definitions(conn, nparams)
    _read_definitions(conn, ncols)
    settled = True  # False while result rows may still be in flight
    try:
        if nparams != len(params):
            raise ValueError(f"statement has {nparams} placeholders, {len(params)} parameters given")
        conn._execute_command(COM_STMT_EXECUTE, _execute_payload(stmt_id, params))
        settled = False
        first = conn._read_packet()
        if first.is_ok_packet():
            settled = True
            return
        count = first.read_length_encoded_integer()
        types = _read_definitions(conn, count)
        unsupported = [i for i, t in enumerate(types) if t not in _WIDE_TYPES]
        if unsupported:
            raise UnsupportedResult(
                f"columns {unsupported} have binary types {[types[i] for i in unsupported]}; "
                "only DOUBLE and BIGINT can be decoded"
            )
        yield from _decode_rows(conn, [_WIDE_TYPES[t] for t in types], batch_rows)
        settled = True
    except mysql_err.MySQLError as exc:
        # An error packet ends the result; a lost connection leaves nothing to settle either.
        settled = (
            settled
            or not isinstance(exc, (mysql_err.OperationalError, mysql_err.InternalError))
            or getattr(exc, "args", (0,))[0] not in (2006, 2013)
        )
        raise
    finally:
        if conn._sock is not None:
            if settled:
                conn._execute_command(COM_STMT_CLOSE, struct.pack("<I", stmt_id))  # no reply
            else:  # rows left unread (the caller stopped early, or a column type was refused)
                conn._force_close()


def _decode_rows(
    conn: Any, dtypes: list[str], batch_rows: int
) -> Iterator[tuple[list[np.ndarray], list[np.ndarray | None]]]:
    """Read binary result rows straight off the socket buffer, a batch at a time."""
    rfile = conn._rfile
    ncols = len(dtypes)
    bitmap_len = (ncols + 9) // 8
    buf = bytearray()
    pos = 0
    starts: list[int] = []
    lengths: list[int] = []
    done = False
    while not done:
        chunk = rfile.read1(1 << 20)
        if not chunk:
            conn._force_close()
            raise mysql_err.OperationalError(2013, "Lost connection to MySQL server during query")
        buf += chunk
        end = len(buf)
        while pos + 4 <= end:
            length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
            if pos + 4 + length > end:
                break
            first = buf[pos + 4]
            if first == 0xFE and length < 9:
                done = True
                break
            if first == 0xFF:
                _raise_error_packet(bytes(buf[pos + 4 : pos + 4 + length]))
            if length == _MAX_PAYLOAD:
                raise UnsupportedResult("a result row longer than 16 MiB")
            starts.append(pos + 4)
            lengths.append(length)
            pos += 4 + length
            if len(starts) >= batch_rows:
                yield _decode_batch(buf, starts, lengths, dtypes, bitmap_len)
                del buf[:pos]
                end -= pos
                pos = 0
                starts, lengths = [], []
    if starts:
        yield _decode_batch(buf, starts, lengths, dtypes, bitmap_len)


def _decode_batch(
    buf: bytearray, starts: list[int], lengths: list[int], dtypes: list[str], bitmap_len: int
) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    ncols = len(dtypes)
    nrows = len(starts)
    raw = np.frombuffer(buf, dtype=np.uint8)
    start = np.asarray(starts, dtype=np.int64)
    length = np.asarray(lengths, dtype=np.int64)
    full = 1 + bitmap_len + 8 * ncols
    if (length == full).all():
        # No NULL anywhere: rows sit at a fixed stride (4-byte header + payload), reshape directly.
        stride = 4 + full
        block = raw[start[0] - 4 : start[0] - 4 + nrows * stride].reshape(nrows, stride)
        words = np.ascontiguousarray(block[:, 4 + 1 + bitmap_len :]).view("<u8")
        matrix = np.ascontiguousarray(words.T)
        nulls: list[np.ndarray | None] = [None] * ncols
    else:
        bits = raw[start[:, None] + 1 + np.arange(bitmap_len)]
        null = np.unpackbits(bits, axis=1, bitorder="little")[:, 2 : 2 + ncols].astype(bool)
        marks = np.zeros(len(raw) + 1, dtype=np.int8)
        np.add.at(marks, start + 1 + bitmap_len, 1)
        np.add.at(marks, start + length, -1)
        values = raw[np.cumsum(marks[:-1]) > 0].view("<u8")
        full_matrix = np.zeros((nrows, ncols), dtype="<u8")
        full_matrix[~null] = values
        matrix = np.ascontiguousarray(full_matrix.T)
        nulls = [null[:, j] if null[:, j].any() else None for j in range(ncols)]
    columns = [matrix[j].view(np.float64 if dtype == "f8" else np.int64) for j, dtype in enumerate(dtypes)]
    return columns, nulls
