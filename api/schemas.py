"""Response models: what every route returns, for the OpenAPI schema (``/openapi.json``).

Data routes build their JSON bodies directly (orjson) for speed; these models document them and
the tests validate bodies against the schema.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Literal, get_args

from pydantic import BaseModel, Field

from api.errors import CODES


class Format(StrEnum):
    """Response formats of the tabular routes."""

    json = "json"
    csv = "csv"
    parquet = "parquet"
    arrow = "arrow"


class ErrorResponse(BaseModel):
    """Every refusal (4xx and 5xx): what was wrong and what to do instead."""

    status: int = Field(description="The HTTP status code, repeated")
    code: str = Field(
        description="The kind of refusal: "
        + ", ".join(f"{code} ({status})" for status, code in CODES.items())
        + ", error (any other)"
    )
    parameter: str | None = Field(
        description="The query parameter at fault (start, symbols, as_of, ...); null when the refusal is "
        "not about one (API key, rate limit, unknown path, database down)"
    )
    detail: str = Field(description="What was wrong, naming the parameter, and what is expected instead")


class Health(BaseModel):
    status: str = Field(description="Always 'ok' while the process serves requests")


class Ready(BaseModel):
    status: str = Field(description="'ready' when the warehouse database answers")
    database: str = Field(description="The warehouse's SQL dialect (mysql, sqlite, ...)")


class Page(BaseModel):
    """Fields shared by every paginated JSON response."""

    as_of: datetime | None = Field(description="Start of the latest committed window this response reflects (UTC)")
    count: int = Field(description="Rows in this page")
    limit: int = Field(description="The row limit this page was cut at")
    truncated: bool = Field(description="True when more rows match: fetch them with next_cursor")
    next_cursor: str | None = Field(description="Pass as ?cursor= (same other parameters) for the next page")


class SymbolInfo(BaseModel):
    symbol: str
    coin_id: str | None = Field(description="CoinGecko id, when the symbol has prices")
    prices: bool = Field(description="The symbol has rows in price_data_real")
    features: bool = Field(description="The symbol has rows in ml_features_materialized")


class SymbolsResponse(BaseModel):
    as_of: datetime | None
    count: int
    data: list[SymbolInfo]


class PriceRow(BaseModel):
    """One 5-minute row of ``price_data_real`` (fields outside ``columns=`` are left out)."""

    symbol: str
    window_start: datetime
    coin_id: str | None = None
    current_price: float | None = None
    market_cap: float | None = None
    volume_24h: float | None = None
    price_change_24h: float | None = None
    price_change_pct_24h: float | None = None
    high_24h: float | None = None
    low_24h: float | None = None
    open_24h: float | None = None
    open: float | None = None
    high: float | None = None
    low: float | None = None
    close: float | None = None
    volume: float | None = None
    source: str | None = None
    collected_at: datetime | None = None
    quote: str | None = Field(default=None, description="Currency of the prices: USD, USDT or USDC")
    market_data_age_s: float | None = Field(default=None, description="Age of the market fields at the window's end, s")


class LatestPrices(BaseModel):
    as_of: datetime | None = Field(description="The latest committed price window (UTC)")
    count: int
    data: list[PriceRow] = Field(description="Per symbol, the row of its latest committed window")


class PricePage(Page):
    data: list[PriceRow]


class DerivativeRow(BaseModel):
    """One 5-minute row of ``derivatives_data``: a coin's perpetual swap as known at the window's end
    (fields outside ``columns=`` are left out)."""

    symbol: str
    window_start: datetime
    exchange: str | None = Field(default=None, description="ccxt id of the exchange (or 'simulated')")
    contract: str | None = Field(default=None, description="ccxt unified symbol of the swap, e.g. BTC/USDT:USDT")
    settle: str | None = Field(default=None, description="Margin and settlement currency: USDT, USDC or USD")
    mark_open: float | None = Field(default=None, description="Mark price bar of the window, in the settle currency")
    mark_high: float | None = None
    mark_low: float | None = None
    mark_close: float | None = None
    index_open: float | None = Field(default=None, description="Index (spot) price bar of the window")
    index_high: float | None = None
    index_low: float | None = None
    index_close: float | None = None
    premium: float | None = Field(default=None, description="mark_close / index_close - 1, a fraction")
    funding_rate: float | None = Field(
        default=None,
        description="The latest funding settlement strictly before the window's end, per funding interval, "
        "as a fraction (0.0001 = 0.01 %)",
    )
    funding_time: datetime | None = Field(default=None, description="When funding_rate settled (UTC)")
    next_funding_rate: float | None = Field(
        default=None,
        description="The predicted next rate as observed at the window's end (per interval, a fraction); null "
        "where it was not observed then (backfilled windows)",
    )
    next_funding_time: datetime | None = Field(default=None, description="When the next funding settles (UTC)")
    funding_interval_h: float | None = Field(default=None, description="Hours between funding settlements")
    open_interest: float | None = Field(default=None, description="Open interest in contracts (base currency units)")
    open_interest_value: float | None = Field(
        default=None, description="Open interest's notional, in the settle currency"
    )
    open_interest_at: datetime | None = Field(
        default=None, description="The open-interest observation used: the latest at or before the window's end"
    )
    collected_at: datetime | None = None


class LatestDerivatives(BaseModel):
    as_of: datetime | None = Field(description="The latest committed derivatives window (UTC)")
    count: int
    data: list[DerivativeRow] = Field(description="Per symbol with a perpetual, the row of its latest committed window")


class DerivativePage(Page):
    data: list[DerivativeRow]


class FeaturePage(Page):
    feature_set_version: str | None = Field(description="The catalog's feature-set version")
    data: list[dict[str, float | str | datetime | None]] = Field(
        description="symbol, timestamp, then the requested feature columns"
    )


class TimeRange(BaseModel):
    start: datetime = Field(description="First window start of the range (UTC, inclusive)")
    end: datetime = Field(description="End of the range (UTC, exclusive)")


class LakeFile(BaseModel):
    path: str = Field(description="The Parquet file's path relative to table_uri")
    size_bytes: int


class FeatureFiles(BaseModel):
    """A features request as files to read: what a client that can reach the lake reads itself."""

    direct: bool = Field(
        description="True: read `files` (keeping the rows of `lake_ranges` and `symbols`) and `rest_ranges` "
        "through /v1/features; false: the files may not be read directly (no lake, none of the range in it, "
        "files that are not plain Parquet): read the whole request through /v1/features"
    )
    as_of: datetime | None = Field(description="X-Data-As-Of of the whole read")
    lake_version: int | None = Field(description="The Delta version the files belong to (null: no lake)")
    table_uri: str = Field(description="The lake table's root (a directory or s3://bucket/prefix/ml_features)")
    columns: list[str] = Field(description="The response's columns, in order: symbol, timestamp, then the features")
    arrow_schema: str = Field(description="The response's Arrow schema, as a base64 IPC schema message")
    symbols: list[str] | None = Field(description="Keep the files' rows of these symbols; null: every row")
    lake_ranges: list[TimeRange] = Field(description="Keep the files' rows whose timestamp is in one of these")
    rest_ranges: list[TimeRange] = Field(
        description="Ranges to read through /v1/features: the windows after the lake's newest (committed "
        "since its last write)"
    )
    files: list[LakeFile]


class FeatureSpec(BaseModel):
    name: str
    description: str
    inputs: list[str] = Field(description="Columns or tables the feature is computed from")
    lookback: int | None = Field(description="History the feature needs, in 5-minute windows")
    unit: str | None
    family: str | None


class FeatureCatalog(BaseModel):
    feature_set_version: str
    count: int
    features: list[FeatureSpec]


class SentimentRow(BaseModel):
    symbol: str
    window_start: datetime
    item_id: str
    model: str
    sentiment_score: float | None = None
    confidence: float | None = None
    label: str | None = None
    source: str | None = None
    analyzed_at: datetime | None = None


class SentimentPage(Page):
    data: list[SentimentRow]


class SentimentAggregate(BaseModel):
    symbol: str
    window_start: datetime
    items: int = Field(description="Scored (item, model) rows in the window")
    mean_score: float | None
    weighted_score: float | None = Field(description="Confidence-weighted mean score")
    mean_confidence: float | None
    positive: int = Field(description="Rows with a score above 0")
    negative: int = Field(description="Rows with a score below 0")


class SentimentAggregatePage(Page):
    data: list[SentimentAggregate]


class NewsItem(BaseModel):
    item_id: str
    window_start: datetime
    source: str
    published_at: datetime
    collected_at: datetime
    title: str
    summary: str | None = None
    url: str | None = None
    symbols: list[str] = Field(description="Tickers the item mentions (in CSV one field, joined with ';')")


class NewsPage(Page):
    data: list[NewsItem]


class MacroRow(BaseModel):
    series_id: str
    observation_date: date
    value: float | None = None
    realtime_start: date | None = None
    source: str | None = None


class MacroPage(Page):
    data: list[MacroRow]


# The freshness statuses, once: the type the schema states, and the names the route writes.
FreshnessStatus = Literal["materialized", "never materialized"]
MATERIALIZED, NEVER_MATERIALIZED = get_args(FreshnessStatus)


class AssetFreshness(BaseModel):
    asset: str
    status: FreshnessStatus = Field(
        description="'never materialized' for an asset with no committed window yet (its last_* fields are null)"
    )
    last_window_start: datetime | None = Field(description="Start of the latest committed window (UTC)")
    last_window_rows: int = Field(description="Rows the latest window committed (0 when never materialized)")
    last_run_id: str | None
    last_code_version: str | None
    last_committed_at: datetime | None
    age_seconds: float | None = Field(description="Seconds since the latest window was committed")
    windows: int = Field(description="Committed windows in total")
    rows: int = Field(description="Rows committed in total")


class FreshnessResponse(BaseModel):
    generated_at: datetime
    assets: list[AssetFreshness] = Field(description="Every served asset, also one that never ran, by name")
