"""The gateway object every route shares, and the helpers that turn a plan into a response.

:class:`Gateway` holds the settings, the key checker and rate limiter, the response cache, the
metrics, and (opened lazily, so the process starts even while the database is down) the
:class:`~api.reads.Reader` over the warehouse.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from api import formats
from api.auth import KeyChecker
from api.cache import CachedResponse, ResponseCache
from api.errors import ApiError, bad_request
from api.lake_reads import LakeRows, LakeView
from api.metrics import Metrics
from api.ratelimit import RateLimiter
from api.reads import EARLIEST, LATEST, CommittedState, Reader, ReadPlan, decode_cursor, encode_cursor, window_end
from api.schemas import Format
from api.warehouse_check import MissingWarehouse, check_warehouse
from resources.config.settings import Settings
from resources.storage.lake import FeatureLake
from resources.storage.warehouse import get_warehouse, utc_now
from resources.storage.windows import WINDOW, window_floor

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 1000
LIVE_CACHE_CONTROL = "no-cache"  # revalidate every time: the ETag turns an unchanged poll into a 304
HISTORY_CACHE_CONTROL = "private, max-age=300"  # a range that ends before the latest committed window


def cache_control(end: datetime | date, latest: datetime | None) -> str:
    """``no-cache`` for a range that reaches the live edge, a short max-age for settled history."""
    if latest is None:
        return LIVE_CACHE_CONTROL
    edge = latest.date() if isinstance(end, date) and not isinstance(end, datetime) else latest
    return HISTORY_CACHE_CONTROL if end <= edge else LIVE_CACHE_CONTROL


class Gateway:
    """Shared state of one app: settings, auth, limits, cache, metrics and the warehouse reader.

    Every Redis key of the gateway starts with ``cache_prefix``: the cache's, and the rate limits'
    (``<cache_prefix>rate:``).
    """

    def __init__(self, settings: Settings, *, cache_prefix: str = "crypto-api:"):
        self.settings = settings
        self.keys = KeyChecker(settings.api_keys)
        self.metrics = Metrics()
        self.limiter = RateLimiter(
            settings.api_rate_limit,
            settings.redis_url,
            key_prefix=cache_prefix + "rate",
            fallbacks=self.metrics.rate_limit_fallbacks,
        )
        self.cache = ResponseCache(settings.redis_url, settings.api_cache_ttl_s, prefix=cache_prefix)
        self._reader: Reader | None = None
        self._reader_lock = threading.Lock()
        self._reported_missing = False
        self._lake = LakeView(FeatureLake.from_settings(settings), settings.api_state_ttl_s)

    # ---------------------------------------------------------------- warehouse
    def reader(self) -> Reader:
        """The warehouse reader, opened on first use.

        Raises :class:`~api.warehouse_check.MissingWarehouse` while the configured warehouse does
        not exist (it is never created here), and the driver's error while the database is down.
        """
        if self._reader is None:
            with self._reader_lock:
                if self._reader is None:
                    try:
                        check_warehouse(self.settings)
                    except MissingWarehouse as exc:
                        if not self._reported_missing:  # once: readiness probes ask every few seconds
                            log.error("%s", exc)
                            self._reported_missing = True
                        raise
                    self._reader = Reader(get_warehouse(self.settings.db_url), self.settings.api_state_ttl_s)
        return self._reader

    def lake(self) -> LakeView:
        """The features lake (``CRYPTO_LAKE_URI``): ``as_of`` reads, the lake files of a request, its freshness."""
        return self._lake

    def fresh_state(self) -> CommittedState | None:
        """The committed state if it was read within ``CRYPTO_API_STATE_TTL``, else None."""
        reader = self._reader
        return reader.cached_state() if reader is not None else None

    async def state(self) -> CommittedState:
        """The committed state (from memory while younger than ``CRYPTO_API_STATE_TTL``)."""
        current = self.fresh_state()
        if current is not None:
            return current
        return await run_in_threadpool(lambda: self.reader().state())


# -------------------------------------------------------------------------------- parameters
def out_of_range(name: str, value: datetime | date) -> ApiError:
    """The 400 of a date or time outside the served bounds."""
    return bad_request(
        f"{name}={value.isoformat()} is out of range: use a date between {EARLIEST.year} and {LATEST.year}", name
    )


def to_naive_utc(value: datetime, name: str) -> datetime:
    """A request datetime as naive UTC within the served bounds; a 400 naming ``name`` otherwise."""
    try:
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
    except (OverflowError, ValueError):
        raise out_of_range(name, value) from None
    if not EARLIEST <= value < LATEST:
        raise out_of_range(name, value)
    return value


def time_range(
    start: datetime | None,
    end: datetime | None,
    *,
    default_end: datetime,
    default_span: timedelta,
    max_span: timedelta | None,
) -> tuple[datetime, datetime]:
    """[start, end) from the request, defaulted and checked (order, bounds, maximum span)."""
    end_value = to_naive_utc(end, "end") if end is not None else default_end
    start_value = to_naive_utc(start, "start") if start is not None else max(EARLIEST, end_value - default_span)
    if start_value >= end_value:
        raise bad_request(
            f"start ({start_value.isoformat()}) must be before end ({end_value.isoformat()}); "
            "a date alone as end covers that whole day",
            "start",
        )
    if max_span is not None and end_value - start_value > max_span:
        days = (end_value - start_value).total_seconds() / 86400
        raise bad_request(
            f"start: the range from start to end spans {days:.1f} days, more than the maximum of {max_span.days} "
            "(CRYPTO_API_MAX_RANGE_DAYS): split it into several requests",
            "start",
        )
    return start_value, end_value


def default_end(state: CommittedState, asset: str) -> datetime:
    """The end of the asset's latest committed window, or the next 5-minute boundary from now."""
    latest = state.latest.get(asset)
    if latest is not None:
        return window_end(asset, latest)
    return window_floor(utc_now()) + WINDOW


