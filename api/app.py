"""The gateway's FastAPI app: ``create_app()``, and ``app`` for ``uvicorn api.app:app``.

Read-only over the finished tables, serving committed windows only. Creating the app touches no
database: the warehouse is opened on the first request that needs it, so the process starts (and
``/health`` answers) while the database is down, and data routes answer 503 until it is back.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pymysql
import sqlalchemy.exc as sa_exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from api.errors import ApiError, error_body, validation_error
from api.gateway import Gateway
from api.hotpath import HotPathMiddleware
from api.routes import datasets, meta, stream
from api.warehouse_check import PUBLIC_DETAIL, MissingWarehouse
from resources.config.settings import Settings, load_settings

log = logging.getLogger("api")

DESCRIPTION = """
Read-only access to the crypto data platform's finished tables: prices, perpetual-swap derivatives,
ML features, news, sentiment and macro indicators. Only committed windows are served (rows whose window has a
`partition_log` row), and every data response says how fresh it is (`X-Data-As-Of`).

* Formats: JSON (default, paginated with `cursor`), CSV, Parquet, Arrow IPC stream: `format=` or `Accept`.
* Polling: `ETag` + `If-None-Match` turn an unchanged poll into a 304.
* Auth: `X-API-Key` or `Authorization: Bearer` with a key of `CRYPTO_API_KEYS` (open when none is set).
* Live: WebSocket `/v1/stream/prices` pushes the latest prices of each newly committed window.
* Errors: every refusal is `{"status", "code", "parameter", "detail"}` (`ErrorResponse`); a malformed
  parameter is a 400 like any other bad parameter (never FastAPI's 422).
"""

_UNAVAILABLE = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
    pymysql.err.OperationalError,
    pymysql.err.InterfaceError,
    ConnectionError,
)


# MySQL error numbers that mean "the database is not there (now)": client-side connection errors
# (2000-2999), too many connections, access denied, unknown database, shutdown, lock wait timeout.
_MYSQL_UNAVAILABLE = {1040, 1045, 1049, 1053, 1205}


def _is_unavailable(exc: Exception) -> bool:
    """True when ``exc`` says the database is unreachable, not that a statement is wrong."""
    original = getattr(exc, "orig", exc)
    if isinstance(original, pymysql.err.MySQLError):
        code = original.args[0] if original.args and isinstance(original.args[0], int) else 2000
        return code >= 2000 or code in _MYSQL_UNAVAILABLE
    return True


def _configure_access_log() -> None:
    access = logging.getLogger("api.access")
    if not access.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False


def create_app(settings: Settings | None = None, *, cache_prefix: str = "crypto-api:") -> FastAPI:
    """Build the gateway app from ``settings`` (the environment by default)."""
    settings = settings or load_settings()
    gateway = Gateway(settings, cache_prefix=cache_prefix)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if not settings.api_keys:
            log.warning("CRYPTO_API_KEYS is empty: every route answers without an API key")
        yield
        await gateway.cache.close()

    app = FastAPI(title="crypto-data-platform API", version="1.0.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.gateway = gateway

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(validation_error(exc.errors()).body(), status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(error_body(exc.status_code, str(exc.detail)), exc.status_code, headers=exc.headers)

    async def unavailable(_request: Request, exc: Exception) -> JSONResponse:
        if not _is_unavailable(exc):
            log.error("database error: %s", exc, exc_info=exc)
            return JSONResponse(error_body(500, "internal error"), status_code=500)
        log.warning("database unavailable: %s", exc)
        return JSONResponse(
            error_body(503, "the warehouse database is unreachable: retry later"),
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(MissingWarehouse)
    async def missing_warehouse(_request: Request, _exc: MissingWarehouse) -> JSONResponse:
        return JSONResponse(error_body(503, PUBLIC_DETAIL), status_code=503, headers={"Retry-After": "30"})

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, _exc: Exception) -> JSONResponse:
        return JSONResponse(error_body(500, "internal error"), status_code=500)

    for error_type in _UNAVAILABLE:
        app.add_exception_handler(error_type, unavailable)

    app.add_middleware(HotPathMiddleware, gateway=gateway)
    if settings.api_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.api_cors_origins),
            allow_methods=["GET"],
            allow_headers=["X-API-Key", "Authorization", "If-None-Match", "Accept"],
            expose_headers=[
                "ETag",
                "X-Data-As-Of",
                "X-Next-Cursor",
                "X-Truncated",
                "Link",
                "X-Row-Limit",
                "Retry-After",
            ],
        )
    gateway.metrics.instrument(app)
    app.include_router(meta.router)
    app.include_router(datasets.router)
    app.include_router(stream.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    _configure_access_log()
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, without the 422 FastAPI adds to every route with parameters: the
    gateway answers malformed parameters with a 400 in ``ErrorResponse`` (see the exception handlers)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for path in schema["paths"].values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema


app = create_app()
