"""Fixtures shared by the whole suite: fresh SQLite and MariaDB warehouses.

MariaDB is the real server at 127.0.0.1:3306 (root, no password; override with
``CRYPTO_TEST_MYSQL_URL``); each test gets its own database, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from typing import Iterator

import pymysql
import pytest

from resources.http import reset_circuit_breakers
from resources.warehouse import dispose_warehouse

MYSQL_SERVER_URL = os.environ.get("CRYPTO_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")


def _mysql_admin() -> pymysql.connections.Connection:
    from sqlalchemy.engine import make_url

    url = make_url(MYSQL_SERVER_URL)
    return pymysql.connect(host=url.host or "127.0.0.1", port=url.port or 3306, user=url.username or "root",
                           password=url.password or "", autocommit=True)


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path, monkeypatch) -> None:
    """Every test runs with its own CRYPTO_HOME and DAGSTER_HOME and fresh circuit breakers."""
    monkeypatch.setenv("CRYPTO_HOME", str(tmp_path / "crypto_home"))
    monkeypatch.delenv("CRYPTO_DB_URL", raising=False)
    monkeypatch.setenv("CRYPTO_SOURCE", "simulated")
    reset_circuit_breakers()


@pytest.fixture
def sqlite_url(tmp_path) -> Iterator[str]:
    """A fresh SQLite warehouse file."""
    url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    yield url
    dispose_warehouse(url)


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A fresh database on the real MariaDB server, dropped after the test."""
    name = f"crypto_test_{uuid.uuid4().hex[:12]}"
    admin = _mysql_admin()
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    finally:
        admin.close()
    url = f"{MYSQL_SERVER_URL}/{name}"
    yield url
    dispose_warehouse(url)
    admin = _mysql_admin()
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        admin.close()


@pytest.fixture(params=["sqlite", "mysql"])
def db_url(request) -> str:
    """The same test on SQLite and on MariaDB."""
    return request.getfixturevalue(f"{request.param}_url")
