"""API keys and per-key rate limits.

Keys come from ``CRYPTO_API_KEYS`` (comma-separated); a client sends one as ``X-API-Key`` or as
``Authorization: Bearer``. Without a key the gateway answers 401, with a wrong one 403. Keys are
compared in constant time (HMAC digests of equal length, every configured key checked). With no
key configured the gateway is open, and is meant for loopback only (see ``python -m api``).

The rate limit is a token bucket per key (per client address when open): ``CRYPTO_API_RATE_LIMIT``
requests a minute, with bursts up to that many; over it, 429 with ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from api.errors import ApiError

_DIGEST_KEY = b"crypto-api-key-compare"


def _digest(value: str) -> bytes:
    return hmac.new(_DIGEST_KEY, value.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's short fingerprint, or the client address when the gateway is open."""

    id: str


class KeyChecker:
    """Validates presented keys against the configured ones in constant time."""

    def __init__(self, keys: tuple[str, ...]):
        self._digests = [_digest(k) for k in keys]
        self.enabled = bool(keys)

    def check(self, header_key: str | None, bearer: str | None, client: str) -> Principal:
        """The caller's principal; 401 when no key is presented, 403 when it is wrong."""
        if not self.enabled:
            return Principal(f"ip:{client}")
        presented = header_key or bearer
        if not presented:
            raise ApiError(
                401,
                "an API key is required: send it as X-API-Key or Authorization: Bearer <key>",
                {"WWW-Authenticate": 'Bearer realm="crypto-api"'},
            )
        candidate = _digest(presented)
        matched = False
        for digest in self._digests:  # no early exit: the time does not depend on which key matched
            matched |= hmac.compare_digest(candidate, digest)
        if not matched:
            raise ApiError(403, "the API key is not valid: check CRYPTO_API_KEYS on the server or your key")
        return Principal("key:" + candidate.hex()[:12])

    def check_headers(self, headers: Mapping[str, str], client: str, query_key: str | None = None) -> Principal:
        """:meth:`check` of the key a request presents: its ``X-API-Key`` header (else ``query_key``,
        for browsers' websockets), or its ``Authorization: Bearer`` token. ``headers`` is looked up
        by lower-case names (Starlette's headers, or an ASGI scope's decoded into a dict)."""
        authorization = headers.get("authorization") or ""
        bearer = authorization[7:].strip() if authorization[:7].lower() == "bearer " else None
        return self.check(headers.get("x-api-key") or query_key, bearer, client)


class RateLimiter:
    """A token bucket per principal: ``per_minute`` requests a minute, bursts up to ``per_minute``."""

    def __init__(self, per_minute: int, max_principals: int = 100_000):
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}
        self._max = max_principals
        self._lock = threading.Lock()

    def acquire(self, principal: str) -> None:
        """Take one token or raise 429 with ``Retry-After`` (seconds until a token is back)."""
        if self.per_minute <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(principal, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * self._rate)
            if tokens < 1.0:
                self._buckets[principal] = (tokens, now)
                retry = max(1, math.ceil((1.0 - tokens) / self._rate))
                raise ApiError(
                    429,
                    f"rate limit of {self.per_minute} requests a minute exceeded: retry in {retry}s",
                    {"Retry-After": str(retry)},
                )
            if len(self._buckets) >= self._max and principal not in self._buckets:
                self._buckets.clear()
            self._buckets[principal] = (tokens - 1.0, now)
