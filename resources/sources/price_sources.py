"""Where ``price_data_real`` rows come from: simulated, or live (exchange bars + CoinGecko).

``PriceSourceResource`` is the Dagster resource; :func:`fetch_prices` is the plain function it
calls. Live mode takes every window's 5-minute bars from the first configured exchange that
serves each coin (``resources/sources/exchange.py``, through ccxt). Market fields (market cap, 24h
volume and changes) come from CoinGecko: for the window that just closed (the range ends within
``live_lag`` of now) from the ``/coins/markets`` snapshot, unless a coin's ``last_updated`` is
older than ``snapshot_max_age`` before the window's end; for every other window from the cached
market history, joined as of the window's end (``resources/sources/market_history.py``). Coins without
bars get their latest-window price from the snapshot alone.

Each row's ``source`` says where it came from: ``<exchange>`` (bars alone),
``<exchange>+coingecko`` (bars + snapshot), ``<exchange>+coingecko_history`` (bars + history),
``coingecko`` (snapshot alone); ``quote`` is the currency of its prices (``USDT`` is not USD).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from dagster import ConfigurableResource
from pydantic import Field

from resources.config.settings import Settings, parse_partition_start, setting_default
from resources.config.universe import Coin, load_universe
from resources.sources.coingecko import MARKET_FIELDS, CoinGeckoClient, coingecko_http, snapshot_frame
from resources.sources.exchange import ExchangeRouter, exchange_venues
from resources.sources.frame_checks import check_window_keys, typed_frame
from resources.sources.market_history import LOOKBACK, MarketHistory
from resources.sources.simulated import simulated_price_frame
from resources.storage.dagster_resources import resource_value
from resources.storage.schema import DOUBLE, price_data_real
from resources.storage.warehouse import Warehouse, utc_now
from resources.storage.windows import WINDOW

#: The columns of a ``price_data_real`` row, in the table's order, and those of them that are numbers.
PRICE_COLUMNS = tuple(column.name for column in price_data_real.columns)
NUMERIC_COLUMNS = tuple(column.name for column in price_data_real.columns if column.type is DOUBLE)
#: CoinGecko calls a minute by plan, when COINGECKO_CALLS_PER_MINUTE does not say.
PLAN_CALLS_PER_MINUTE = {"demo": 30, "pro": 500}


class PriceValidationError(ValueError):
    """What a source returned cannot be written: the message names the problem."""


@dataclass
class PriceFetch:
    """The rows for a range, and what the metadata should say about how they were obtained;
    ``missing_reasons``: why each of ``missing_symbols`` has no row."""

    frame: pd.DataFrame
    source: str
    missing_symbols: list[str] = field(default_factory=list)
    missing_reasons: dict[str, str] = field(default_factory=dict)
    unknown_ids: list[str] = field(default_factory=list)
    http_stats: dict[str, Any] = field(default_factory=dict)
    exchanges: dict[str, Any] = field(default_factory=dict)
    stale_snapshots: list[str] = field(default_factory=list)
    market_history: dict[str, Any] = field(default_factory=dict)

    def sources(self) -> dict[str, int]:
        """Rows per ``source`` value."""
        return dict(Counter(self.frame["source"])) if len(self.frame) else {}

    def market_fields_share(self) -> float:
        """Share of rows with every market field present."""
        if not len(self.frame):
            return 0.0
        return float(self.frame[list(MARKET_FIELDS)].notna().all(axis=1).mean())


def _join_snapshot(frame: pd.DataFrame, snapshot: pd.DataFrame, latest: datetime) -> pd.DataFrame:
    """The latest window's bars with the snapshot's market fields, plus rows of snapshot-only coins."""
    keyed = frame.set_index(["symbol", "window_start"])
    snap = snapshot.set_index(["symbol", "window_start"])
    both = keyed.index.intersection(snap.index)
    for column in (*MARKET_FIELDS, "market_data_age_s"):
        keyed.loc[both, column] = snap.loc[both, column]
    keyed.loc[both, "source"] = keyed.loc[both, "source"] + "+coingecko"
    only = snap.loc[snap.index.difference(keyed.index)].copy()
    only["source"] = "coingecko"
    only["quote"] = "USD"
    return pd.concat([keyed.reset_index(), only.reset_index()], ignore_index=True)


def fetch_prices(
    coins: Sequence[Coin],
    start: datetime,
    end: datetime,
    *,
    mode: str,
    router: ExchangeRouter | None = None,
    coingecko: CoinGeckoClient | None = None,
    history: MarketHistory | None = None,
    now: datetime | None = None,
    live_lag: timedelta = timedelta(minutes=15),
    snapshot_max_age: timedelta = timedelta(minutes=10),
) -> PriceFetch:
    """Rows of ``price_data_real`` for every window in [start, end) from the chosen source.

    Raises (before anything is written) when a source fails for good, serves malformed data, or
    when every exchange listing a coin is unavailable.
    """
    if mode == "simulated":
        return PriceFetch(simulated_price_frame(coins, start, end).reindex(columns=list(PRICE_COLUMNS)), "simulated")
    if router is None or coingecko is None or history is None:
        raise ValueError("live mode needs an exchange router, a CoinGecko client and the market history")
    now = now or utc_now()
    bars = router.bars_frame(coins, start, end, now)
    frame = bars.frame.rename(columns={"exchange": "source"})
    frame["current_price"] = frame["close"]
    frame["collected_at"] = pd.Timestamp(now)
    for column in (*MARKET_FIELDS, "market_data_age_s"):
        frame[column] = np.nan
    latest = end - WINDOW
    live = now - live_lag <= end <= now  # the range ends with the window that just closed
    past = frame[frame["window_start"] < pd.Timestamp(latest)] if live else frame
    if len(past):
        first, last = past["window_start"].min().to_pydatetime(), past["window_start"].max().to_pydatetime()
        history.ensure(sorted(past["coin_id"].unique()), first + WINDOW - LOOKBACK, last + WINDOW)
        joined = history.market_fields(past[["coin_id", "window_start"]], WINDOW).set_index(["coin_id", "window_start"])
        keyed = frame.set_index(["coin_id", "window_start"])
        columns = [*MARKET_FIELDS, "market_data_age_s"]
        keyed.loc[joined.index, columns] = joined[columns].to_numpy()
        found = keyed.index.isin(joined.index[joined["market_data_age_s"].notna()])
        keyed.loc[found, "source"] = keyed.loc[found, "source"] + "+coingecko_history"
        frame = keyed.reset_index()
    unknown: list[str] = []
    stale: list[str] = []
    if live:
        snapshot, unknown = snapshot_frame(coingecko, coins, latest, now)
        snapshot["market_data_age_s"] = (pd.Timestamp(end) - snapshot["last_updated"]).dt.total_seconds()
        too_old = snapshot["market_data_age_s"].isna() | (
            snapshot["market_data_age_s"] > snapshot_max_age.total_seconds()
        )
        stale = sorted(snapshot.loc[too_old, "symbol"])
        frame = _join_snapshot(frame, snapshot.loc[~too_old].drop(columns="last_updated"), latest)
    frame = frame.reindex(columns=list(PRICE_COLUMNS))
    frame["collected_at"] = pd.Timestamp(now)
    missing = sorted({c.symbol for c in coins} - set(frame["symbol"]))
    reasons = {s: bars.why_missing.get(s, "no exchange bars and no CoinGecko price") for s in missing}
    stats = {"coingecko": {**coingecko.http.stats.as_metadata(), "circuit": coingecko.http.breaker.snapshot()}}
    exchanges = {
        "served_by": bars.served_by,
        "unlisted": bars.routing.unlisted,
        "no_bars": bars.missing,
        "rejected_bars": bars.rejected,
        "failed_pairs": bars.failed_pairs,
        "per_exchange": router.metadata(),
    }
    return PriceFetch(frame, "live", missing, reasons, unknown, stats, exchanges, stale, history.stats.as_metadata())


def validate_prices(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Check a fetched frame before anything is written; return it with proper dtypes.

    Raises :class:`PriceValidationError` naming the first problem: missing columns, non-numeric
    values, a non-positive price, high below low, a duplicate (symbol, window), a window off the
    5-minute grid or outside the range.
    """
    frame = typed_frame(frame, PRICE_COLUMNS, NUMERIC_COLUMNS, PriceValidationError, "price")
    if frame.empty:
        return frame
    bad_quote = frame["quote"].notna() & ~frame["quote"].isin(["USD", "USDT", "USDC"])
    if bad_quote.any():
        raise PriceValidationError(f"quote {frame.loc[bad_quote, 'quote'].iloc[0]!r} is not USD, USDT or USDC")
    for column in ("symbol", "coin_id", "source"):
        if frame[column].isna().any():
            raise PriceValidationError(f"null {column} in the price frame")
    frame["window_start"] = pd.to_datetime(frame["window_start"])
    frame["collected_at"] = pd.to_datetime(frame["collected_at"])
    if frame["current_price"].isna().any():
        raise PriceValidationError(
            f"null current_price for {', '.join(sorted(frame.loc[frame['current_price'].isna(), 'symbol']))}"
        )
    for column in ("current_price", "open", "high", "low", "close"):
        bad = frame[column] <= 0
        if bad.any():
            row = frame.loc[bad].iloc[0]
            raise PriceValidationError(
                f"non-positive {column} {row[column]} for {row['symbol']} at {row['window_start']}"
            )
    for column in ("market_cap", "volume", "volume_24h", "high_24h", "low_24h"):
        bad = frame[column] < 0
        if bad.any():
            row = frame.loc[bad].iloc[0]
            raise PriceValidationError(f"negative {column} {row[column]} for {row['symbol']} at {row['window_start']}")
    inverted = frame["high"] < frame["low"]
    if inverted.any():
        row = frame.loc[inverted].iloc[0]
        raise PriceValidationError(f"high below low for {row['symbol']} at {row['window_start']}")
    check_window_keys(frame, start, end, PriceValidationError)
    return frame


