"""The ``/v1`` data routes: symbols, prices, derivatives, features, sentiment, news, macro and freshness.

Every route serves committed windows only and says how fresh its data is (``X-Data-As-Of``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api import gateway as responses
from api.auth import Principal
from api.dates import DateTimeValue, DateValue, EndValue
from api.errors import bad_request
from api.formats import json_body, negotiate
from api.gateway import Gateway, iso
from api.lake_reads import LakeRows, file_listing
from api.reads import ASSETS, EARLIEST, LATEST, CommittedState, Reader, ReadPlan, resolve_choices
from api.schemas import (
    MATERIALIZED,
    NEVER_MATERIALIZED,
    DerivativePage,
    ErrorResponse,
    FeatureCatalog,
    FeatureFiles,
    FeaturePage,
    Format,
    FreshnessResponse,
    LatestDerivatives,
    LatestPrices,
    MacroPage,
    NewsPage,
    PricePage,
    SentimentAggregatePage,
    SentimentPage,
    SymbolsResponse,
)
from resources.storage import feature_specs
from resources.storage.lake import LAKE_ASSET
from resources.storage.schema import DERIVATIVES, FEATURES, MACRO, NEWS, PRICES, SENTIMENT, TableContract
from resources.storage.warehouse import utc_now

_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="One of the keys in CRYPTO_API_KEYS (or send it as a bearer token)"
)
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <one of CRYPTO_API_KEYS>")


async def authorize(request: Request) -> Principal:
    """Check the API key (when keys are configured) and count the request against its rate limit."""
    gateway: Gateway = request.app.state.gateway
    client = request.client.host if request.client else "-"
    principal = gateway.keys.check_headers(request.headers, client)
    request.scope.setdefault("state", {})["principal"] = principal.id
    await gateway.limiter.acquire(principal.id)
    return principal


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error(
        "Bad parameters (an unknown symbol, column, model, source or series, start after end, range or "
        "limit too large, bad cursor)"
    ),
    401: _error("No API key was sent (keys are configured)"),
    403: _error("The API key is not valid"),
    429: _error("Rate limit exceeded: retry after the Retry-After seconds"),
    503: _error("The warehouse database is unreachable: retry later"),
}
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {304: {"description": "Not modified since the ETag in If-None-Match"}}


def _tabular_content(model: type) -> dict[int | str, dict[str, Any]]:
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        200: {
            "model": model,
            "description": "JSON page (default), or the whole range as CSV, Parquet or "
            "an Arrow IPC stream (format= or Accept)",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": binary,
                "application/vnd.apache.arrow.stream": binary,
            },
        },
        **NOT_MODIFIED,
    }


# The security schemes are declared for the OpenAPI document; ``authorize`` reads the key itself.
router = APIRouter(
    prefix="/v1",
    dependencies=[Security(_api_key_header), Security(_bearer), Depends(authorize)],
    responses=COMMON_ERRORS,
)

SymbolsParam = Annotated[
    str | None,
    Query(
        max_length=4000,
        description="Comma-separated tickers such as BTC,ETH (any case); all served symbols if left out",
    ),
]
StartParam = Annotated[
    DateTimeValue | None,
    Query(description="Inclusive range start, ISO 8601 (a value without zone is UTC). Default: one day before end"),
]
EndParam = Annotated[
    EndValue | None,
    Query(
        description="Range end, ISO 8601 (UTC if no zone): a date and time is exclusive; a date alone "
        "(YYYY-MM-DD) covers that whole UTC day, so start=end=2026-11-30 is that day. "
        "Default: end of the latest committed window"
    ),
]
LimitParam = Annotated[
    int | None,
    Query(
        ge=1,
        description="Rows in this response. JSON: default 1000, at most CRYPTO_API_MAX_PAGE_SIZE; "
        "csv/parquet/arrow: default and maximum CRYPTO_API_MAX_ROWS",
    ),
]
CursorParam = Annotated[
    str | None,
    Query(max_length=2048, description="next_cursor (X-Next-Cursor) of the previous response, for the next rows"),
]
FormatParam = Annotated[
    Format | None,
    Query(alias="format", description="json (default), csv, parquet or arrow; or choose with the Accept header"),
]
ModelParam = Annotated[
    str | None,
    Query(
        max_length=191,
        description=(
            "Only this model's scores (name@revision, any case); an unknown model is a 400 that lists the valid ones"
        ),
    ),
]


def _gateway(request: Request) -> Gateway:
    return request.app.state.gateway


def _format(request: Request, fmt: Format | None) -> Format:
    return negotiate(fmt, request.headers.get("accept"))


def _all_columns(contract: TableContract, table: sa.Table) -> list[str]:
    """The contract's read order columns, then every other column of its table."""
    return [*contract.order, *(c.name for c in table.columns if c.name not in contract.order)]


