"""The hot path: cached JSON answers of the polled routes served without the framework's routing.

A trading bot polls ``/v1/prices/latest`` (and ``/v1/derivatives/latest``) many times a second. When the response for the current
committed state is already cached in this process, this ASGI middleware checks the key and the
rate limit and sends the cached body or a 304, skipping FastAPI's routing and dependency
resolution (docs/benchmarks.md measures what that saves). Anything else, a cache miss, a stale
committed state or a refused key, goes on to the app, which answers exactly as it always does
(and fills the cache).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import ApiError
from api.gateway import Gateway, etag_matches, etag_of

HOT_PATHS = frozenset({"/v1/prices/latest", "/v1/derivatives/latest", "/v1/symbols"})


class HotPathMiddleware:
    """Serve cache hits of :data:`HOT_PATHS` directly; pass everything else to the app."""

    def __init__(self, app: ASGIApp, gateway: Gateway):
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if scope["type"] != "http" or path not in HOT_PATHS or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        state = self.gateway.fresh_state()
        if state is None:
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        etag = etag_of(path, query, "json", state.version)
        cached = self.gateway.cache.peek_local(etag)
        if cached is None:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        client = scope.get("client") or ("-", 0)
        try:
            principal = self.gateway.keys.check_headers(headers, client[0])
            await self.gateway.limiter.acquire(principal.id)
        except ApiError:
            await self.app(scope, receive, send)  # the app answers the refusal in its usual form
            return
        scope.setdefault("state", {})["principal"] = principal.id
        self.gateway.metrics.cache_hits.labels("hot_path").inc()
        if etag_matches(headers.get("if-none-match"), etag):
            await _send(send, 304, cached.headers, b"", None)
            return
        body, encoding = cached.for_client(headers.get("accept-encoding"))
        await _send(send, 200, {**cached.headers, **encoding, "X-Cache": "hit"}, body, cached.media_type)


async def _send(send: Send, status: int, headers: dict[str, str], body: bytes, media_type: str | None) -> None:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    if media_type is not None:
        raw.append((b"content-type", media_type.encode("latin-1")))
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
