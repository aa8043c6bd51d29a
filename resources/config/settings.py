"""One settings object for the whole platform, read from the environment.

Every environment variable the platform understands is declared here, with its default; the
README's configuration table mirrors this module. Nothing here imports Dagster, so the API
gateway can use it and start fast.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

SOURCES = ("simulated", "live")
COINGECKO_PLANS = ("demo", "pro")


class SettingsError(ValueError):
    """An environment variable holds a value the platform cannot use."""


def _split_csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    """The platform's configuration; build it with :func:`load_settings`."""

    home: Path
    db_url: str
    source: str = "simulated"
    partition_start: str = "30d"
    sentiment_model: str = "lexicon"
    coingecko_api_key: str | None = None
    coingecko_plan: str = "demo"
    guardian_api_key: str | None = None
    reddit_client_id: str | None = None
    reddit_client_secret: str | None = None
    fred_api_key: str | None = None
    api_keys: tuple[str, ...] = ()
    alert_webhook_url: str | None = None
    universe_file: Path | None = None
    redis_url: str | None = None
    ui_url: str = "http://127.0.0.1:3000"
    rss_feeds: tuple[str, ...] = field(default_factory=tuple)
    reddit_subreddits: tuple[str, ...] = ("CryptoCurrency", "Bitcoin", "ethereum", "CryptoMarkets")
    fred_series: tuple[str, ...] = ("DGS10", "DFF", "DTWEXBGS", "CPIAUCSL")
    # Live bars: the exchanges (ccxt ids) in order of preference, and optional base-URL overrides
    # (a regional host, a proxy, a loopback fake), exchange id -> URL.
    exchanges: tuple[str, ...] = ("binance", "okx", "coinbase", "kraken")
    exchange_urls: tuple[tuple[str, str], ...] = ()
    # A CoinGecko snapshot whose last_updated is older than this before the window's end is not
    # used for that window.
    snapshot_max_age_s: float = 600.0
    # CoinGecko calls a minute this client allows itself (0: the plan's: demo 30, pro 500).
    coingecko_calls_per_minute: int = 0
    # Days the daily macro run re-fetches: CPI lands about six weeks after its month starts.
    macro_lookback_days: int = 45
    # Seconds after its last window's end by which a live run gives up waiting on a source.
    live_run_deadline_s: int = 300
    # Base URLs of the live sources (None: the provider's own host); `doctor` and the resources
    # read them, so a proxy, a mirror or a test's loopback fake replaces the provider everywhere.
    coingecko_base_url: str | None = None
    guardian_base_url: str | None = None
    reddit_auth_url: str | None = None
    reddit_api_url: str | None = None
    fred_base_url: str | None = None
    yahoo_base_url: str | None = None
    # API gateway (api/): limits, CORS and caching.
    api_rate_limit: int = 600
    api_cors_origins: tuple[str, ...] = ()
    api_max_rows: int = 1_000_000
    api_max_page_size: int = 10_000
    api_max_range_days: int = 366
    api_cache_ttl_s: int = 300
    api_state_ttl_s: float = 1.0
    api_stream_poll_s: float = 1.0
    # Let the gateway create an empty warehouse where none exists (python -m api --create does too).
    api_create_warehouse: bool = False
    # The Delta Lake copy of the committed features (resources/storage/lake.py); None: $CRYPTO_HOME/lake.
    lake_uri: str | None = None
    lake_retention_days: int = 30
    # Credentials and endpoint of an S3-compatible lake, handed to delta-rs as storage options.
    lake_storage: tuple[tuple[str, str], ...] = ()

    @property
    def lake_location(self) -> str:
        """Where the lake lives: ``CRYPTO_LAKE_URI``, or ``$CRYPTO_HOME/lake`` on the embedded default."""
        return self.lake_uri or str(self.home / "lake")

    @property
    def is_sqlite(self) -> bool:
        """True when the warehouse is the embedded SQLite default (or any SQLite URL)."""
        return self.db_url.startswith("sqlite")

    def partition_start_datetime(self, now: datetime | None = None) -> datetime:
        """The first 5-minute partition: an ISO date/time, or a rolling horizon like ``90d``.

        A rolling horizon is aligned to UTC midnight so the partition set is stable within a day.
        """
        return parse_partition_start(self.partition_start, now=now)


_HORIZON = re.compile(r"^(\d+)d$")


