"""Fixtures shared by the whole suite: fresh SQLite and MariaDB warehouses, the Redis URL, private servers.

MariaDB is the server at 127.0.0.1:3306 (root, no password; override with
``CRYPTO_TEST_MYSQL_URL``) and Redis the one at 127.0.0.1:6379 (``CRYPTO_TEST_REDIS_URL``), each
probed only when a selected test needs it. When one is not running, the session starts a private
one from the installed binaries, or names the packages to install in one line and skips the tests
that need it (fails at once under ``CI=true``): see :mod:`testkit.services`. Each MariaDB test gets
its own database, dropped afterwards.

Every test that reaches MariaDB carries the ``mysql`` marker, so ``-m "not mysql"`` runs without
it: the marker is added at collection to every test using a MariaDB fixture (``mysql_url``,
``db_url``'s ``mysql`` case, any fixture parametrized ``"mysql"``, ``private_mariadb``,
``private_db_url``), and a test that reaches the server otherwise (:func:`mysql_database`,
:func:`mysql_admin`) without the marker fails, naming it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator

import pymysql
import pytest

from resources.retry_policy import reset_circuit_breakers
from resources.storage.warehouse import dispose_warehouse
from testkit.fakes.private_mariadb import PrivateMariaDB
from testkit.services import MYSQL, REDIS, SERVICES, ci_mode, needs_mysql, require_installed

_RUNNING: dict[str, pytest.Item] = {}  # the test being set up, run or torn down

# private_mariadb and private_db_url serve the tests that kill and restart a server of their own:
# offered here so that no test module imports a fixture and shadows it with a parameter. (Not as
# ``pytest_plugins``: tests.services imports the module first, so pytest could not rewrite its asserts.)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Find, start or name the services the selected tests need; under CI stop at once when one is missing.

    MariaDB is needed by a test marked ``mysql``, Redis by one using ``redis_url``; with neither
    selected (``-m "not mysql"`` over the unit tests) nothing is probed. What is missing (the
    packages to install) or was started privately is said in one line, even with ``-q``.
    """
    if session.config.option.collectonly:
        return
    needed = [MYSQL] if any(item.get_closest_marker("mysql") for item in session.items) else []
    if any("redis_url" in getattr(item, "fixturenames", ()) for item in session.items):
        needed.append(REDIS)
    decision = SERVICES.prepare(ci=ci_mode(), needed=needed)
    if decision.fail:
        message = decision.message or "a service the suite needs is missing"
        if os.environ.get("PYTEST_XDIST_WORKER"):
            # An xdist worker cannot pytest.exit cleanly: it skips its tests and stops after the
            # first, and the controller ends the session as interrupted, with this message.
            for item in session.items:
                item.add_marker(pytest.mark.skip(reason=message))
            session.shouldfail = message
            return
        pytest.exit(message, returncode=3)
    if decision.message or SERVICES.started:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(SERVICES.summary(), yellow=bool(decision.message), bold=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the servers started for the session."""
    SERVICES.close()


# The longest test files, longest first (seconds of the whole file on 2 cores, serially). The suite
# runs on two xdist workers a file at a time, in the order collected (scripts/test.sh): these go
# first, so that neither worker starts a five-minute file while the other has nothing left to run.
LONGEST_FIRST = (
    "tests/integration/test_operations.py",  # 300-500 s: the platform left running
    "tests/integration/test_soak.py",  # 90 s
    "tests/integration/test_prices_asset.py",  # 70 s
    "tests/integration/test_live_exchanges.py",  # 55 s
    "tests/integration/test_backfill.py",  # 45 s
    "tests/integration/test_start_script.py",  # 40 s
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test whose fixtures reach MariaDB ``mysql`` (before ``-m`` selects); the longest files first."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if needs_mysql(getattr(item, "fixturenames", ()), callspec.params if callspec else {}):
            item.add_marker(pytest.mark.mysql)
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Remember the test being set up (and then run): MariaDB helpers check its marker."""
    _RUNNING["item"] = item


def _require_mysql_marker() -> None:
    item = _RUNNING.get("item")
    if item is not None and item.get_closest_marker("mysql") is None:
        pytest.fail(
            f"{item.nodeid} reaches MariaDB without the mysql marker: add @pytest.mark.mysql "
            "(the MariaDB fixtures add it themselves)",
            pytrace=False,
        )


def mysql_admin() -> pymysql.connections.Connection:
    """An autocommit root connection to the session's MariaDB, no database selected.

    Skips the test (fails it under CI) when there is no MariaDB; fails it when it lacks the ``mysql`` marker.
    """
    _require_mysql_marker()
    SERVICES.require(MYSQL)
    return _connect_admin()


def _connect_admin() -> pymysql.connections.Connection:
    from sqlalchemy.engine import make_url

    url = make_url(SERVICES.mysql_url)
    return pymysql.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        autocommit=True,
    )


def _admin_execute(admin: pymysql.connections.Connection, sql: str) -> None:
    try:
        with admin.cursor() as cursor:
            cursor.execute(sql)
    finally:
        admin.close()


@contextlib.contextmanager
def mysql_database(create: bool = True) -> Iterator[str]:
    """The URL of a fresh database on the session's MariaDB (created unless ``create`` is false), dropped after.

    Checks like :func:`mysql_admin`; the drop does not (a module's database may outlive its last test's setup).
    """
    name = f"crypto_test_{uuid.uuid4().hex[:12]}"
    admin = mysql_admin()
    if create:
        _admin_execute(admin, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    else:
        admin.close()
    url = f"{SERVICES.mysql_url}/{name}"
    try:
        yield url
    finally:
        dispose_warehouse(url)
        _admin_execute(_connect_admin(), f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def redis_url() -> str:
    """The Redis server the tests use (skipped, or failed under CI, when there is none)."""
    SERVICES.require(REDIS)
    return SERVICES.redis_url


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path, monkeypatch) -> None:
    """Every test runs with its own CRYPTO_HOME and DAGSTER_HOME and fresh circuit breakers."""
    monkeypatch.setenv("CRYPTO_HOME", str(tmp_path / "crypto_home"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
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
    with mysql_database() as url:
        yield url


@pytest.fixture(scope="module")
def private_mariadb(tmp_path_factory) -> Iterator[PrivateMariaDB]:
    """A running private MariaDB for the module's tests (skipped where no mariadbd is installed)."""
    require_installed(MYSQL)
    server = PrivateMariaDB(tmp_path_factory.mktemp("private_mariadb"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
def private_db_url(private_mariadb: PrivateMariaDB) -> Iterator[str]:
    """A fresh database on the private server (started again first if a test left it down)."""
    private_mariadb.start()
    url = private_mariadb.create_database()
    yield url
    dispose_warehouse(url)


@pytest.fixture(params=["sqlite", "mysql"])
def db_url(request) -> str:
    """The same test on SQLite and on MariaDB."""
    return request.getfixturevalue(f"{request.param}_url")