def _span(gateway: Gateway) -> timedelta:
    return timedelta(days=gateway.settings.api_max_range_days)


@dataclass
class TableRequest:
    """What every table route resolves first: the committed state, the reader and the page asked for."""

    request: Request
    gateway: Gateway
    state: CommittedState
    reader: Reader
    fmt: Format
    limit: int | None
    cursor: str | None

    def time_range(
        self, contract: TableContract, start: datetime | None, end: datetime | None
    ) -> tuple[datetime, datetime]:
        """[start, end) checked, defaulting to the day up to the end of the table's latest committed window."""
        return responses.time_range(
            start,
            end,
            default_end=responses.default_end(self.state, contract.asset),
            default_span=timedelta(days=1),
            max_span=_span(self.gateway),
        )

    async def choose(
        self,
        table: sa.Table,
        column: str,
        requested: str | None,
        what: str,
        *,
        parameter: str,
        example: str,
        many: bool,
    ) -> tuple[str, ...] | None:
        """A filter's requested values checked against the values ``table.column`` holds (400 on an unknown one)."""
        if requested is None or not requested.strip():
            return None
        known = await run_in_threadpool(self.reader.known_values, self.state, table, column)
        return resolve_choices(requested, known, what, parameter=parameter, example=example, many=many)

    async def serve(
        self,
        plan: ReadPlan,
        end: datetime | date,
        extra: dict[str, Any] | None = None,
        lake: LakeRows | None = None,
    ) -> Response:
        """The plan's rows in the negotiated format (a JSON page, or a streamed CSV/Parquet/Arrow body),
        from the warehouse; ``lake``: from a lake version instead (an ``as_of`` read: its newest window
        is ``X-Data-As-Of``, its version ``X-Lake-Version``)."""
        as_of = lake.snapshot.newest if lake is not None else self.state.latest.get(plan.contract.asset)
        return await responses.tabular(
            self.gateway,
            self.request,
            self.state,
            plan,
            self.fmt,
            self.limit,
            self.cursor,
            as_of=as_of,
            end=end,
            extra=extra,
            source=lake,
            extra_headers={"X-Lake-Version": str(lake.snapshot.version)} if lake is not None else None,
        )


async def table_request(
    request: Request, limit: LimitParam = None, cursor: CursorParam = None, fmt: FormatParam = None
) -> TableRequest:
    """Dependency of the table routes: the gateway's committed state and reader, the format and the page."""
    gateway = _gateway(request)
    state = await gateway.state()
    return TableRequest(request, gateway, state, gateway.reader(), _format(request, fmt), limit, cursor)


Page = Annotated[TableRequest, Depends(table_request)]