def parse_partition_start(value: str, now: datetime | None = None) -> datetime:
    """Parse ``CRYPTO_PARTITION_START`` into a naive UTC datetime aligned to a 5-minute boundary."""
    value = value.strip()
    match = _HORIZON.match(value)
    if match:
        days = int(match.group(1))
        if days < 1:
            raise SettingsError("CRYPTO_PARTITION_START horizon must be at least 1d")
        now = now or datetime.now(UTC)
        midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return (midnight - timedelta(days=days)).replace(tzinfo=None)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise SettingsError(
            f"CRYPTO_PARTITION_START={value!r} is neither an ISO date (2026-01-01) nor a horizon (90d)"
        ) from exc
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    if parsed.minute % 5 or parsed.second or parsed.microsecond:
        raise SettingsError(f"CRYPTO_PARTITION_START={value!r} must fall on a 5-minute boundary")
    return parsed


def ui_url_of(host: str | None, port: str | None) -> str:
    """The Dagster UI's URL when ``scripts/start.sh`` serves it on ``DAGSTER_HOST``:``DAGSTER_PORT``
    (a wildcard bind address is reached on loopback)."""
    host = host or "127.0.0.1"
    if host in ("0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = port or "3000"
    if not port.isdigit():
        raise SettingsError(f"DAGSTER_PORT={port!r} is not a port number")
    return f"http://{host}:{port}"


def default_db_url(home: Path) -> str:
    """The embedded default warehouse: a SQLite file in ``home`` (``CRYPTO_HOME``)."""
    return f"sqlite:///{home / 'warehouse.sqlite'}"


def _absolute_sqlite(url: str) -> str:
    """``url`` with a relative SQLite file path made absolute (against the working directory, once)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise SettingsError(f"CRYPTO_DB_URL={url!r} is not a SQLAlchemy URL") from exc
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return url
    path = Path(database).expanduser()
    if path.is_absolute():
        return url
    return parsed.set(database=str(path.resolve())).render_as_string(hide_password=False)


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _flag(name: str, raw: str | None, default: bool) -> bool:
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise SettingsError(f"{name}={raw!r}: expected true or false")


# The S3 settings delta-rs understands that the lake passes on from the environment (credentials
# from the chart's Secret; AWS_ENDPOINT_URL and AWS_ALLOW_HTTP for MinIO, Ceph, R2 or a loopback server).
LAKE_STORAGE_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ALLOW_HTTP",
)


def _parse_exchange_urls(raw: str | None) -> tuple[tuple[str, str], ...]:
    pairs = []
    for part in _split_csv(raw or ""):
        name, sep, url = part.partition("=")
        if not sep or not name.strip() or not url.strip().startswith(("http://", "https://")):
            raise SettingsError(f"CRYPTO_EXCHANGE_URLS entry {part!r}: expected exchange=http(s)://host[:port]")
        pairs.append((name.strip().lower(), url.strip().rstrip("/")))
    return tuple(pairs)


def _number(name: str, raw: str | None, default: float, kind: type, minimum: float) -> float:
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum}")
    return value


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the platform's settings from ``environ`` (the process environment by default)."""
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        raw = env.get(name)
        return raw.strip() if raw and raw.strip() else None

    # Resolved here, once: every path the platform uses is absolute from now on, whatever the
    # working directory of whoever reads it later.
    home = Path(get("CRYPTO_HOME") or "./.crypto").expanduser().resolve()
    raw_db_url = get("CRYPTO_DB_URL")
    db_url = _absolute_sqlite(raw_db_url) if raw_db_url else default_db_url(home)
    source = (get("CRYPTO_SOURCE") or "simulated").lower()
    if source not in SOURCES:
        raise SettingsError(f"CRYPTO_SOURCE={source!r}: expected one of {', '.join(SOURCES)}")
    plan = (get("COINGECKO_PLAN") or "demo").lower()
    if plan not in COINGECKO_PLANS:
        raise SettingsError(f"COINGECKO_PLAN={plan!r}: expected one of {', '.join(COINGECKO_PLANS)}")
    partition_start = get("CRYPTO_PARTITION_START") or "30d"
    parse_partition_start(partition_start)  # fail at load time, with the variable's name
    universe_file = get("CRYPTO_UNIVERSE_FILE")
    defaults = Settings(home=home, db_url=db_url)
    return Settings(
        home=home,
        db_url=db_url,
        source=source,
        partition_start=partition_start,
        sentiment_model=get("CRYPTO_SENTIMENT_MODEL") or "lexicon",
        coingecko_api_key=get("COINGECKO_API_KEY"),
        coingecko_plan=plan,
        guardian_api_key=get("GUARDIAN_API_KEY"),
        reddit_client_id=get("REDDIT_CLIENT_ID"),
        reddit_client_secret=get("REDDIT_CLIENT_SECRET"),
        fred_api_key=get("FRED_API_KEY"),
        api_keys=_split_csv(get("CRYPTO_API_KEYS") or ""),
        alert_webhook_url=get("CRYPTO_ALERT_WEBHOOK_URL"),
        universe_file=Path(universe_file).expanduser().resolve() if universe_file else None,
        redis_url=get("REDIS_URL"),
        ui_url=(get("CRYPTO_UI_URL") or ui_url_of(get("DAGSTER_HOST"), get("DAGSTER_PORT"))).rstrip("/"),
        rss_feeds=_split_csv(get("CRYPTO_RSS_FEEDS") or ""),
        reddit_subreddits=_split_csv(get("CRYPTO_REDDIT_SUBREDDITS") or "") or defaults.reddit_subreddits,
        fred_series=_split_csv(get("CRYPTO_FRED_SERIES") or "") or defaults.fred_series,
        exchanges=tuple(e.lower() for e in _split_csv(get("CRYPTO_EXCHANGES") or "")) or defaults.exchanges,
        exchange_urls=_parse_exchange_urls(get("CRYPTO_EXCHANGE_URLS")),
        snapshot_max_age_s=_number(
            "CRYPTO_SNAPSHOT_MAX_AGE_S", get("CRYPTO_SNAPSHOT_MAX_AGE_S"), defaults.snapshot_max_age_s, float, 1
        ),
        coingecko_calls_per_minute=int(
            _number(
                "COINGECKO_CALLS_PER_MINUTE",
                get("COINGECKO_CALLS_PER_MINUTE"),
                defaults.coingecko_calls_per_minute,
                int,
                0,
            )
        ),
        macro_lookback_days=int(
            _number(
                "CRYPTO_MACRO_LOOKBACK_DAYS", get("CRYPTO_MACRO_LOOKBACK_DAYS"), defaults.macro_lookback_days, int, 1
            )
        ),
        coingecko_base_url=get("COINGECKO_BASE_URL"),
        guardian_base_url=get("GUARDIAN_BASE_URL"),
        reddit_auth_url=get("REDDIT_AUTH_URL"),
        reddit_api_url=get("REDDIT_API_URL"),
        fred_base_url=get("FRED_BASE_URL"),
        yahoo_base_url=get("YAHOO_BASE_URL"),
        live_run_deadline_s=int(
            _number(
                "CRYPTO_LIVE_RUN_DEADLINE_S", get("CRYPTO_LIVE_RUN_DEADLINE_S"), defaults.live_run_deadline_s, int, 0
            )
        ),
        api_rate_limit=int(
            _number("CRYPTO_API_RATE_LIMIT", get("CRYPTO_API_RATE_LIMIT"), defaults.api_rate_limit, int, 0)
        ),
        api_cors_origins=_split_csv(get("CRYPTO_API_CORS_ORIGINS") or ""),
        api_max_rows=int(_number("CRYPTO_API_MAX_ROWS", get("CRYPTO_API_MAX_ROWS"), defaults.api_max_rows, int, 1)),
        api_max_page_size=int(
            _number("CRYPTO_API_MAX_PAGE_SIZE", get("CRYPTO_API_MAX_PAGE_SIZE"), defaults.api_max_page_size, int, 1)
        ),
        api_max_range_days=int(
            _number("CRYPTO_API_MAX_RANGE_DAYS", get("CRYPTO_API_MAX_RANGE_DAYS"), defaults.api_max_range_days, int, 1)
        ),
        api_cache_ttl_s=int(
            _number("CRYPTO_API_CACHE_TTL", get("CRYPTO_API_CACHE_TTL"), defaults.api_cache_ttl_s, int, 1)
        ),
        api_state_ttl_s=_number(
            "CRYPTO_API_STATE_TTL", get("CRYPTO_API_STATE_TTL"), defaults.api_state_ttl_s, float, 0
        ),
        api_stream_poll_s=_number(
            "CRYPTO_API_STREAM_POLL", get("CRYPTO_API_STREAM_POLL"), defaults.api_stream_poll_s, float, 0.05
        ),
        api_create_warehouse=_flag(
            "CRYPTO_API_CREATE_WAREHOUSE", get("CRYPTO_API_CREATE_WAREHOUSE"), defaults.api_create_warehouse
        ),
        lake_uri=(get("CRYPTO_LAKE_URI") or "").rstrip("/") or None,
        lake_retention_days=int(
            _number(
                "CRYPTO_LAKE_RETENTION_DAYS", get("CRYPTO_LAKE_RETENTION_DAYS"), defaults.lake_retention_days, int, 1
            )
        ),
        lake_storage=tuple((name, value) for name in LAKE_STORAGE_VARIABLES if (value := get(name))),
    )