def parse_columns(requested: str | None, available: Sequence[str], what: str) -> list[str] | None:
    """The requested columns (comma-separated) checked against ``available``; None = all."""
    if requested is None or not requested.strip():
        return None
    chosen: list[str] = []
    unknown: list[str] = []
    allowed = set(available)
    for part in requested.split(","):
        name = part.strip()
        if not name:
            continue
        if name not in allowed:
            unknown.append(name)
        elif name not in chosen:
            chosen.append(name)
    if unknown:
        shown = ", ".join(repr(u[:40]) for u in unknown[:5])
        listed = ", ".join(list(available)[:12]) + (", ..." if len(available) > 12 else "")
        raise bad_request(f"columns: unknown {what} column(s) {shown}; available: {listed}", "columns")
    if not chosen:
        raise bad_request(f"columns is empty: name {what} columns (comma-separated) or leave it out", "columns")
    return chosen


def resolve_limit(limit: int | None, fmt: Format, settings: Settings) -> int:
    """The row limit of one response: JSON pages up to the page maximum, streams up to the row maximum."""
    maximum = settings.api_max_page_size if fmt is Format.json else settings.api_max_rows
    if limit is None:
        return min(DEFAULT_PAGE_SIZE, maximum) if fmt is Format.json else maximum
    if limit > maximum:
        which = "CRYPTO_API_MAX_PAGE_SIZE" if fmt is Format.json else "CRYPTO_API_MAX_ROWS"
        hint = " (use format=arrow, parquet or csv for more)" if fmt is Format.json else ""
        raise bad_request(
            f"limit={limit} is above the maximum of {maximum} rows for format={fmt.value} "
            f"({which}){hint}: lower it and follow the cursor for the rest",
            "limit",
        )
    return limit


# -------------------------------------------------------------------------------- responses
def iso(value: datetime | date | None) -> str | None:
    """ISO 8601 with ``Z`` for a naive UTC datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat() + "Z"
    return value.isoformat()


def etag_of(path: str, query: Sequence[tuple[str, str]], fmt: str, version: str) -> str:
    """A strong ETag: the route, its parameters, the format and the committed-state version."""
    params = sorted((k, v) for k, v in query if k != "format")
    raw = repr((path, params, fmt, version)).encode()
    return '"' + hashlib.blake2b(raw, digest_size=12).hexdigest() + '"'


def etag_for(request: Request, state: CommittedState, fmt: Format) -> str:
    """The ETag of ``request`` against ``state`` in ``fmt``."""
    return etag_of(request.url.path, request.query_params.multi_items(), fmt.value, state.version)


def matches_etag(request: Request, etag: str) -> bool:
    """True when the client's ``If-None-Match`` already names ``etag``."""
    return etag_matches(request.headers.get("if-none-match"), etag)


def etag_matches(header: str | None, etag: str) -> bool:
    """True when an ``If-None-Match`` header value names ``etag`` (or is ``*``)."""
    if not header:
        return False
    return header.strip() == "*" or etag in [t.strip().removeprefix("W/") for t in header.split(",")]


def base_headers(as_of: datetime | date | None, etag: str, cache_control: str) -> dict[str, str]:
    """Freshness and caching headers every data response carries."""
    headers = {"ETag": etag, "Cache-Control": cache_control}
    if as_of is not None:
        headers["X-Data-As-Of"] = iso(as_of) or ""
    return headers


