"""The servers the suite needs (MariaDB, Redis): found running, started privately, or named to install.

Once the session's tests are selected (``pytest_collection_finish`` in ``tests/conftest.py``),
each service one of them needs (MariaDB: a test marked ``mysql``; Redis: one using ``redis_url``)
is probed at its configured address (``CRYPTO_TEST_MYSQL_URL``, ``CRYPTO_TEST_REDIS_URL``); a
service no selected test needs is left alone, so ``-m "not mysql"`` runs without MariaDB. One
that answers is used. One that does not, but whose server binaries are installed, is started
privately for the session on a free loopback port (a fresh data directory, removed afterwards).
One that is neither running nor installed is named, with the packages to install, in one line;
its tests are skipped, except under ``CI=true``, where the session fails at once instead: CI
must run every test. :func:`decide` is that decision, kept pure so that it can be tested alone.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pymysql
import pytest
import redis
from sqlalchemy.engine import make_url

from testkit.fakes.private_mariadb import INSTALL_DB, MARIADBD, PrivateMariaDB
from testkit.fakes.private_redis import REDIS_SERVER, PrivateRedis

USE, START, MISSING = "use", "start", "missing"
# Fixtures that hand out a MariaDB database or server (``tests/conftest.py``): a test that uses one
# (directly or through another fixture) needs MySQL. So does one whose fixture is parametrized "mysql" (``db_url``).
MYSQL_FIXTURES = frozenset({"mysql_url", "private_mariadb", "private_db_url"})
MYSQL_PARAM = "mysql"


@dataclass(frozen=True)
class Service:
    """A server the suite needs: its name, the binaries that run it, the packages that install them."""

    name: str
    binaries: tuple[str, ...]
    package: str


MYSQL = Service("MariaDB", (MARIADBD, INSTALL_DB), "mariadb-server")
REDIS = Service("Redis", (REDIS_SERVER,), "redis-server")


@dataclass(frozen=True)
class Decision:
    """What the session does about its services."""

    actions: dict[str, str]  # service name -> use, start or missing
    message: str | None  # one line naming what is missing and what to install
    fail: bool  # CI: stop the session rather than skip


def decide(running: dict[Service, bool], installed: dict[Service, bool], ci: bool) -> Decision:
    """Use what runs, start what is installed, name what is neither (and fail under CI)."""
    actions = {s.name: USE if running[s] else START if installed[s] else MISSING for s in running}
    missing = [s for s in running if actions[s.name] == MISSING]
    if not missing:
        return Decision(actions, None, False)
    names = " and ".join(s.name for s in missing)
    install = "apt-get install " + " ".join(s.package for s in missing)
    consequence = "CI=true, so the session stops rather than skip their tests" if ci else "their tests are skipped"
    message = (
        f"{names} not running and not installed: {install} "
        f"(or start {'them' if len(missing) > 1 else 'it'}, as .ci/run does); {consequence}"
    )
    return Decision(actions, message, ci)


def needs_mysql(fixturenames: Iterable[str], params: Mapping[str, object]) -> bool:
    """True when a test reaches MariaDB through its fixtures (their whole closure) or a fixture's ``"mysql"`` parameter."""
    return not MYSQL_FIXTURES.isdisjoint(fixturenames) or any(
        isinstance(v, str) and v == MYSQL_PARAM for v in params.values()
    )


def mysql_answers(url: str) -> bool:
    """True when a MySQL/MariaDB server accepts root connections at ``url``."""
    parsed = make_url(url)
    try:
        pymysql.connect(
            host=parsed.host or "127.0.0.1",
            port=parsed.port or 3306,
            user=parsed.username or "root",
            password=parsed.password or "",
            connect_timeout=2,
        ).close()
        return True
    except pymysql.err.MySQLError:
        return False


