"""Prometheus metrics (prometheus-fastapi-instrumentator) and structured access logs.

Every HTTP request is counted and timed by the path template of the route that serves it
(``handler="/v1/prices"``, never the raw URL, so label sets stay small; ``none`` for a path no route
serves) and written as one JSON line to the ``api.access`` logger.
"""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator import metrics as instrumentations

access_log = logging.getLogger("api.access")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    """The gateway's metric families, in a registry of their own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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

    def instrument(self, app: FastAPI) -> None:
        """Count and time ``app``'s HTTP requests (``api_requests_total``, ``api_request_duration_seconds``)."""
        Instrumentator(should_group_status_codes=False, registry=self.registry).add(
            instrumentations.requests(metric_name="api_requests_total", registry=self.registry),
            instrumentations.latency(
                metric_name="api_request_duration_seconds",
                should_include_status=False,
                buckets=LATENCY_BUCKETS,
                registry=self.registry,
            ),
            _log_access,
        ).instrument(app)


def _log_access(info: instrumentations.Info) -> None:
    """One JSON access log line for the request ``info`` describes."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    request = info.request
    length = info.response.headers.get("content-length") if info.response is not None else None
    access_log.info(
        orjson.dumps(
            {
                "event": "request",
                "method": info.method,
                "path": request.scope.get("path"),
                "route": info.modified_handler,
                "status": int(info.modified_status),
                "ms": round(info.modified_duration * 1000, 3),
                "bytes": int(length) if length is not None else None,
                "client": request.client.host if request.client else "-",
                "principal": request.scope.get("state", {}).get("principal"),
            }
        ).decode()
    )
