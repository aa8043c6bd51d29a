"""One settings object for the whole platform, read from the environment once.

Every environment variable the platform understands is declared here and only here (a field:
its variable, default and description); the settings table of docs/configuration.md is generated from this
module (``python -m cli.settings_doc``) and a test keeps the two equal. Nothing here imports
Dagster, so the API gateway can use it and start fast; the Dagster definitions read it once when
they load and hand its values to the resources.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


class SettingsError(ValueError):
    """An environment variable holds a value the platform cannot use."""


def _split_csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _csv(lower: bool = False) -> BeforeValidator:
    """A comma-separated list (blanks dropped) as a tuple."""

    def parse(raw: Any) -> Any:
        if not isinstance(raw, str):
            return raw
        parts = _split_csv(raw)
        return tuple(p.lower() for p in parts) if lower else parts

    return BeforeValidator(parse)


Csv = Annotated[tuple[str, ...], NoDecode, _csv()]
LowerCsv = Annotated[tuple[str, ...], NoDecode, _csv(lower=True)]
# A choice (a Literal) is matched case-insensitively: the value is lowered first.
_LOWER = BeforeValidator(lambda raw: raw.lower() if isinstance(raw, str) else raw)
SourceName = Literal["simulated", "live"]
SOURCES: tuple[str, ...] = get_args(SourceName)

# The S3 settings delta-rs understands that the lake passes on (credentials from the chart's
# Secret; AWS_ENDPOINT_URL and AWS_ALLOW_HTTP for MinIO, Ceph, R2 or a loopback server).
LAKE_STORAGE_FIELDS = (
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_region",
    "aws_endpoint_url",
    "aws_allow_http",
)


def _setting(
    env: str, default: Any = None, description: str = "", shown: str | None = None, secret: bool = False, **kw: Any
) -> Any:
    """A field read from ``env``; ``shown``: the default as the docs state it, where it is derived;
    ``secret``: a credential (only from a Secret on Kubernetes; never a resource's visible config);
    ``kw``: pydantic's constraints (``ge``), refused with the variable's name by :func:`load_settings`."""
    extra: dict[str, Any] = {"shown_default": shown} if shown is not None else {}
    if secret:
        extra["secret"] = True
    return Field(default, alias=env, description=description, json_schema_extra=extra or None, **kw)


class Settings(BaseSettings):
    """The platform's configuration; build it with :func:`load_settings`.

    Each field is one environment variable (its alias); a blank value means the default. Values
    are resolved once, when read: every path is absolute from then on, whatever the working
    directory of whoever reads it later.
    """

    model_config = SettingsConfigDict(
        case_sensitive=True, frozen=True, populate_by_name=True, extra="ignore", env_ignore_empty=True
    )

    # Warehouse and files. ``home`` comes first: the default warehouse URL is derived from it.
    home: Path = _setting(
        "CRYPTO_HOME",
        Path("./.crypto"),
        "where the embedded default keeps its files; a relative path is made absolute against the working "
        "directory when the settings are read (so is a relative SQLite path in `CRYPTO_DB_URL`)",
        shown="`./.crypto` (`scripts/start.sh`: `.crypto/` of the checkout)",
        validate_default=True,
    )
    dagster_home: Path | None = _setting(
        "DAGSTER_HOME",
        None,
        "Dagster's instance directory (runs, schedules, sensors): the one the UI shows. A run on a "
        "throw-away instance (the `dagster` command without it) is refused while an instance exists here",
        shown="`$CRYPTO_HOME/dagster_home` (`scripts/start.sh`, `scripts/dagster.sh`)",
    )
    db_url: str = _setting(
        "CRYPTO_DB_URL",
        "",
        "SQLAlchemy URL of the warehouse (`mysql+pymysql://...` in production)",
        shown="SQLite file `$CRYPTO_HOME/warehouse.sqlite`",
        validate_default=True,
        secret=True,
    )
    source: Annotated[SourceName, _LOWER] = _setting(
        "CRYPTO_SOURCE",
        "simulated",
        "`simulated` (offline, deterministic, rows labelled `source='simulated'`) or `live`",
    )
    partition_start: str = _setting(
        "CRYPTO_PARTITION_START",
        "30d",
        "first partition: ISO date (`2026-01-01`) or rolling horizon (`90d`, aligned to UTC midnight)",
    )
    universe_file: Path | None = _setting(
        "CRYPTO_UNIVERSE_FILE",
        None,
        "CSV replacing the shipped 124-coin universe (`symbol,coin_id[,name,exchange_pair]`; `exchange_pair`, "
        "optional, overrides the pair where an exchange lists it: a ccxt symbol `IOTA/USDT` or a market id "
        "`IOTAUSDT`)",
        shown="shipped `resources/config/data/universe.csv`",
    )
    sentiment_model: str = _setting(
        "CRYPTO_SENTIMENT_MODEL",
        "lexicon",
        "local directory or hub id of a transformers model (CryptoBERT), or `lexicon`",
    )
    # Live prices.
    coingecko_api_key: str | None = _setting("COINGECKO_API_KEY", None, "CoinGecko key", shown="keyless", secret=True)
    coingecko_plan: Annotated[Literal["demo", "pro"], _LOWER] = _setting(
        "COINGECKO_PLAN",
        "demo",
        "CoinGecko plan (`demo`: public host, `x-cg-demo-api-key`; `pro`: pro host, `x-cg-pro-api-key`)",
    )
    coingecko_calls_per_minute: int = _setting(
        "COINGECKO_CALLS_PER_MINUTE",
        0,
        "CoinGecko calls a minute the client allows itself (spacing between calls); 0: the plan's",
        shown="`0` (demo 30, pro 500)",
        ge=0,
    )
    exchanges: LowerCsv = _setting(
        "CRYPTO_EXCHANGES",
        ("binance", "okx", "coinbaseexchange", "kraken"),
        "exchanges (ccxt ids) live bars come from, in order of preference: each coin is served by the first that "
        "lists a USD, USDT or USDC pair for it",
    )
    derivatives_exchanges: LowerCsv = _setting(
        "CRYPTO_DERIVATIVES_EXCHANGES",
        ("binanceusdm", "okx", "bybit"),
        "exchanges (ccxt ids) perpetual swaps (funding, open interest, mark and index prices) come from, in order "
        "of preference: each coin is served by the first that lists a USDT-, USDC- or USD-margined perpetual for it; "
        "`none`: no derivatives (every coin counted without a perpetual)",
    )
    exchange_urls: Annotated[tuple[tuple[str, str], ...], NoDecode] = _setting(
        "CRYPTO_EXCHANGE_URLS",
        (),
        "base-URL overrides, `exchange=url,...` (a regional host, a proxy, a loopback fake): replaces the scheme "
        "and host of every ccxt API URL of that exchange",
    )
    snapshot_max_age_s: float = _setting(
        "CRYPTO_SNAPSHOT_MAX_AGE_S",
        600.0,
        "a CoinGecko snapshot whose `last_updated` is older than this before the window's end is not used for "
        "that window",
        shown="`600`",
        ge=1,
    )
    # News, social and macro sources.
    guardian_api_key: str | None = _setting(
        "GUARDIAN_API_KEY",
        None,
        "live news: the Guardian content API key",
        shown="unset: that source is skipped with a warning",
        secret=True,
    )
    reddit_client_id: str | None = _setting(
        "REDDIT_CLIENT_ID",
        None,
        "live social posts: Reddit client id",
        shown="unset: that source is skipped with a warning",
        secret=True,
    )
    reddit_client_secret: str | None = _setting(
        "REDDIT_CLIENT_SECRET",
        None,
        "live social posts: Reddit secret",
        shown="unset: that source is skipped with a warning",
        secret=True,
    )
    fred_api_key: str | None = _setting(
        "FRED_API_KEY",
        None,
        "live macro series: FRED key",
        shown="unset: that source is skipped with a warning",
        secret=True,
    )
    rss_feeds: Csv = _setting(
        "CRYPTO_RSS_FEEDS", (), "comma-separated RSS/Atom feed URLs", shown="a built-in list of crypto news feeds"
    )
    reddit_subreddits: Csv = _setting(
        "CRYPTO_REDDIT_SUBREDDITS",
        ("CryptoCurrency", "Bitcoin", "ethereum", "CryptoMarkets"),
        "comma-separated subreddits",
    )
    fred_series: Csv = _setting(
        "CRYPTO_FRED_SERIES", ("DGS10", "DFF", "DTWEXBGS", "CPIAUCSL"), "comma-separated FRED series ids"
    )
    macro_lookback_days: int = _setting(
        "CRYPTO_MACRO_LOOKBACK_DAYS",
        45,
        "days the nightly `macro_schedule` run re-fetches (late and revised observations, CPI about six weeks late)",
        ge=1,
    )
    live_run_deadline_s: int = _setting(
        "CRYPTO_LIVE_RUN_DEADLINE_S",
        300,
        "seconds after its window's end by which a live run stops waiting on a source (no retry or `Retry-After` "
        "wait that would end later; the run fails and gap healing re-runs the window). Backfills have none",
        ge=0,
    )
    # Base URLs of the live sources (None: the provider's own host); `doctor` and the resources
    # read them, so a proxy, a mirror or a test's loopback fake replaces the provider everywhere.
    coingecko_base_url: str | None = _setting(
        "COINGECKO_BASE_URL",
        None,
        "base URL of CoinGecko (a proxy, a mirror, a loopback fake); the assets and `doctor` both read the base URLs",
        shown="the provider's host, by `COINGECKO_PLAN`",
    )
    guardian_base_url: str | None = _setting(
        "GUARDIAN_BASE_URL", None, "base URL of the Guardian API", shown="the provider's host"
    )
    reddit_auth_url: str | None = _setting(
        "REDDIT_AUTH_URL", None, "base URL of Reddit's OAuth endpoint", shown="the provider's host"
    )
    reddit_api_url: str | None = _setting(
        "REDDIT_API_URL", None, "base URL of Reddit's API", shown="the provider's host"
    )
    fred_base_url: str | None = _setting("FRED_BASE_URL", None, "base URL of FRED", shown="the provider's host")
    yahoo_base_url: str | None = _setting(
        "YAHOO_BASE_URL", None, "base URL of Yahoo Finance", shown="the provider's host"
    )
    # Alerts and the Dagster UI.
    alert_webhook_url: str | None = _setting(
        "CRYPTO_ALERT_WEBHOOK_URL",
        None,
        "Slack-compatible webhook for alerts",
        shown="unset: alerts are logged",
        secret=True,
    )
    dagster_host: str | None = _setting(
        "DAGSTER_HOST",
        None,
        "address of the Dagster UI that `scripts/start.sh` starts (`dagster dev -h`)",
        shown="`127.0.0.1`",
    )
    dagster_port: int | None = _setting(
        "DAGSTER_PORT",
        None,
        "port of the Dagster UI that `scripts/start.sh` starts (`dagster dev -p`)",
        shown="`3000`",
        ge=1,
        le=65535,
    )
    ui_url: str = _setting(
        "CRYPTO_UI_URL",
        "",
        "public URL of the Dagster UI, for links in alerts",
        shown="`http://$DAGSTER_HOST:$DAGSTER_PORT` (a wildcard host as 127.0.0.1)",
        validate_default=True,
    )
    # API gateway (api/): keys, limits, CORS and caching.
    api_keys: Csv = _setting(
        "CRYPTO_API_KEYS", (), "comma-separated keys the gateway accepts; empty means open (loopback only)", secret=True
    )
    redis_url: str | None = _setting(
        "REDIS_URL",
        None,
        "optional Redis for the gateway: the cache of its hot endpoints and rate limits shared by every process",
        shown="unset: no cache, a rate limit per process",
        secret=True,
    )
    api_rate_limit: int = _setting(
        "CRYPTO_API_RATE_LIMIT",
        600,
        "gateway requests in any minute per key (per client IP when open), across every process with "
        "`REDIS_URL`, per process without; 0 turns it off",
        ge=0,
    )
    api_cors_origins: Csv = _setting("CRYPTO_API_CORS_ORIGINS", (), "allowed CORS origins, comma-separated")
    api_max_rows: int = _setting(
        "CRYPTO_API_MAX_ROWS",
        1_000_000,
        "row limit of one CSV/Parquet/Arrow response (the response says where it was cut)",
        ge=1,
    )
    api_max_page_size: int = _setting(
        "CRYPTO_API_MAX_PAGE_SIZE", 10_000, "largest JSON page (default page 1,000)", ge=1
    )
    api_max_range_days: int = _setting(
        "CRYPTO_API_MAX_RANGE_DAYS", 366, "longest time range one request may ask for", ge=1
    )
    api_cache_ttl_s: int = _setting("CRYPTO_API_CACHE_TTL", 300, "Redis cache entry lifetime, seconds", ge=1)
    api_state_ttl_s: float = _setting(
        "CRYPTO_API_STATE_TTL", 1.0, "how stale the gateway's view of `partition_log` may be, seconds", ge=0
    )
    api_stream_poll_s: float = _setting("CRYPTO_API_STREAM_POLL", 1.0, "WebSocket poll interval, seconds", ge=0.05)
    # Maintenance jobs.
    backup_dir: str | None = _setting(
        "CRYPTO_BACKUP_DIR",
        None,
        "where `backup_job` writes its daily Parquet export of committed windows (its schedule runs only when set)",
    )
    retention_days: int | None = _setting(
        "CRYPTO_RETENTION_DAYS",
        None,
        "`retention_job` deletes windows older than this many days, with their `partition_log` rows (unset: it "
        "deletes no window)",
        shown="unset: keep forever",
        ge=1,
    )
    run_retention_days: int | None = _setting(
        "CRYPTO_RUN_RETENTION_DAYS",
        None,
        "`retention_job` (02:30 UTC) deletes Dagster's finished runs older than this many days, with their event "
        "logs, check records and compute logs (each day of 5-minute runs adds about 240 MB to `$DAGSTER_HOME` on "
        "SQLite). Shorter than the partition horizon is refused (the UI would show those windows as missing)",
        shown="the horizon of `CRYPTO_PARTITION_START` (`30d`: 30)",
        ge=1,
    )
    # The Delta Lake copy of the committed features (resources/storage/lake.py).
    lake_uri: str | None = _setting(
        "CRYPTO_LAKE_URI",
        None,
        "where the Delta Lake copy of the features lives: a directory, or `s3://bucket/prefix` on any "
        "S3-compatible store",
        shown="`$CRYPTO_HOME/lake`",
    )
    lake_retention_days: int = _setting(
        "CRYPTO_LAKE_RETENTION_DAYS",
        30,
        "how long the lake keeps old versions readable (`as_of`) before the nightly vacuum",
        ge=1,
    )
    aws_access_key_id: str | None = _setting("AWS_ACCESS_KEY_ID", None, "access key of an `s3://` lake", secret=True)
    aws_secret_access_key: str | None = _setting(
        "AWS_SECRET_ACCESS_KEY", None, "secret key of an `s3://` lake", secret=True
    )
    aws_session_token: str | None = _setting("AWS_SESSION_TOKEN", None, "session token of an `s3://` lake", secret=True)
    aws_region: str | None = _setting("AWS_REGION", None, "region of an `s3://` lake")
    aws_endpoint_url: str | None = _setting(
        "AWS_ENDPOINT_URL", None, "endpoint of an `s3://` lake on MinIO, Ceph, R2 (not AWS)"
    )
    aws_allow_http: str | None = _setting(
        "AWS_ALLOW_HTTP", None, "`true`: the `s3://` lake's endpoint may be plain HTTP"
    )

    @model_validator(mode="before")
    @classmethod
    def _blank_is_default(cls, values: Any) -> Any:
        """Values are stripped; a blank one stands for the default."""
        if not isinstance(values, Mapping):
            return values
        return {
            key: value.strip() if isinstance(value, str) else value
            for key, value in values.items()
            if not (isinstance(value, str) and not value.strip())
        }

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("db_url")
    @classmethod
    def _db_url(cls, value: str, info: ValidationInfo) -> str:
        return _absolute_sqlite(value) if value else default_db_url(info.data.get("home") or Path.cwd())

    @field_validator("derivatives_exchanges", mode="after")
    @classmethod
    def _no_derivatives(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """``none`` (alone) turns derivatives off: an empty variable means the default here, as everywhere."""
        if "none" in value and value != ("none",):
            raise SettingsError("CRYPTO_DERIVATIVES_EXCHANGES: `none` cannot be combined with exchanges")
        return () if value == ("none",) else value

    @field_validator("exchange_urls", mode="before")
    @classmethod
    def _exchange_urls(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        pairs = []
        for part in _split_csv(value):
            name, sep, url = part.partition("=")
            if not sep or not name.strip() or not url.strip().startswith(("http://", "https://")):
                raise SettingsError(f"CRYPTO_EXCHANGE_URLS entry {part!r}: expected exchange=http(s)://host[:port]")
            pairs.append((name.strip().lower(), url.strip().rstrip("/")))
        return tuple(pairs)

    @field_validator("partition_start")
    @classmethod
    def _partition_start(cls, value: str) -> str:
        parse_partition_start(value)  # fail at load time, with the variable's name
        return value

    @field_validator("universe_file", "dagster_home")
    @classmethod
    def _absolute_path(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @field_validator("ui_url")
    @classmethod
    def _ui_url(cls, value: str, info: ValidationInfo) -> str:
        return (value or ui_url_of(info.data.get("dagster_host"), info.data.get("dagster_port"))).rstrip("/")

    @field_validator("lake_uri")
    @classmethod
    def _lake_uri(cls, value: str | None) -> str | None:
        return (value or "").rstrip("/") or None

    @property
    def lake_storage(self) -> tuple[tuple[str, str], ...]:
        """The S3 settings that are set, as (variable, value) pairs: delta-rs storage options."""
        values = ((Settings.model_fields[name].alias or name, getattr(self, name)) for name in LAKE_STORAGE_FIELDS)
        return tuple((env, value) for env, value in values if value)

    @property
    def lake_location(self) -> str:
        """Where the lake lives: ``CRYPTO_LAKE_URI``, or ``$CRYPTO_HOME/lake`` on the embedded default."""
        return self.lake_uri or str(self.home / "lake")

    @property
    def instance_dir(self) -> Path:
        """Dagster's instance directory: ``DAGSTER_HOME``, or ``$CRYPTO_HOME/dagster_home``."""
        return self.dagster_home or self.home / "dagster_home"

    def partition_start_datetime(self, now: datetime | None = None) -> datetime:
        """The first 5-minute partition: an ISO date/time, or a rolling horizon like ``90d``.

        A rolling horizon is aligned to UTC midnight so the partition set is stable within a day.
        """
        return parse_partition_start(self.partition_start, now=now)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the platform's settings from ``environ`` (the process environment by default).

    Raises :class:`SettingsError` naming the variable whose value cannot be used.
    """
    try:
        return Settings() if environ is None else Settings.model_validate(dict(environ))
    except ValidationError as exc:
        raise _settings_error(exc) from None


def _settings_error(exc: ValidationError) -> SettingsError:
    """The first problem of ``exc`` as a :class:`SettingsError` naming its variable."""
    error = exc.errors()[0]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, SettingsError):
        return cause
    name = str(error["loc"][0]) if error["loc"] else "settings"
    env = setting_variable(name) if name in Settings.model_fields else name
    return SettingsError(f"{env}={error.get('input')!r}: {cause or error['msg']}")


def setting_variable(name: str) -> str:
    """The environment variable of the field ``name`` (for messages that name it)."""
    return Settings.model_fields[name].alias or name.upper()


def is_secret(name: str) -> bool:
    """True for a field that holds a credential (a key, a password in a URL, a webhook)."""
    extra = Settings.model_fields[name].json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("secret"))


def setting_default(name: str) -> Any:
    """The default of the field ``name``: what a resource built without the settings starts from."""
    return Settings.model_fields[name].get_default(call_default_factory=True)


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


def ui_url_of(host: str | None, port: int | None) -> str:
    """The Dagster UI's URL when ``scripts/start.sh`` serves it on ``DAGSTER_HOST``:``DAGSTER_PORT``
    (a wildcard bind address is reached on loopback)."""
    host = host or "127.0.0.1"
    if host in ("0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port or 3000}"


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
