"""Prometheus metrics (request counts and latencies per route) and structured access logs.

A plain ASGI middleware: it times every HTTP request, labels it with the route's path template
(``/v1/prices/{...}``, never the raw URL, so label sets stay small; ``unmatched`` only for a
path no route serves), and writes one JSON access log line per request to the ``api.access`` logger.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.routing import Match

access_log = logging.getLogger("api.access")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Metrics:
    """The gateway's metric families, in a registry of their own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "api_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "api_request_duration_seconds",
            "HTTP request latency (to the last body byte)",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.in_flight = Gauge("api_requests_in_flight", "HTTP requests being served", registry=self.registry)
        self.stream_clients = Gauge(
            "api_stream_clients", "Connected price-stream WebSocket clients", registry=self.registry
        )
        self.cache_hits = Counter(
            "api_cache_hits_total", "Responses served from the cache", ["tier"], registry=self.registry
        )
        self.rate_limit_fallbacks = Counter(
            "api_rate_limit_fallbacks_total",
            "Rate-limit checks counted in this process's memory because Redis failed",
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """The metrics in Prometheus text format."""
        return generate_latest(self.registry)


def route_template(scope: Scope) -> str:
    """The path template of the route that served ``scope``; ``cors_preflight`` or ``unmatched`` otherwise.

    FastAPI's own routes leave themselves in ``scope["route"]``; the plain Starlette routes the
    framework adds (``/openapi.json``, ``/docs``) do not, so those are matched here. A CORS
    preflight is answered by the CORS middleware before any route, and labelled as such.
    """
    route = scope.get("route")
    if route is not None and getattr(route, "path", None):
        return route.path
    router = getattr(scope.get("app"), "router", None)
    for candidate in getattr(router, "routes", ()):
        path = getattr(candidate, "path", None)
        if path and candidate.matches(scope)[0] is Match.FULL:
            return path
    if scope.get("method") == "OPTIONS" and any(k == b"access-control-request-method" for k, _ in scope["headers"]):
        return "cors_preflight"
    return "unmatched"


class MetricsMiddleware:
    """Times each HTTP request, counts it by route and status, and writes an access log line."""

    def __init__(self, app: Any, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500
        sent = 0

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - began
            template = route_template(scope)
            method = scope.get("method", "GET")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                client = scope.get("client") or ("-", 0)
                access_log.info(
                    orjson.dumps(
                        {
                            "event": "request",
                            "method": method,
                            "path": scope.get("path"),
                            "route": template,
                            "status": status,
                            "ms": round(elapsed * 1000, 3),
                            "bytes": sent,
                            "client": client[0],
                            "principal": scope.get("state", {}).get("principal"),
                        }
                    ).decode()
                )