def not_modified(headers: dict[str, str]) -> Response:
    """A 304 with the same validators."""
    return Response(status_code=304, headers=headers)


async def cached_json(
    gateway: Gateway, request: Request, state: CommittedState, as_of: datetime | None, cache_control: str, build: Any
) -> Response:
    """A JSON response served from cache (keyed by ETag) or built by ``build()`` in a worker thread."""
    etag = etag_for(request, state, Format.json)
    headers = base_headers(as_of, etag, cache_control)
    if matches_etag(request, etag):
        return not_modified(headers)

    async def build_response() -> CachedResponse:
        body = formats.json_body(await run_in_threadpool(build))
        return CachedResponse(body, formats.MEDIA_TYPES[Format.json], headers)

    cached, status = await cached_or_built(gateway, etag, build_response)
    content, encoding = cached.for_client(request.headers.get("accept-encoding"))
    return Response(content, media_type=cached.media_type, headers={**headers, **encoding, "X-Cache": status})


async def cached_or_built(
    gateway: Gateway, etag: str, build: Callable[[], Awaitable[CachedResponse]]
) -> tuple[CachedResponse, str]:
    """The response cached under ``etag``, or one build of it shared by every concurrent miss."""
    cached, status = await gateway.cache.get_or_build(etag, build)
    if status != "miss":
        gateway.metrics.cache_hits.labels("memory_or_redis" if status == "hit" else "shared_build").inc()
    return cached, status


async def tabular(
    gateway: Gateway,
    request: Request,
    state: CommittedState,
    plan: ReadPlan,
    fmt: Format,
    limit: int | None,
    cursor: str | None,
    *,
    as_of: datetime | date | None,
    end: datetime | date,
    extra: dict[str, Any] | None = None,
    source: LakeRows | None = None,
    extra_headers: dict[str, str] | None = None,
) -> Response:
    """Serve ``plan`` as a JSON page or a streamed CSV/Parquet/Arrow body, cut at the row limit.

    When the limit cuts the rows, the response says so (``truncated``/``X-Truncated``) and gives
    the cursor of the rest (``next_cursor``, ``X-Next-Cursor`` and a ``Link: rel="next"``).
    The rows come from the warehouse reader, or from ``source``, a lake version (an ``as_of`` read).
    """
    rows = resolve_limit(limit, fmt, gateway.settings)
    start_key = decode_cursor(plan.name, plan.keys, cursor) if cursor else None
    etag = etag_for(request, state, fmt)
    latest = as_of if isinstance(as_of, datetime) else None
    headers = base_headers(as_of, etag, cache_control(end, latest))
    headers["X-Row-Limit"] = str(rows)
    headers.update(extra_headers or {})
    if matches_etag(request, etag):
        return not_modified(headers)
    reader = source or gateway.reader()

    if fmt is Format.json:

        def build() -> CachedResponse:
            stop = reader.next_key(plan, start_key, rows)
            table = reader.read_table(plan, start_key, stop)
            next_cursor = encode_cursor(plan.name, stop) if stop is not None else None
            payload = {
                "as_of": iso(as_of),
                "count": table.num_rows,
                "limit": rows,
                "truncated": stop is not None,
                "next_cursor": next_cursor,
                **(extra or {}),
                "data": table.to_pylist(),
            }
            return CachedResponse(
                formats.json_body(payload),
                formats.MEDIA_TYPES[Format.json],
                {**headers, **_next_headers(request, next_cursor)},
            )

        cached, status = await cached_or_built(gateway, etag, lambda: run_in_threadpool(build))
        content, encoding = cached.for_client(request.headers.get("accept-encoding"))
        return Response(
            content, media_type=cached.media_type, headers={**headers, **cached.headers, **encoding, "X-Cache": status}
        )

    stop = await run_in_threadpool(reader.next_key, plan, start_key, rows)
    next_cursor = encode_cursor(plan.name, stop) if stop is not None else None
    headers.update(_next_headers(request, next_cursor))
    extension = {Format.csv: "csv", Format.parquet: "parquet", Format.arrow: "arrows"}[fmt]
    headers["Content-Disposition"] = f'inline; filename="{plan.name}.{extension}"'
    body = formats.stream(fmt, plan.schema, reader.batches(plan, start_key, stop))
    return StreamingResponse(body, media_type=formats.MEDIA_TYPES[fmt], headers=headers)


def _next_headers(request: Request, next_cursor: str | None) -> dict[str, str]:
    if next_cursor is None:
        return {"X-Truncated": "false"}
    url = request.url.include_query_params(cursor=next_cursor)
    return {"X-Truncated": "true", "X-Next-Cursor": next_cursor, "Link": f'<{url}>; rel="next"'}