# ---------------------------------------------------------------------------------- symbols
@router.get("/symbols", response_model=SymbolsResponse, summary="Symbols served", responses=NOT_MODIFIED)
async def symbols(request: Request) -> Response:
    """Every symbol with prices or features, its CoinGecko id and which tables hold it."""
    gateway = _gateway(request)
    state = await gateway.state()

    def build() -> dict[str, Any]:
        coin_ids = gateway.reader().latest_coin_ids(state)
        price_set, feature_set = set(state.price_symbols), set(state.feature_symbols)
        data = [
            {"symbol": s, "coin_id": coin_ids.get(s), "prices": s in price_set, "features": s in feature_set}
            for s in state.symbols
        ]
        return {"as_of": iso(state.latest.get(PRICES.asset)), "count": len(data), "data": data}

    return await responses.cached_json(
        gateway, request, state, state.latest.get(PRICES.asset), responses.LIVE_CACHE_CONTROL, build
    )


# ---------------------------------------------------------------------------------- prices
def _value_columns(reader: Reader, contract: TableContract, requested: str | None, what: str) -> list[str]:
    """The contract's read order columns, then the requested value columns (all when none are named)."""
    table = reader.warehouse.table(contract.name)
    value_columns = [c.name for c in table.columns if c.name not in contract.order]
    chosen = responses.parse_columns(requested, value_columns, what)
    return list(contract.order) + (chosen or value_columns)


def _price_columns(reader: Reader, requested: str | None) -> list[str]:
    return _value_columns(reader, PRICES, requested, "price")


@router.get("/prices/latest", response_model=LatestPrices, summary="Latest prices", responses=NOT_MODIFIED)
async def latest_prices(request: Request, symbols: SymbolsParam = None) -> Response:
    """Per symbol, the price row of its latest committed window. Poll it with ``If-None-Match``."""
    gateway = _gateway(request)
    state = await gateway.state()
    reader = gateway.reader()
    wanted = reader.resolve_symbols(symbols, state.price_symbols)
    as_of = state.latest.get(PRICES.asset)
    return await responses.cached_json(
        gateway, request, state, as_of, responses.LIVE_CACHE_CONTROL, lambda: latest_payload(reader, state, wanted)
    )


def latest_payload(reader: Reader, state: CommittedState, wanted: tuple[str, ...] | None) -> dict[str, Any]:
    """The latest-prices body: rows of the latest committed window, then older ones for absent symbols."""
    rows = reader.latest_rows(PRICES, state, wanted, _price_columns(reader, None), state.price_symbols)
    return {"as_of": iso(state.latest.get(PRICES.asset)), "count": len(rows), "data": rows}


@router.get("/prices", response_model=PricePage, summary="Price history", responses=_tabular_content(PricePage))
async def price_history(
    page: Page,
    symbols: SymbolsParam = None,
    start: StartParam = None,
    end: EndParam = None,
    columns: Annotated[
        str | None,
        Query(
            max_length=4000,
            description=("Comma-separated price columns (symbol and window_start always come first); all if left out"),
        ),
    ] = None,
) -> Response:
    """5-minute price rows for symbols and a time range, ordered by (symbol, window_start)."""
    reader = page.reader
    wanted = reader.resolve_symbols(symbols, page.state.price_symbols) or page.state.price_symbols
    begin, finish = page.time_range(PRICES, start, end)
    table = reader.warehouse.table(PRICES.name)
    plan = reader.table_plan(
        PRICES, table, _price_columns(reader, columns), symbols=tuple(wanted), start=begin, end=finish
    )
    return await page.serve(plan, finish)


# ---------------------------------------------------------------------------------- derivatives
def _derivative_symbols(reader: Reader, state: CommittedState) -> tuple[str, ...]:
    """The symbols ``derivatives_data`` holds (read once per committed state)."""
    return reader.known_values(state, reader.warehouse.table(DERIVATIVES.name), "symbol")


async def _wanted_derivatives(
    reader: Reader, state: CommittedState, symbols: str | None
) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """The requested symbols (None: all) checked against every served symbol (a coin without a perpetual
    is an empty answer, an unknown ticker a 400), and the symbols with derivatives rows."""
    held = await run_in_threadpool(_derivative_symbols, reader, state)
    known = tuple(sorted(set(state.symbols) | set(held)))
    return reader.resolve_symbols(symbols, known), held


