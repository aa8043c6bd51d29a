"""Per-principal rate limits with the ``limits`` library, shared by every gateway process through Redis.

``CRYPTO_API_RATE_LIMIT`` requests a minute per principal (an API key, or the client address when
the gateway is open), counted in a moving window: at most that many in any minute, all at once
if a client likes. With ``REDIS_URL`` the windows live in Redis, so every worker process and every
replica counts against the same one; without it each process keeps its own in memory. Over the
limit: 429 with ``Retry-After``, the seconds until the oldest request in the window leaves it.

Redis failing neither refuses requests nor lifts the limit: the process counts in its own memory for
a while (a logged warning, and ``api_rate_limit_fallbacks_total``), then tries Redis again.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from prometheus_client import Counter

from api.errors import ApiError

log = logging.getLogger(__name__)

_REDIS_BACKOFF_S = 30.0
_REDIS_TIMEOUT_S = 0.25


def _storage_uri(redis_url: str) -> str:
    """``REDIS_URL`` (redis-py's form: ``redis://``, ``rediss://``, ``unix://``) as a ``limits`` async URI."""
    return "async+" + ("redis+" + redis_url if redis_url.startswith("unix://") else redis_url)


class RateLimiter:
    """``per_minute`` requests a minute per principal in a moving window (0: no limit).

    ``redis_url`` shares the windows (keys under ``key_prefix``); ``fallbacks`` counts the checks
    made in this process's memory while Redis is failing.
    """

    def __init__(self, per_minute: int, redis_url: str | None, *, key_prefix: str, fallbacks: Counter):
        self.per_minute = per_minute
        self._item = RateLimitItemPerMinute(per_minute) if per_minute > 0 else None
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._shared: MovingWindowRateLimiter | None = None
        if redis_url:
            storage = RedisStorage(
                _storage_uri(redis_url),
                implementation="redispy",
                key_prefix=key_prefix,
                wrap_exceptions=True,
                socket_timeout=_REDIS_TIMEOUT_S,
                socket_connect_timeout=_REDIS_TIMEOUT_S,
            )
            self._shared = MovingWindowRateLimiter(storage)
        self._shared_down_until = 0.0
        self._fallbacks = fallbacks

    async def acquire(self, principal: str) -> None:
        """Count one request of ``principal``, or raise 429 with ``Retry-After`` when over the limit."""
        item = self._item
        if item is None:
            return
        if self._shared is not None:
            if time.monotonic() >= self._shared_down_until:
                try:
                    await self._take(self._shared, item, principal)
                    return
                except StorageError as exc:
                    log.warning(
                        "redis rate limits unavailable (%s): counting in this process for %.0fs",
                        exc,
                        _REDIS_BACKOFF_S,
                    )
                    self._shared_down_until = time.monotonic() + _REDIS_BACKOFF_S
            self._fallbacks.inc()
        await self._take(self._local, item, principal)

    async def _take(self, limiter: MovingWindowRateLimiter, item: RateLimitItem, principal: str) -> None:
        if await limiter.hit(item, principal):
            return
        stats = await limiter.get_window_stats(item, principal)
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        raise ApiError(
            429,
            f"rate limit of {self.per_minute} requests a minute exceeded: retry in {retry}s",
            {"Retry-After": str(retry)},
        )
