"""What the benchmark scripts share: the MariaDB server, a throw-away database, the gateway as a subprocess.

* ``BENCH_MYSQL``: the server the benchmarks use, ``CRYPTO_BENCH_MYSQL`` or root without a
  password at 127.0.0.1:3306 (a SQLAlchemy URL without a database);
* ``bench_database(name)``: creates the database ``name`` afresh and drops it at the end;
* ``api_server(db_url, port)``: ``uvicorn api.app:app`` on a loopback port, serving ``db_url``,
  ready once ``/health`` answers, terminated at the end;
* ``run_load_generator(script, ...)``: a script's load generator (``script --load ...``) in a second
  process, its one JSON line of results parsed.

What the benchmarks share with the tests (the fake servers, ``free_port``, the webserver launcher)
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
import time
from collections.abc import Iterator, Mapping, Sequence
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


def start_api(
    db_url: str, port: int, env: Mapping[str, str] | None = None, options: Sequence[str] = (), timeout: float = 30.0
) -> subprocess.Popen:
    """Start ``uvicorn api.app:app`` on 127.0.0.1:``port`` serving ``db_url``; return once ``/health`` answers 200.

    The server's environment is this process's plus ``CRYPTO_DB_URL``, ``PYTHONPATH`` (the
    repository root) and ``env``; ``options`` are more uvicorn arguments (e.g. ``UVLOOP_HTTPTOOLS``,
    ``--workers``). Its log level is ``warning``, without the access log. Raises ``RuntimeError``
    (and kills the server) if it exits or is not ready within ``timeout`` seconds.
    """
    import httpx

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            *options,
        ],
        cwd=ROOT,
        env={**os.environ, "CRYPTO_DB_URL": db_url, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    if process.poll() is None:
        process.kill()
        process.wait()
    raise RuntimeError(f"uvicorn did not start on port {port} (exit status {process.returncode})")


def stop_api(process: subprocess.Popen) -> None:
    """Terminate a server from ``start_api`` and wait for it (30 s at most); nothing if it has exited."""
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=30)


@contextlib.contextmanager
def api_server(
    db_url: str, port: int, env: Mapping[str, str] | None = None, options: Sequence[str] = (), timeout: float = 30.0
) -> Iterator[subprocess.Popen]:
    """``start_api`` as a context manager: yields the running server, terminates it at the end."""
    process = start_api(db_url, port, env, options, timeout)
    try:
        yield process
    finally:
        stop_api(process)


def run_load_generator(script: str, *args: str) -> dict[str, Any]:
    """Run ``script --load *args`` with this interpreter and return the JSON object on its last output line.

    Raises ``RuntimeError`` with the end of its stderr if it fails.
    """
    done = subprocess.run([sys.executable, script, "--load", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])
