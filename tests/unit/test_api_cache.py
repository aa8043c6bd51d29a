"""The response cache's single-flight builds: concurrent misses of one key share one build."""

from __future__ import annotations

import asyncio

import pytest

from api.cache import CachedResponse, ResponseCache


def response(text: str) -> CachedResponse:
    return CachedResponse(text.encode(), "application/json", {})


def test_concurrent_misses_of_one_key_share_one_build():
    cache = ResponseCache(None, ttl_s=60)
    builds = []

    async def build() -> CachedResponse:
        builds.append(1)
        await asyncio.sleep(0.05)
        return response("fresh")

    async def scenario():
        return await asyncio.gather(*(cache.get_or_build("k", build) for _ in range(20)))

    results = asyncio.run(scenario())
    assert len(builds) == 1
    assert sorted(status for _, status in results) == ["miss"] + ["shared"] * 19
    assert {value.body for value, _ in results} == {b"fresh"}
    assert asyncio.run(cache.get_or_build("k", build))[1] == "hit" and len(builds) == 1


def test_different_keys_build_separately():
    cache = ResponseCache(None, ttl_s=60)

    async def scenario():
        async def build_for(key: str) -> CachedResponse:
            await asyncio.sleep(0.01)
            return response(key)

        return await asyncio.gather(*(cache.get_or_build(k, lambda k=k: build_for(k)) for k in "abc"))

    assert [(value.body, status) for value, status in asyncio.run(scenario())] == [
        (b"a", "miss"),
        (b"b", "miss"),
        (b"c", "miss"),
    ]


def test_a_failed_build_fails_its_waiters_and_the_next_request_builds_again():
    cache = ResponseCache(None, ttl_s=60)
    attempts = []

    async def failing() -> CachedResponse:
        attempts.append(1)
        await asyncio.sleep(0.02)
        raise ConnectionError("database unavailable")

    async def scenario():
        return await asyncio.gather(*(cache.get_or_build("k", failing) for _ in range(5)), return_exceptions=True)

    outcomes = asyncio.run(scenario())
    assert len(attempts) == 1 and all(isinstance(o, ConnectionError) for o in outcomes)

    async def working() -> CachedResponse:
        return response("recovered")

    value, status = asyncio.run(cache.get_or_build("k", working))
    assert (value.body, status) == (b"recovered", "miss")


def test_a_cancelled_waiter_does_not_cancel_the_shared_build():
    cache = ResponseCache(None, ttl_s=60)

    async def build() -> CachedResponse:
        await asyncio.sleep(0.05)
        return response("done")

    async def scenario():
        owner = asyncio.create_task(cache.get_or_build("k", build))
        await asyncio.sleep(0)
        waiter = asyncio.create_task(cache.get_or_build("k", build))
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        return await owner

    assert asyncio.run(scenario())[1] == "miss"
