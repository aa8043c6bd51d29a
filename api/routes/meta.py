"""Liveness, readiness and metrics: open routes (no API key), outside ``/v1``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.schemas import ErrorResponse, Health, Ready

router = APIRouter()


@router.get("/health", response_model=Health, summary="Liveness")
async def health() -> Health:
    """Answers while the process serves requests; does not touch the database."""
    return Health(status="ok")


@router.get(
    "/ready",
    response_model=Ready,
    summary="Readiness",
    responses={
        503: {"model": ErrorResponse, "description": "The warehouse database is unreachable, or does not exist"}
    },
)
async def ready(request: Request) -> Ready:
    """Answers 200 when the warehouse exists and answers a query; 503 when it is unreachable or missing.

    A warehouse that does not exist is never created here (an empty one would look ready and serve nothing).
    """
    gateway = request.app.state.gateway

    def ping() -> str:
        reader = gateway.reader()
        reader.warehouse.ping()
        return reader.warehouse.dialect

    return Ready(status="ready", database=await run_in_threadpool(ping))


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Request counts and latencies per route, in Prometheus text format",
        }
    },
)
async def metrics(request: Request) -> Response:
    """Request counts, latency histograms per route, in-flight requests, stream clients, cache hits."""
    return Response(request.app.state.gateway.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
