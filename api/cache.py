"""Response cache for the hot JSON routes: an in-process TTL cache, plus Redis when ``REDIS_URL`` is set.

Keys carry the warehouse's committed-state version, so a newly committed window invalidates
every cached response at once: the next request computes a fresh one under the new key, and
stale entries expire with the TTL (``CRYPTO_API_CACHE_TTL``). Builds are single-flight per key:
when a commit invalidates a hot response, the requests that miss together share one build (and
its failure) instead of each querying the database. Redis is optional and never fatal: if it
fails, the gateway logs it, skips it for a while and serves from the database.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from typing import cast

import orjson
import redis.asyncio as redis_asyncio
from cachetools import TTLCache

log = logging.getLogger(__name__)

_MAX_LOCAL_BODY = 1 << 20
_REDIS_BACKOFF_S = 30.0
_GZIP_MIN_BYTES = 1024


@dataclass(frozen=True)
class CachedResponse:
    """A response body with its media type and headers (a gzip copy is made once, on first use).

    Compressing once per cached entry, not per response (Starlette's ``GZipMiddleware``), is what
    keeps polling clients that accept gzip fast: docs/benchmarks.md has both measured.
    """

    body: bytes
    media_type: str
    headers: dict[str, str]

    @cached_property
    def gzipped(self) -> bytes | None:
        """The body gzip-compressed, or None when it is too small to be worth it."""
        return gzip.compress(self.body, compresslevel=6, mtime=0) if len(self.body) >= _GZIP_MIN_BYTES else None

    def for_client(self, accept_encoding: str | None) -> tuple[bytes, dict[str, str]]:
        """The body to send and the headers that describe it, gzip when the client accepts it."""
        if self.gzipped is not None and accept_encoding and "gzip" in accept_encoding.lower():
            return self.gzipped, {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
        return self.body, {"Vary": "Accept-Encoding"} if self.gzipped is not None else {}

    def encode(self) -> bytes:
        head = orjson.dumps({"m": self.media_type, "h": self.headers})
        return head + b"\n" + self.body

    @classmethod
    def decode(cls, raw: bytes) -> CachedResponse:
        head, _, body = raw.partition(b"\n")
        meta = orjson.loads(head)
        return cls(body, meta["m"], meta["h"])


class ResponseCache:
    """Two tiers: a small in-process TTL cache, then Redis (shared by every replica)."""

    def __init__(self, redis_url: str | None, ttl_s: int, prefix: str = "crypto-api:", local_entries: int = 256):
        self.ttl_s = ttl_s
        self.prefix = prefix
        self._local: TTLCache[str, CachedResponse] = TTLCache(maxsize=local_entries, ttl=ttl_s)
        self._redis = (
            redis_asyncio.Redis.from_url(
                redis_url, socket_timeout=0.25, socket_connect_timeout=0.25, health_check_interval=30
            )
            if redis_url
            else None
        )
        self._redis_down_until = 0.0
        self.hits = {"local": 0, "redis": 0}
        self._building: dict[str, asyncio.Future[CachedResponse]] = {}

    def _usable_redis(self) -> redis_asyncio.Redis | None:
        """The Redis client, or None when there is none or it failed within the back-off."""
        return self._redis if time.monotonic() >= self._redis_down_until else None

    def _redis_failed(self, exc: Exception) -> None:
        log.warning("redis cache unavailable (%s); serving without it for %.0fs", exc, _REDIS_BACKOFF_S)
        self._redis_down_until = time.monotonic() + _REDIS_BACKOFF_S

    async def get(self, key: str) -> CachedResponse | None:
        """The cached response for ``key``, or None."""
        value = self.peek_local(key)
        if value is not None:
            return value
        redis = self._usable_redis()
        if redis is None:
            return None
        try:
            raw = cast(bytes | None, await redis.get(self.prefix + key))  # decode_responses is off: bytes
        except Exception as exc:  # any Redis failure: carry on without the cache
            self._redis_failed(exc)
            return None
        if raw is None:
            return None
        value = CachedResponse.decode(raw)
        self._remember(key, value)
        self.hits["redis"] += 1
        return value

    async def get_or_build(
        self, key: str, build: Callable[[], Awaitable[CachedResponse]]
    ) -> tuple[CachedResponse, str]:
        """The cached response for ``key``, building (and storing) it on a miss.

        Returns the response and how it was found: ``hit`` (either tier), ``miss`` (this request
        built it) or ``shared`` (it waited for a build another request had started). A build
        that raises raises in every request waiting for it, and the next request tries again.
        """
        cached = await self.get(key)
        if cached is not None:
            return cached, "hit"
        pending = self._building.get(key)
        if pending is not None:
            return await asyncio.shield(pending), "shared"
        future: asyncio.Future[CachedResponse] = asyncio.get_running_loop().create_future()
        self._building[key] = future
        try:
            value = await build()
            await self.set(key, value)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so an unwaited failure is not logged as lost
            raise
        finally:
            self._building.pop(key, None)
        future.set_result(value)
        return value, "miss"

    def peek_local(self, key: str) -> CachedResponse | None:
        """The in-process entry for ``key`` if it is there and fresh (no Redis round trip)."""
        value = self._local.get(key)
        if value is not None:
            self.hits["local"] += 1
        return value

    async def set(self, key: str, value: CachedResponse) -> None:
        """Store ``value`` under ``key`` in both tiers."""
        self._remember(key, value)
        redis = self._usable_redis()
        if redis is not None:
            try:
                await redis.set(self.prefix + key, value.encode(), ex=self.ttl_s)
            except Exception as exc:
                self._redis_failed(exc)

    def _remember(self, key: str, value: CachedResponse) -> None:
        if len(value.body) <= _MAX_LOCAL_BODY:
            self._local[key] = value

    def clear_local(self) -> None:
        """Forget the in-process tier (Redis keeps its entries)."""
        self._local.clear()

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
