"""Rate limits across gateway processes: two real uvicorn servers, with one Redis, without, and with Redis down.

Every test draws fresh API keys, so its windows in the shared Redis (keyed by the key's
fingerprint) are its own, whichever other test or session uses the same server.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator

import httpx
from fastapi.testclient import TestClient

from testkit.fakes.loopback import free_port
from tests.integration.test_api_support import make_app, seed, serve

LIMIT = 10
# /v1/prices/latest with the state kept a minute: after each process's first answer the hot path
# serves it, so the routes and the hot path both count against the limit.
ROUTE = "/v1/prices/latest"


@contextlib.contextmanager
def two_gateways(url: str, keys: str, **extra: str) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """Two gateway processes over ``url`` with ``keys`` and a limit of :data:`LIMIT`, as two clients."""
    env = {"CRYPTO_API_KEYS": keys, "CRYPTO_API_RATE_LIMIT": str(LIMIT), "CRYPTO_API_STATE_TTL": "60", **extra}
    with serve(url, **env) as first, serve(url, **env) as second:
        with httpx.Client(base_url=first, timeout=10) as a, httpx.Client(base_url=second, timeout=10) as b:
            yield a, b


def new_key() -> str:
    return f"key-{uuid.uuid4().hex}"


def statuses(clients: tuple[httpx.Client, ...], key: str, n: int) -> list[int]:
    """The statuses of ``n`` requests with ``key``, taking the clients in turn."""
    return [clients[i % len(clients)].get(ROUTE, headers={"X-API-Key": key}).status_code for i in range(n)]


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429 and response.json()["code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 60


def fallbacks(client: httpx.Client) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("api_rate_limit_fallbacks_total "):
            return float(line.split()[1])
    raise AssertionError("no api_rate_limit_fallbacks_total in /metrics")


def test_two_processes_on_one_redis_share_the_limit(sqlite_url, redis_url):
    seed(sqlite_url)
    key, other = new_key(), new_key()
    with two_gateways(sqlite_url, f"{key},{other}", REDIS_URL=redis_url) as (a, b):
        assert statuses((a, b), key, LIMIT) == [200] * LIMIT
        assert_rate_limited(a.get(ROUTE, headers={"X-API-Key": key}))
        assert_rate_limited(b.get(ROUTE, headers={"Authorization": f"Bearer {key}"}))
        assert statuses((b, a), other, LIMIT + 1) == [200] * LIMIT + [429]  # each key has its own window
        assert fallbacks(a) == fallbacks(b) == 0


def test_without_redis_each_process_keeps_its_own_limit(sqlite_url):
    seed(sqlite_url)
    key = new_key()
    with two_gateways(sqlite_url, key) as (a, b):
        assert statuses((a,), key, LIMIT + 1) == [200] * LIMIT + [429]
        assert statuses((b,), key, LIMIT) == [200] * LIMIT
        assert_rate_limited(b.get(ROUTE, headers={"X-API-Key": key}))


def test_with_redis_down_each_process_falls_back_to_its_own_limit(sqlite_url):
    """Neither 503s nor an unlimited key: each process counts in its memory and says so in /metrics."""
    seed(sqlite_url)
    key = new_key()
    with two_gateways(sqlite_url, key, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0") as (a, b):
        assert statuses((a, b), key, 2 * LIMIT) == [200] * (2 * LIMIT)
        assert_rate_limited(a.get(ROUTE, headers={"X-API-Key": key}))
        assert_rate_limited(b.get(ROUTE, headers={"X-API-Key": key}))
        assert fallbacks(a) > LIMIT and fallbacks(b) > LIMIT


def test_redis_down_is_logged(sqlite_url, caplog):
    seed(sqlite_url)
    app = make_app(sqlite_url, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", CRYPTO_API_RATE_LIMIT="5")
    with caplog.at_level(logging.WARNING, logger="api.ratelimit"), TestClient(app) as client:
        assert client.get("/v1/symbols").status_code == 200
    assert any("redis rate limits unavailable" in r.getMessage() for r in caplog.records)