@router.get(
    "/derivatives/latest",
    response_model=LatestDerivatives,
    summary="Latest derivatives",
    responses=NOT_MODIFIED,
)
async def latest_derivatives(request: Request, symbols: SymbolsParam = None) -> Response:
    """Per symbol with a perpetual swap, the derivatives row of its latest committed window. Poll it
    with ``If-None-Match``."""
    gateway = _gateway(request)
    state = await gateway.state()
    reader = gateway.reader()
    wanted, held = await _wanted_derivatives(reader, state, symbols)
    as_of = state.latest.get(DERIVATIVES.asset)

    def build() -> dict[str, Any]:
        columns = _value_columns(reader, DERIVATIVES, None, "derivatives")
        rows = reader.latest_rows(DERIVATIVES, state, wanted, columns, held)
        return {"as_of": iso(as_of), "count": len(rows), "data": rows}

    return await responses.cached_json(gateway, request, state, as_of, responses.LIVE_CACHE_CONTROL, build)


@router.get(
    "/derivatives",
    response_model=DerivativePage,
    summary="Derivatives history",
    responses=_tabular_content(DerivativePage),
)
async def derivatives(
    page: Page,
    symbols: SymbolsParam = None,
    start: StartParam = None,
    end: EndParam = None,
    columns: Annotated[
        str | None,
        Query(
            max_length=4000,
            description="Comma-separated derivatives columns (symbol and window_start always come first); "
            "all if left out",
        ),
    ] = None,
) -> Response:
    """5-minute perpetual-swap rows (mark and index bars, premium, funding, open interest) for symbols and a
    time range, ordered by (symbol, window_start). Each row holds what the market knew at its window's end."""
    reader = page.reader
    wanted, _ = await _wanted_derivatives(reader, page.state, symbols)
    begin, finish = page.time_range(DERIVATIVES, start, end)
    table = reader.warehouse.table(DERIVATIVES.name)
    chosen = _value_columns(reader, DERIVATIVES, columns, "derivatives")
    plan = reader.table_plan(DERIVATIVES, table, chosen, symbols=wanted, start=begin, end=finish)
    return await page.serve(plan, finish)


# ---------------------------------------------------------------------------------- features
_FEATURE_COLUMNS = Annotated[
    str | None,
    Query(
        max_length=20000,
        description=(
            "Comma-separated feature columns (see /v1/features/catalog; 'price' too); all if left out. "
            "symbol and timestamp always come first"
        ),
    ),
]
_AS_OF = Annotated[
    datetime | None,
    Query(
        description=(
            "Time travel, ISO 8601 (UTC if no zone): the rows as the platform served them at this "
            "time, from the lake's version of then (values before a later heal or recomputation; "
            "windows committed after it absent). 400 if in the future; 404 if there is no lake yet or "
            "as_of is before its first version (it did not exist then); 410 if that version was "
            "vacuumed (older than CRYPTO_LAKE_RETENTION_DAYS)"
        )
    ),
]
_LAKE_ERRORS: dict[int | str, dict[str, Any]] = {
    404: _error("as_of was given but there is no lake table yet, or as_of is before its first version"),
    410: _error("as_of is before the oldest lake version kept (CRYPTO_LAKE_RETENTION_DAYS): it was vacuumed"),
}


@dataclass(frozen=True)
class FeatureQuery:
    """The parameters of a features request (``/v1/features`` and ``/v1/features/files``)."""

    symbols: str | None
    start: datetime | None
    end: datetime | None
    columns: str | None
    as_of: datetime | None


def feature_query(
    symbols: SymbolsParam = None,
    start: StartParam = None,
    end: EndParam = None,
    columns: _FEATURE_COLUMNS = None,
    as_of: _AS_OF = None,
) -> FeatureQuery:
    """Dependency of the features routes: their query parameters."""
    return FeatureQuery(symbols, start, end, columns, as_of)


