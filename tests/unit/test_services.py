"""What the test session does when MariaDB or Redis is not running: start it, or say what to install."""

from __future__ import annotations

import os

import pytest

from tests.services import MISSING, MYSQL, REDIS, START, USE, Services, decide, redis_answers, require_installed

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


def test_a_redis_that_is_down_is_started_privately_and_stopped_after(monkeypatch):
    """The start path for real: a URL nothing answers on, the installed redis-server."""
    require_installed(REDIS)
    for name in ("CRYPTO_TEST_MYSQL_URL", "CRYPTO_TEST_REDIS_URL"):  # prepare() exports them: restored after
        monkeypatch.setenv(name, os.environ.get(name, ""))
    services = Services(mysql_url="mysql+pymysql://root@127.0.0.1:1", redis_url="redis://127.0.0.1:1/0")
    monkeypatch.setattr("tests.services.installed", lambda service: service is REDIS)  # MariaDB: name, don't start
    decision = services.prepare(ci=False)
    try:
        assert decision.actions == {"MariaDB": MISSING, "Redis": START} and services.started == ["Redis"]
        assert services.redis_url != "redis://127.0.0.1:1/0" and redis_answers(services.redis_url)
        assert "apt-get install mariadb-server" in services.summary()
        with pytest.raises(pytest.skip.Exception, match="apt-get install mariadb-server"):
            services.require(MYSQL)
        services.require(REDIS)  # there: no skip
    finally:
        services.close()
    assert not redis_answers(services.redis_url)