class PriceSourceResource(ConfigurableResource):
    """The price source: ``simulated`` (offline) or ``live`` (exchange bars through ccxt + CoinGecko).

    The definitions fill the fields from the settings (:meth:`from_settings`); empty
    ``coingecko_base_url`` means the plan's host, ``coingecko_calls_per_minute`` 0 the plan's rate,
    empty ``universe_file`` the shipped universe.
    """

    mode: str = setting_default("source")
    coingecko_base_url: str = ""
    coingecko_api_key: str = ""
    coingecko_plan: str = setting_default("coingecko_plan")
    coingecko_calls_per_minute: int = setting_default("coingecko_calls_per_minute")
    exchanges: str = Field(
        default=",".join(setting_default("exchanges")), description="comma-separated ccxt ids, in order of preference"
    )
    exchange_urls: dict[str, str] = Field(default_factory=dict, description="exchange id -> base URL override")
    exchange_rate_limit_ms: int = Field(default=0, description="spacing of ccxt's rate limiter (0: ccxt's own)")
    snapshot_max_age_s: float = setting_default("snapshot_max_age_s")
    universe_file: str = ""
    partition_start: str = Field(
        default=setting_default("partition_start"), description="how far back CoinGecko's history is cached"
    )
    live_run_deadline_s: int = setting_default("live_run_deadline_s")
    timeout_s: float = 15.0
    max_attempts: int = 5
    backoff_base_s: float = 0.5
    max_retry_after_s: float = 180.0

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> PriceSourceResource:
        """The price source ``settings`` configure; ``overrides`` replace fields (a test's fake servers)."""
        values: dict[str, Any] = dict(
            mode=settings.source,
            coingecko_base_url=settings.coingecko_base_url or "",
            coingecko_api_key=resource_value(settings, "coingecko_api_key"),
            coingecko_plan=settings.coingecko_plan,
            coingecko_calls_per_minute=settings.coingecko_calls_per_minute,
            exchanges=",".join(settings.exchanges),
            exchange_urls=dict(settings.exchange_urls),
            snapshot_max_age_s=settings.snapshot_max_age_s,
            universe_file=str(settings.universe_file or ""),
            partition_start=settings.partition_start,
            live_run_deadline_s=settings.live_run_deadline_s,
        )
        return cls(**{**values, **overrides})

    def coins(self) -> tuple[Coin, ...]:
        """The universe this source collects (and the price checks expect)."""
        return load_universe(self.universe_file)

    def resolved_mode(self) -> str:
        """``simulated`` or ``live``."""
        return self.mode

    def fetch(
        self,
        start: datetime,
        end: datetime,
        now: datetime | None = None,
        warehouse: Warehouse | None = None,
        deadline: datetime | None = None,
    ) -> PriceFetch:
        """Rows for every window in [start, end); live mode caches CoinGecko's history in ``warehouse``;
        no retry waits past ``deadline`` (a live run's)."""
        mode = self.resolved_mode()
        coins = self.coins()
        if mode == "simulated":
            return fetch_prices(coins, start, end, mode="simulated")
        if warehouse is None:
            raise ValueError("live mode needs the warehouse (CoinGecko's history is cached there)")
        plan = self.coingecko_plan
        per_minute = self.coingecko_calls_per_minute or PLAN_CALLS_PER_MINUTE[plan]
        now = now or utc_now()
        venues = exchange_venues(
            tuple(e.strip().lower() for e in self.exchanges.split(",") if e.strip()),
            self.exchange_urls,
            timeout_s=self.timeout_s,
            max_attempts=self.max_attempts,
            backoff_base_s=self.backoff_base_s,
            max_retry_after_s=self.max_retry_after_s,
            rate_limit_ms=self.exchange_rate_limit_ms,
            deadline=deadline,
        )
        with (
            coingecko_http(
                plan,
                self.coingecko_api_key or None,
                self.coingecko_base_url,
                timeout_s=self.timeout_s,
                max_attempts=self.max_attempts,
                backoff_base_s=self.backoff_base_s,
                max_retry_after_s=self.max_retry_after_s,
                min_interval_s=60.0 / per_minute,
                deadline=deadline,
            ) as cg_http,
            ExchangeRouter(venues) as router,
        ):
            coingecko = CoinGeckoClient(cg_http)
            history = MarketHistory(
                warehouse, coingecko, now=now, horizon_from=parse_partition_start(self.partition_start, now)
            )
            max_age = self.snapshot_max_age_s
            return fetch_prices(
                coins,
                start,
                end,
                mode="live",
                router=router,
                coingecko=coingecko,
                history=history,
                now=now,
                snapshot_max_age=timedelta(seconds=max_age),
            )