FeatureParams = Annotated[FeatureQuery, Depends(feature_query)]


@dataclass(frozen=True)
class FeatureRead:
    """A features request resolved: its plan, its range, its ``as_of`` (naive UTC) and whether it named no symbol."""

    plan: ReadPlan
    start: datetime
    end: datetime
    as_of: datetime | None
    every_symbol: bool


def _feature_read(page: TableRequest, query: FeatureQuery) -> FeatureRead:
    """A features request's plan and range, its parameters checked."""
    reader = page.reader
    table = reader.features_table()
    wanted = reader.resolve_symbols(query.symbols, page.state.symbols) or page.state.symbols
    value_columns = [c.name for c in table.columns if c.name not in FEATURES.order]
    default = [c for c in value_columns if c != "feature_set_version"]
    chosen = responses.parse_columns(query.columns, value_columns, "feature") or default
    begin, finish = page.time_range(FEATURES, query.start, query.end)
    plan = reader.table_plan(
        FEATURES, table, [*FEATURES.order, *chosen], symbols=tuple(wanted), start=begin, end=finish
    )
    when = responses.to_naive_utc(query.as_of, "as_of") if query.as_of is not None else None
    return FeatureRead(plan, begin, finish, when, every_symbol=not (query.symbols and query.symbols.strip()))


@router.get(
    "/features",
    response_model=FeaturePage,
    summary="ML features",
    responses={**_tabular_content(FeaturePage), **_LAKE_ERRORS},
)
async def features(
    page: Page,
    query: FeatureParams,
) -> Response:
    """Feature rows for symbols, a time range and a chosen subset of columns, ordered by (symbol, timestamp).

    Read from the warehouse (committed windows); with ``as_of``, from the Delta Lake version of that
    time instead (``X-Lake-Version`` names it).
    """
    read = _feature_read(page, query)
    lake = None
    if read.as_of is not None:
        when = read.as_of
        snapshot = await run_in_threadpool(lambda: page.gateway.lake().as_of(when))
        lake = LakeRows(read.plan, snapshot, read.start, read.end, every_symbol=read.every_symbol)
    version = str(feature_specs.FEATURE_SET_VERSION)
    response = await page.serve(read.plan, read.end, extra={"feature_set_version": version}, lake=lake)
    response.headers["X-Feature-Set-Version"] = version
    return response


@router.get(
    "/features/files",
    response_model=FeatureFiles,
    summary="ML features as lake files, for clients that read the lake themselves",
    responses={400: _error("a malformed parameter"), **_LAKE_ERRORS},
)
async def feature_files(
    page: Page,
    query: FeatureParams,
) -> Response:
    """The same request as ``/v1/features``, answered with where its rows are instead of the rows.

    A client that can open the lake (the same disk, or the bucket with its own credentials) reads
    the Parquet ``files`` of Delta version ``lake_version`` itself (the latest version, or with
    ``as_of`` the version of then), keeps the rows of ``lake_ranges`` (and ``symbols``), reads
    ``rest_ranges`` (the windows committed after the lake's newest) through ``/v1/features``, and
    merges both in (symbol, timestamp) order, without passing through the gateway. The notebook
    client does this by itself where it can (``CryptoDataClient(direct_lake=...)``).
    """
    read = _feature_read(page, query)
    body = await run_in_threadpool(
        lambda: file_listing(
            page.gateway.lake(),
            read.plan,
            read.start,
            read.end,
            page.state.latest.get(FEATURES.asset),
            read.as_of,
            every_symbol=read.every_symbol,
        )
    )
    return Response(json_body(body), media_type="application/json", headers={"Cache-Control": "no-store"})


