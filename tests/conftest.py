"""Fixtures shared by the whole suite: fresh SQLite and MariaDB warehouses, the Redis URL.

MariaDB is the server at 127.0.0.1:3306 (root, no password; override with
``CRYPTO_TEST_MYSQL_URL``) and Redis the one at 127.0.0.1:6379 (``CRYPTO_TEST_REDIS_URL``). When
one is not running, the session starts a private one from the installed binaries, or names the
packages to install in one line and skips the tests that need it (fails at once under
``CI=true``): see :mod:`tests.services`. Each MariaDB test gets its own database, dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pymysql
import pytest

from resources.sources.http import reset_circuit_breakers
from resources.storage.warehouse import dispose_warehouse
from tests.fakes.private_mariadb import private_db_url, private_mariadb  # noqa: F401 (fixtures, see below)
from tests.services import MYSQL, REDIS, SERVICES, ci_mode

# private_mariadb and private_db_url serve the tests that kill and restart a server of their own:
# offered here so that no test module imports a fixture and shadows it with a parameter. (Not as
# ``pytest_plugins``: tests.services imports the module first, so pytest could not rewrite its asserts.)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Find, start or name the services the suite needs; under CI stop at once when one is missing.

    What is missing (the packages to install) or was started privately is said in one line, even with ``-q``.
    """
    decision = SERVICES.prepare(ci=ci_mode())
    if decision.fail:
        pytest.exit(decision.message or "a service the suite needs is missing", returncode=3)
    if decision.message or SERVICES.started:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(SERVICES.summary(), yellow=bool(decision.message), bold=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the servers started for the session."""
    SERVICES.close()


def mysql_server_url() -> str:
    """The MariaDB server the tests use (SQLAlchemy URL without a database)."""
    return SERVICES.mysql_url


def _mysql_admin() -> pymysql.connections.Connection:
    from sqlalchemy.engine import make_url

    SERVICES.require(MYSQL)
    url = make_url(SERVICES.mysql_url)
    return pymysql.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        autocommit=True,
    )


@pytest.fixture
def redis_url() -> str:
    """The Redis server the tests use (skipped, or failed under CI, when there is none)."""
    SERVICES.require(REDIS)
    return SERVICES.redis_url


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
    url = f"{SERVICES.mysql_url}/{name}"
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
