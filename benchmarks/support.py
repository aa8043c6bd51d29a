"""What the benchmark scripts share: the MariaDB server, a throw-away database, a load generator.

* ``BENCH_MYSQL``: the server the benchmarks use, ``CRYPTO_BENCH_MYSQL`` or root without a
  password at 127.0.0.1:3306 (a SQLAlchemy URL without a database);
* ``bench_database(name)``: creates the database ``name`` afresh and drops it at the end;
* ``run_load_generator(script, ...)``: a script's load generator (``script --load ...``) in a second
  process, its one JSON line of results parsed.

What the benchmarks share with the tests (the fake servers, ``free_port``, the gateway and webserver
launchers: ``testkit.api_server.api_server``)
is in ``testkit/``; benchmarks import nothing from ``tests/``.

A script run as ``python benchmarks/<name>.py`` puts the repository root on ``sys.path`` before
``from benchmarks.support import ...``. Only the standard library is imported here at module
level (pymysql, SQLAlchemy and httpx when first needed), so the load-generator processes that
re-run a script start light.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_MYSQL = os.environ.get("CRYPTO_BENCH_MYSQL", "mysql+pymysql://root@127.0.0.1:3306")
# uvicorn's fast event loop and HTTP parser (``--loop uvloop --http httptools``).
UVLOOP_HTTPTOOLS = ("--loop", "uvloop", "--http", "httptools")


def mysql_admin(*statements: str) -> None:
    """Run ``statements`` in order on an autocommit connection to ``BENCH_MYSQL`` (no database selected)."""
    import pymysql
    import sqlalchemy as sa

    url = sa.engine.make_url(BENCH_MYSQL)
    conn = pymysql.connect(
        host=url.host, port=url.port or 3306, user=url.username, password=url.password or "", autocommit=True
    )
    try:
        with conn.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)
    finally:
        conn.close()


def database_url(name: str) -> str:
    """The SQLAlchemy URL of the database ``name`` on ``BENCH_MYSQL``."""
    return f"{BENCH_MYSQL}/{name}"


@contextlib.contextmanager
def bench_database(name: str, *, charset: str | None = None, keep: bool = False) -> Iterator[str]:
    """Create the database ``name`` afresh (dropping one left over) and yield its URL; drop it at the end.

    ``charset``: the database's character set (the server's default if None); ``keep``: leave the
    database in place at the end.
    """
    create = f"CREATE DATABASE `{name}`" + (f" CHARACTER SET {charset}" if charset else "")
    mysql_admin(f"DROP DATABASE IF EXISTS `{name}`", create)
    try:
        yield database_url(name)
    finally:
        if not keep:
            mysql_admin(f"DROP DATABASE IF EXISTS `{name}`")


def run_load_generator(script: str, *args: str) -> dict[str, Any]:
    """Run ``script --load *args`` with this interpreter and return the JSON object on its last output line.

    Raises ``RuntimeError`` with the end of its stderr if it fails.
    """
    done = subprocess.run([sys.executable, script, "--load", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])