@router.get("/features/catalog", response_model=FeatureCatalog, summary="Feature catalog", responses=NOT_MODIFIED)
async def feature_catalog(request: Request) -> Response:
    """Every feature: name, description, inputs, lookback (5-minute windows), unit and family."""
    gateway = _gateway(request)
    state = await gateway.state()

    def build() -> dict[str, Any]:
        specs = [_spec(spec) for spec in feature_specs.FEATURES]
        return {
            "feature_set_version": str(feature_specs.FEATURE_SET_VERSION),
            "count": len(specs),
            "features": specs,
        }

    return await responses.cached_json(gateway, request, state, None, "public, max-age=300", build)


def _spec(spec: feature_specs.FeatureSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "description": spec.description,
        "inputs": list(spec.inputs),
        "lookback": spec.lookback,
        "unit": spec.unit,
        "family": spec.family,
    }


# ---------------------------------------------------------------------------------- sentiment
@router.get(
    "/sentiment", response_model=SentimentPage, summary="Sentiment rows", responses=_tabular_content(SentimentPage)
)
async def sentiment(
    page: Page, symbols: SymbolsParam = None, start: StartParam = None, end: EndParam = None, model: ModelParam = None
) -> Response:
    """Per (item, symbol, model) sentiment scores, ordered by (symbol, window_start, item_id, model)."""
    reader = page.reader
    wanted = reader.resolve_symbols(symbols, page.state.symbols)
    begin, finish = page.time_range(SENTIMENT, start, end)
    table = reader.warehouse.table(SENTIMENT.name)
    equal = await _model_filter(page, table, model)
    plan = reader.table_plan(
        SENTIMENT, table, _all_columns(SENTIMENT, table), symbols=wanted, start=begin, end=finish, equal=equal
    )
    return await page.serve(plan, finish)


async def _model_filter(page: TableRequest, table: sa.Table, model: str | None) -> dict[str, str]:
    chosen = await page.choose(table, "model", model, "model", parameter="model", example="lexicon", many=False)
    return {"model": chosen[0]} if chosen else {}


@router.get(
    "/sentiment/aggregates",
    response_model=SentimentAggregatePage,
    summary="Sentiment per window",
    responses=_tabular_content(SentimentAggregatePage),
)
async def sentiment_aggregates(
    page: Page, symbols: SymbolsParam = None, start: StartParam = None, end: EndParam = None, model: ModelParam = None
) -> Response:
    """Per (symbol, 5-minute window): item count, mean and confidence-weighted score, positives, negatives."""
    reader = page.reader
    wanted = reader.resolve_symbols(symbols, page.state.symbols)
    begin, finish = page.time_range(SENTIMENT, start, end)
    table = reader.warehouse.table(SENTIMENT.name)
    equal = await _model_filter(page, table, model)
    base = reader.table_plan(
        SENTIMENT, table, ["symbol", "window_start"], symbols=wanted, start=begin, end=finish, equal=equal
    )
    return await page.serve(reader.sentiment_aggregate_plan(base), finish)


# ---------------------------------------------------------------------------------- news
@router.get("/news", response_model=NewsPage, summary="News items", responses=_tabular_content(NewsPage))
async def news(
    page: Page,
    symbols: SymbolsParam = None,
    start: StartParam = None,
    end: EndParam = None,
    source: Annotated[
        str | None,
        Query(
            max_length=32,
            description=(
                "Only this source (guardian, rss, reddit, simulated; any case); an unknown source is a 400 that "
                "lists the valid ones"
            ),
        ),
    ] = None,
) -> Response:
    """News items by publication window, ordered by (window_start, item_id); filter by mentioned symbols."""
    reader = page.reader
    wanted = reader.resolve_symbols(symbols, page.state.symbols)
    begin, finish = page.time_range(NEWS, start, end)
    table = reader.warehouse.table(NEWS.name)
    chosen = await page.choose(table, "source", source, "source", parameter="source", example="rss", many=False)
    plan = reader.table_plan(
        NEWS,
        table,
        _all_columns(NEWS, table),
        symbols=None,
        start=begin,
        end=finish,
        equal={"source": chosen[0]} if chosen else None,
        mentioning=wanted,
    )
    return await page.serve(plan, finish)