def redis_answers(url: str) -> bool:
    """True when a Redis server answers PING at ``url``."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.exceptions.RedisError:
        return False
    finally:
        client.close()


def installed(service: Service) -> bool:
    """True when every binary the service needs is there."""
    return all(os.path.exists(binary) for binary in service.binaries)


@dataclass
class Services:
    """The session's view of its servers: their URLs, and what was started for it (stopped by :meth:`close`)."""

    mysql_url: str
    redis_url: str
    decision: Decision | None = None
    _stops: list[Callable[[], None]] = field(default_factory=list)

    def prepare(self, ci: bool, needed: Iterable[Service] = (MYSQL, REDIS)) -> Decision:
        """Probe the ``needed`` services, decide, and start private servers where needed; the URLs then point at what answers."""
        answers = {MYSQL: lambda: mysql_answers(self.mysql_url), REDIS: lambda: redis_answers(self.redis_url)}
        running = {service: answers[service]() for service in needed}
        self.decision = decide(running, {s: installed(s) for s in running}, ci)
        if self.decision.fail:  # the session stops: start nothing
            return self.decision
        if self.started:
            atexit.register(self.close)  # also when the session is cut short
        if self.decision.actions.get(MYSQL.name) == START:
            server = PrivateMariaDB(Path(tempfile.mkdtemp(prefix="crypto-test-mariadb-")))
            server.start()
            self._stops.append(lambda: (server.stop(), shutil.rmtree(server.root, ignore_errors=True)))
            self.mysql_url = server.server_url
        if self.decision.actions.get(REDIS.name) == START:
            private = PrivateRedis(Path(tempfile.mkdtemp(prefix="crypto-test-redis-")))
            private.start()
            self._stops.append(lambda: (private.stop(), shutil.rmtree(private.root, ignore_errors=True)))
            self.redis_url = private.url
        # Subprocesses the tests start (uvicorn, dagster) see the same servers.
        if MYSQL.name in self.decision.actions:
            os.environ["CRYPTO_TEST_MYSQL_URL"] = self.mysql_url
        if REDIS.name in self.decision.actions:
            os.environ["CRYPTO_TEST_REDIS_URL"] = self.redis_url
        return self.decision

    def summary(self) -> str:
        """One line for the session header: where each service is, or what to install."""
        if self.decision is None:
            return "services: not probed"
        if self.decision.message:
            return self.decision.message
        urls = {MYSQL.name: self.mysql_url, REDIS.name: self.redis_url}
        where = ", ".join(f"{name} {urls[name]}" for name in self.decision.actions) or "none needed"
        return f"services: {where}" + (f" (started privately: {', '.join(self.started)})" if self.started else "")

    @property
    def started(self) -> list[str]:
        """The services started privately for this session."""
        return [] if self.decision is None else [n for n, a in self.decision.actions.items() if a == START]

    def require(self, service: Service) -> None:
        """Skip the calling test (fail it under CI) when ``service`` is missing; fail it when it was not prepared."""
        if self.decision is None:
            return
        if service.name not in self.decision.actions:
            pytest.fail(
                f"{service.name} was not prepared: no selected test was found to need it "
                "(see needs_mysql and the redis_url fixture in tests/conftest.py)",
                pytrace=False,
            )
        if self.decision.actions[service.name] == MISSING:
            if self.decision.fail:
                pytest.fail(self.decision.message or f"{service.name} is missing", pytrace=False)
            pytest.skip(self.decision.message or f"{service.name} is missing")

    def close(self) -> None:
        """Stop the servers started for the session."""
        while self._stops:
            self._stops.pop()()


def require_installed(service: Service) -> None:
    """Skip the calling test (fail it under CI) when ``service``'s binaries are not installed."""
    if not installed(service):
        message = f"{service.name} is not installed: apt-get install {service.package}"
        if ci_mode():
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)


def ci_mode() -> bool:
    """True under ``CI=true`` (or 1, yes): nothing that needs a service may be skipped."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


SERVICES = Services(
    mysql_url=os.environ.get("CRYPTO_TEST_MYSQL_URL") or "mysql+pymysql://root@127.0.0.1:3306",
    redis_url=os.environ.get("CRYPTO_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0",
)
