"""What the test session does when MariaDB or Redis is not running (start it, or say what to install), and which tests need MariaDB.

The start path for real (a private redis-server) is in ``tests/integration/test_services_start.py``.
"""

from __future__ import annotations

import os

import pytest

from testkit.services import MISSING, MYSQL, REDIS, START, USE, Services, decide, needs_mysql

BOTH = (MYSQL, REDIS)


def _decide(running: tuple[bool, bool], installed: tuple[bool, bool], ci: bool = False):
    return decide(dict(zip(BOTH, running)), dict(zip(BOTH, installed)), ci)


def test_running_services_are_used_and_nothing_is_said():
    decision = _decide((True, True), (False, False))
    assert decision.actions == {"MariaDB": USE, "Redis": USE} and decision.message is None and not decision.fail


def test_a_service_that_is_down_but_installed_is_started_even_under_ci():
    decision = _decide((False, True), (True, True), ci=True)
    assert decision.actions == {"MariaDB": START, "Redis": USE} and decision.message is None and not decision.fail


def test_missing_services_are_named_in_one_line_with_the_packages_to_install():
    decision = _decide((False, False), (False, False))
    assert decision.actions == {"MariaDB": MISSING, "Redis": MISSING} and not decision.fail
    assert "\n" not in decision.message
    assert decision.message.startswith(
        "MariaDB and Redis not running and not installed: apt-get install mariadb-server redis-server"
    )
    assert "skipped" in decision.message
    only_redis = _decide((True, False), (True, False))
    assert only_redis.actions == {"MariaDB": USE, "Redis": MISSING}
    assert "apt-get install redis-server (or start it" in only_redis.message and "mariadb" not in only_redis.message


def test_under_ci_a_missing_service_stops_the_session():
    decision = _decide((True, False), (True, False), ci=True)
    assert decision.fail and "CI=true" in decision.message and "apt-get install redis-server" in decision.message


def test_a_test_that_uses_a_mariadb_fixture_needs_mysql():
    assert needs_mysql(["tmp_path", "mysql_url"], {})
    assert needs_mysql(["private_db_url", "private_mariadb"], {})
    assert needs_mysql(["db_url", "mysql_url", "sqlite_url"], {"db_url": "mysql"})
    assert needs_mysql(["seeded_url"], {"seeded_url": "mysql"})  # a module's own fixture parametrized "mysql"


def test_a_test_on_sqlite_or_other_parameters_does_not():
    assert not needs_mysql(["db_url", "sqlite_url", "tmp_path"], {"db_url": "sqlite"})
    assert not needs_mysql(["redis_url", "sqlite_url"], {"fmt": "csv", "n": 3, "kinds": ["mysql"]})


def test_a_session_that_needs_no_service_probes_none_even_under_ci(monkeypatch):
    """``-m "not mysql"`` over the unit tests: nothing answers on these URLs, and nothing is asked."""
    for name in ("CRYPTO_TEST_MYSQL_URL", "CRYPTO_TEST_REDIS_URL"):  # restored after
        monkeypatch.setenv(name, "as-before")
    monkeypatch.setattr("testkit.services.mysql_answers", lambda url: pytest.fail("MariaDB probed"))
    monkeypatch.setattr("testkit.services.redis_answers", lambda url: pytest.fail("Redis probed"))
    services = Services(mysql_url="mysql+pymysql://root@127.0.0.1:1", redis_url="redis://127.0.0.1:1/0")
    decision = services.prepare(ci=True, needed=[])
    assert decision.actions == {} and not decision.fail and services.started == []
    assert services.summary() == "services: none needed"
    assert os.environ["CRYPTO_TEST_MYSQL_URL"] == os.environ["CRYPTO_TEST_REDIS_URL"] == "as-before"  # nothing exported
    with pytest.raises(pytest.fail.Exception, match="MariaDB was not prepared"):
        services.require(MYSQL)