# ---------------------------------------------------------------------------------- macro
def _check_day(name: str, value: date) -> None:
    """A 400 unless ``value`` is a day the warehouse can hold."""
    if not EARLIEST.date() <= value < LATEST.date():
        raise responses.out_of_range(name, value)


@router.get("/macro", response_model=MacroPage, summary="Macro indicators", responses=_tabular_content(MacroPage))
async def macro(
    page: Page,
    series: Annotated[
        str | None,
        Query(
            max_length=2000,
            description=(
                "Comma-separated series ids such as DGS10,DFF (any case); all if left out; an unknown id is "
                "a 400 that lists the valid ones"
            ),
        ),
    ] = None,
    start: Annotated[DateValue | None, Query(description="First observation date. Default: a year before end")] = None,
    end: Annotated[
        DateValue | None,
        Query(description="Last observation date (inclusive). Default: the latest committed day"),
    ] = None,
) -> Response:
    """Daily macro observations of committed days, ordered by (series_id, observation_date)."""
    reader = page.reader
    latest = page.state.latest.get(MACRO.asset)
    last_day = latest.date() if latest is not None else utc_now().date()
    last = end or last_day
    _check_day("end", last)  # before the default start is counted back from it (end=0002-01-01)
    finish = last + timedelta(days=1)
    begin = start or finish - timedelta(days=366)
    _check_day("start", begin)
    if begin > last:
        raise bad_request(f"start ({begin.isoformat()}) must not be after end ({last.isoformat()})", "start")
    table = reader.warehouse.table(MACRO.name)
    names = await page.choose(table, "series_id", series, "series", parameter="series", example="DGS10,DFF", many=True)
    plan = reader.table_plan(
        MACRO,
        table,
        _all_columns(MACRO, table),
        symbols=None,
        start=begin,
        end=finish,
        equal={"series_id": names} if names else None,
    )
    return await page.serve(plan, finish)


# ---------------------------------------------------------------------------------- freshness
@router.get("/freshness", response_model=FreshnessResponse, summary="Freshness per asset")
async def freshness(request: Request) -> Response:
    """Per asset (every served one, also one that never ran): the last committed window, its rows, run id
    and code version, and totals."""
    gateway = _gateway(request)
    state = await gateway.state()
    if state.latest:
        state = await run_in_threadpool(lambda: gateway.reader().state(max_age_s=0))

    def build() -> dict[str, Any]:
        committed = gateway.reader().commit_log(state)
        if LAKE_ASSET not in committed:  # the lake's writes are in the Delta log
            lake = gateway.lake().freshness()
            if lake is not None:
                committed[LAKE_ASSET] = lake
        now = utc_now()
        assets = []
        for asset in sorted(set(ASSETS) | set(state.latest)):
            last, windows, total_rows = committed.get(asset, (None, 0, 0))
            if last is None:
                assets.append(
                    {
                        "asset": asset,
                        "status": NEVER_MATERIALIZED,
                        "last_window_start": None,
                        "last_window_rows": 0,
                        "last_run_id": None,
                        "last_code_version": None,
                        "last_committed_at": None,
                        "age_seconds": None,
                        "windows": 0,
                        "rows": 0,
                    }
                )
                continue
            assets.append(
                {
                    "asset": asset,
                    "status": MATERIALIZED,
                    "last_window_start": iso(last.window_start),
                    "last_window_rows": int(last.row_count),
                    "last_run_id": last.run_id,
                    "last_code_version": last.code_version,
                    "last_committed_at": iso(last.committed_at),
                    "age_seconds": round((now - last.committed_at).total_seconds(), 3),
                    "windows": int(windows),
                    "rows": int(total_rows),
                }
            )
        return {"generated_at": iso(now), "assets": assets}

    body = json_body(await run_in_threadpool(build))
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})
