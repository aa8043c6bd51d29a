"""The test session's start path for real: a Redis nothing answers for is started privately (``testkit.services``).

The pure decision is tested in ``tests/unit/test_services.py``.
"""

from __future__ import annotations

import os

import pytest

from testkit.services import MISSING, MYSQL, REDIS, START, Services, redis_answers, require_installed


def test_a_redis_that_is_down_is_started_privately_and_stopped_after(monkeypatch):
    """The start path for real: a URL nothing answers on, the installed redis-server."""
    require_installed(REDIS)
    for name in ("CRYPTO_TEST_MYSQL_URL", "CRYPTO_TEST_REDIS_URL"):  # prepare() exports them: restored after
        monkeypatch.setenv(name, os.environ.get(name, ""))
    services = Services(mysql_url="mysql+pymysql://root@127.0.0.1:1", redis_url="redis://127.0.0.1:1/0")
    monkeypatch.setattr("testkit.services.installed", lambda service: service is REDIS)  # MariaDB: name, don't start
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
