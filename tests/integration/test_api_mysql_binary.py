"""The binary-protocol reader against the real MariaDB: values, NULLs, batches, errors, early stops."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pymysql
import pytest
import sqlalchemy as sa

from api import mysql_binary


@pytest.fixture
def connection(mysql_url):
    url = sa.engine.make_url(mysql_url)
    conn = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username, database=url.database)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (k BIGINT PRIMARY KEY, ts DATETIME(6), a DOUBLE, b DOUBLE, s VARCHAR(8))")
        rows = [
            (i, datetime(2026, 1, 1, 0, i % 60, 0, i), i * 0.5, None if i % 7 == 0 else -i / 3.0, "x")
            for i in range(1000)
        ]
        cur.executemany("INSERT INTO t VALUES (%s, %s, %s, %s, %s)", rows)
    conn.commit()
    yield conn
    conn.close()


SELECT = (
    "SELECT k, TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', ts), a, b FROM t "
    "WHERE k >= ? AND ts < ? AND s = ? ORDER BY k"
)


def test_values_nulls_and_batches_match_the_text_protocol(connection):
    params = [10, datetime(2030, 1, 1), "x"]
    batches = list(mysql_binary.read_batches(connection, SELECT, params, batch_rows=128))
    assert len(batches) == 8
    keys = np.concatenate([b[0][0] for b in batches])
    b_values = np.concatenate([b[0][3] for b in batches])
    b_nulls = np.concatenate([b[1][3] if b[1][3] is not None else np.zeros(len(b[0][0]), bool) for b in batches])
    with connection.cursor() as cur:
        cur.execute("SELECT k, a, b FROM t WHERE k >= 10 ORDER BY k")
        expected = cur.fetchall()
    assert keys.tolist() == [r[0] for r in expected]
    assert np.concatenate([b[0][2] for b in batches]).tolist() == [r[1] for r in expected]
    assert b_nulls.tolist() == [r[2] is None for r in expected]
    assert b_values[~b_nulls].tolist() == [r[2] for r in expected if r[2] is not None]
    micros = np.concatenate([b[0][1] for b in batches])
    assert micros[0] == int((datetime(2026, 1, 1, 0, 10, 0, 10) - datetime(1970, 1, 1)).total_seconds() * 1e6)
    # The connection is usable afterwards.
    with connection.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM t")
        assert cur.fetchone()[0] == 1000


def test_empty_result_and_refusals(connection):
    assert list(mysql_binary.read_batches(connection, SELECT, [5000, datetime(2030, 1, 1), "x"])) == []
    with pytest.raises(ValueError, match="placeholders"):
        list(mysql_binary.read_batches(connection, "SELECT a FROM t WHERE k = ?", []))
    assert list(mysql_binary.read_batches(connection, "SELECT a FROM t WHERE k = ?", [3]))[0][0][0].tolist() == [1.5]
    with pytest.raises(mysql_binary.UnsupportedResult):
        list(mysql_binary.read_batches(connection, "SELECT s FROM t WHERE k = ?", [1]))
    assert not connection.open  # rows were left on the wire: the connection is closed, never reused


def test_stopping_early_closes_the_connection(connection):
    batches = mysql_binary.read_batches(connection, SELECT, [0, datetime(2030, 1, 1), "x"], batch_rows=10)
    next(batches)
    batches.close()
    assert not connection.open


def test_server_errors_are_raised_as_pymysql_errors(connection):
    with pytest.raises(pymysql.err.MySQLError, match="nope"):
        list(mysql_binary.read_batches(connection, "SELECT nope FROM t WHERE k = ?", [1]))
    with pytest.raises(pymysql.err.MySQLError):  # a runtime error after the statement was prepared
        list(mysql_binary.read_batches(connection, "SELECT a FROM t WHERE k = ? AND EXP(a * ?) > 0", [1, 1e6]))
    with connection.cursor() as cur:  # both ended their result: the connection still works
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)


def test_parameters_are_bound_not_spliced(connection):
    hostile = "x' OR '1'='1"
    assert list(mysql_binary.read_batches(connection, SELECT, [0, datetime(2030, 1, 1), hostile])) == []
