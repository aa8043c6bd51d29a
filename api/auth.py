"""API keys: who is calling.

Keys come from ``CRYPTO_API_KEYS`` (comma-separated); a client sends one as ``X-API-Key`` or as
``Authorization: Bearer``. Without a key the gateway answers 401, with a wrong one 403. Keys are
compared in constant time (HMAC digests of equal length, every configured key checked). With no
key configured the gateway is open, and is meant for loopback only (see ``python -m api``).

Each principal's rate limit is :mod:`api.ratelimit`'s.
"""

from __future__ import annotations

import hashlib
import hmac
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
