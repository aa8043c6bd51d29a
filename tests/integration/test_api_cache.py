"""The Redis response cache, against the real Redis (``redis_url``: 127.0.0.1:6379 or the session's own; SQLite warehouse)."""

from __future__ import annotations

import uuid

import pytest
import redis
from fastapi.testclient import TestClient

from resources.storage.warehouse import get_warehouse
from tests.integration.test_api_support import PRICE_END, WINDOW, make_app, price_frame, seed


@pytest.fixture
def prefix(redis_url):
    name = f"crypto-api-test-{uuid.uuid4().hex[:10]}:"
    yield name
    connection = redis.Redis.from_url(redis_url)
    for key in connection.scan_iter(match=name + "*"):
        connection.delete(key)
    connection.close()


def test_hot_routes_are_cached_in_redis_and_invalidated_by_a_commit(sqlite_url, redis_url, prefix):
    seed(sqlite_url)
    app = make_app(sqlite_url, cache_prefix=prefix, REDIS_URL=redis_url)
    gateway = app.state.gateway
    store = redis.Redis.from_url(redis_url)
    with TestClient(app) as c:
        first = c.get("/v1/prices/latest")
        assert first.headers["X-Cache"] == "miss"
        assert len(list(store.scan_iter(match=prefix + "*"))) == 1
        gateway.cache.clear_local()
        second = c.get("/v1/prices/latest")
        assert second.headers["X-Cache"] == "hit" and gateway.cache.hits["redis"] == 1
        assert second.content == first.content and second.headers["ETag"] == first.headers["ETag"]
        ttl = store.ttl(next(store.scan_iter(match=prefix + "*")))
        assert 0 < ttl <= gateway.settings.api_cache_ttl_s

        new_window = PRICE_END + 2 * WINDOW
        get_warehouse(sqlite_url).write_partition(
            "price_data_real",
            price_frame([new_window], seed=4),
            start=new_window,
            end=new_window + WINDOW,
            run_id="r",
            code_version="1",
        )
        third = c.get("/v1/prices/latest")
        assert third.headers["X-Cache"] == "miss" and third.headers["ETag"] != first.headers["ETag"]
        assert third.json()["as_of"] == new_window.isoformat() + "Z"
        # JSON pages of the history routes are cached too.
        assert c.get("/v1/prices", params={"symbols": "BTC"}).headers["X-Cache"] == "miss"
        assert c.get("/v1/prices", params={"symbols": "BTC"}).headers["X-Cache"] == "hit"
    store.close()


def test_a_redis_that_is_down_is_skipped(sqlite_url):
    seed(sqlite_url)
    app = make_app(sqlite_url, cache_prefix=f"down-{uuid.uuid4().hex[:10]}:", REDIS_URL="redis://127.0.0.1:1/0")
    with TestClient(app) as c:
        assert c.get("/v1/prices/latest").status_code == 200
        assert c.get("/v1/symbols").status_code == 200


def test_concurrent_misses_after_a_commit_share_one_database_read(sqlite_url):
    """The stampede after a commit: many pollers miss at once, one of them builds the answer."""
    import asyncio

    import httpx

    seed(sqlite_url)
    app = make_app(sqlite_url)

    async def poll_together() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                return await asyncio.gather(*(client.get("/v1/prices/latest") for _ in range(24)))

    responses = asyncio.run(poll_together())
    assert {r.status_code for r in responses} == {200}
    statuses = [r.headers["X-Cache"] for r in responses]
    assert statuses.count("miss") == 1 and statuses.count("shared") >= 1, statuses
    assert len({r.content for r in responses}) == 1
    shared = app.state.gateway.metrics.registry.get_sample_value("api_cache_hits_total", {"tier": "shared_build"})
    assert shared == statuses.count("shared")
