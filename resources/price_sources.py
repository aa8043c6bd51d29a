"""Where ``price_data_real`` rows come from: simulated, or live (exchange bars + CoinGecko snapshot).

``PriceSourceResource`` is the Dagster resource; :func:`fetch_prices` is the plain function it
calls. Live mode reads the exchange's 5-minute bars for every window of the range; when the range
ends at the current window (within ``live_lag``), the latest window also gets CoinGecko's market
snapshot (price, market cap, 24h fields), and coins with no exchange pair get their price from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from dagster import ConfigurableResource

from resources.coingecko import CoinGeckoClient, coingecko_host_and_headers, snapshot_frame
from resources.exchange import DEFAULT_BASE_URL as EXCHANGE_BASE_URL
from resources.exchange import ExchangeClient
from resources.http import HttpSource
from resources.settings import load_settings
from resources.simulated import simulated_price_frame
from resources.universe import Coin, load_universe
from resources.warehouse import WINDOW, utc_now

PRICE_COLUMNS = (
    "symbol", "coin_id", "window_start", "current_price", "market_cap", "volume_24h",
    "price_change_24h", "price_change_pct_24h", "high_24h", "low_24h", "open_24h",
    "open", "high", "low", "close", "volume", "source", "collected_at",
)
NUMERIC_COLUMNS = PRICE_COLUMNS[3:16]


class PriceValidationError(ValueError):
    """What a source returned cannot be written: the message names the problem."""


@dataclass
class PriceFetch:
    """The rows for a range, and what the metadata should say about how they were obtained."""

    frame: pd.DataFrame
    source: str
    missing_symbols: list[str] = field(default_factory=list)
    unknown_ids: list[str] = field(default_factory=list)
    http_stats: dict[str, Any] = field(default_factory=dict)


def fetch_prices(coins: Sequence[Coin], start: datetime, end: datetime, *, mode: str,
                 exchange: ExchangeClient | None = None, coingecko: CoinGeckoClient | None = None,
                 now: datetime | None = None, live_lag: timedelta = timedelta(minutes=15)) -> PriceFetch:
    """Rows of ``price_data_real`` for every window in [start, end) from the chosen source."""
    if mode == "simulated":
        return PriceFetch(simulated_price_frame(coins, start, end), "simulated")
    if exchange is None or coingecko is None:
        raise ValueError("live mode needs an exchange and a CoinGecko client")
    now = now or utc_now()
    collected_at = now
    bars, no_pair = exchange.bars_frame(coins, start, end)
    bars["collected_at"] = pd.Timestamp(collected_at)
    bars["current_price"] = bars["close"]
    frames = [bars]
    unknown: list[str] = []
    latest = end - WINDOW
    if end >= now - live_lag:
        snapshot, unknown = snapshot_frame(coingecko, coins, latest, collected_at)
        keyed = frames[0].set_index(["symbol", "window_start"])
        snap = snapshot.set_index(["symbol", "window_start"])
        both = keyed.index.intersection(snap.index)
        market_fields = ["market_cap", "volume_24h", "price_change_24h", "price_change_pct_24h",
                         "high_24h", "low_24h", "open_24h"]
        for column in market_fields:
            keyed[column] = np.nan
            keyed.loc[both, column] = snap.loc[both, column]
        only_snapshot = snap.loc[snap.index.difference(keyed.index)]
        frames = [keyed.reset_index(), only_snapshot.reset_index()]
    frame = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) \
        else pd.DataFrame(columns=list(PRICE_COLUMNS))
    frame = frame.reindex(columns=list(PRICE_COLUMNS))
    frame["source"] = "exchange+coingecko" if end >= now - live_lag else "exchange"
    present = set(frame["symbol"])
    missing = sorted({c.symbol for c in coins} - present)
    stats = {"exchange": {**exchange.http.stats.as_metadata(), "circuit": exchange.http.breaker.snapshot()},
             "coingecko": {**coingecko.http.stats.as_metadata(), "circuit": coingecko.http.breaker.snapshot()},
             "no_exchange_pair": sorted(no_pair)}
    return PriceFetch(frame, frame["source"].iloc[0] if len(frame) else "exchange", missing, unknown, stats)


def validate_prices(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Check a fetched frame before anything is written; return it with proper dtypes.

    Raises :class:`PriceValidationError` naming the first problem: missing columns, non-numeric
    values, a non-positive price, high below low, a duplicate (symbol, window), a window off the
    5-minute grid or outside the range.
    """
    missing = [c for c in PRICE_COLUMNS if c not in frame.columns]
    if missing:
        raise PriceValidationError(f"price frame lacks column(s): {', '.join(missing)}")
    frame = frame[list(PRICE_COLUMNS)].copy()
    if frame.empty:
        return frame
    for column in NUMERIC_COLUMNS:
        converted = pd.to_numeric(frame[column], errors="coerce")
        bad = converted.isna() & frame[column].notna()
        if bad.any():
            raise PriceValidationError(f"column {column} holds non-numeric values, e.g. {frame.loc[bad, column].iloc[0]!r}")
        frame[column] = converted.astype("float64")
    for column in ("symbol", "coin_id", "source"):
        if frame[column].isna().any():
            raise PriceValidationError(f"null {column} in the price frame")
    frame["window_start"] = pd.to_datetime(frame["window_start"])
    frame["collected_at"] = pd.to_datetime(frame["collected_at"])
    if frame["current_price"].isna().any():
        raise PriceValidationError(
            f"null current_price for {', '.join(sorted(frame.loc[frame['current_price'].isna(), 'symbol']))}")
    for column in ("current_price", "open", "high", "low", "close"):
        bad = frame[column] <= 0
        if bad.any():
            row = frame.loc[bad].iloc[0]
            raise PriceValidationError(f"non-positive {column} {row[column]} for {row['symbol']} at {row['window_start']}")
    for column in ("market_cap", "volume", "volume_24h", "high_24h", "low_24h"):
        bad = frame[column] < 0
        if bad.any():
            row = frame.loc[bad].iloc[0]
            raise PriceValidationError(f"negative {column} {row[column]} for {row['symbol']} at {row['window_start']}")
    inverted = frame["high"] < frame["low"]
    if inverted.any():
        row = frame.loc[inverted].iloc[0]
        raise PriceValidationError(f"high below low for {row['symbol']} at {row['window_start']}")
    duplicated = frame.duplicated(["symbol", "window_start"])
    if duplicated.any():
        row = frame.loc[duplicated].iloc[0]
        raise PriceValidationError(f"duplicate row for {row['symbol']} at {row['window_start']}")
    off_grid = (frame["window_start"] - frame["window_start"].dt.floor("5min")) != pd.Timedelta(0)
    outside = (frame["window_start"] < pd.Timestamp(start)) | (frame["window_start"] >= pd.Timestamp(end))
    if off_grid.any() or outside.any():
        row = frame.loc[off_grid | outside].iloc[0]
        raise PriceValidationError(f"window_start {row['window_start']} of {row['symbol']} is not a window of [{start}, {end})")
    return frame


class PriceSourceResource(ConfigurableResource):
    """The price source: ``simulated`` (offline) or ``live`` (exchange klines + CoinGecko snapshot).

    Empty fields fall back to the environment (``CRYPTO_SOURCE``, ``COINGECKO_API_KEY``,
    ``COINGECKO_PLAN``, ``CRYPTO_UNIVERSE_FILE``).
    """

    mode: str = ""
    coingecko_base_url: str = ""
    coingecko_api_key: str = ""
    coingecko_plan: str = ""
    exchange_base_url: str = EXCHANGE_BASE_URL
    universe_file: str = ""
    timeout_s: float = 15.0
    max_attempts: int = 5
    backoff_base_s: float = 0.5
    max_retry_after_s: float = 180.0
    exchange_workers: int = 8

    def coins(self) -> tuple[Coin, ...]:
        """The universe this source collects."""
        settings = load_settings()
        path = self.universe_file or (str(settings.universe_file) if settings.universe_file else "")
        return load_universe(Path(path) if path else None)

    def resolved_mode(self) -> str:
        """``simulated`` or ``live``."""
        return self.mode or load_settings().source

    def _http(self, name: str, base_url: str, headers: dict[str, str], deadline: datetime | None) -> HttpSource:
        return HttpSource(name, base_url, headers=headers, timeout_s=self.timeout_s,
                          max_attempts=self.max_attempts, backoff_base_s=self.backoff_base_s,
                          max_retry_after_s=self.max_retry_after_s, deadline=deadline)

    def fetch(self, start: datetime, end: datetime, now: datetime | None = None,
              deadline: datetime | None = None) -> PriceFetch:
        """Rows for every window in [start, end); no retry waits past ``deadline`` (a live run's)."""
        mode = self.resolved_mode()
        coins = self.coins()
        if mode == "simulated":
            return fetch_prices(coins, start, end, mode="simulated")
        settings = load_settings()
        host, headers = coingecko_host_and_headers(self.coingecko_plan or settings.coingecko_plan,
                                                   self.coingecko_api_key or settings.coingecko_api_key)
        cg_url = self.coingecko_base_url or settings.coingecko_base_url or host
        with self._http("coingecko", cg_url, headers, deadline) as cg_http, \
                self._http("exchange", self.exchange_base_url, {}, deadline) as ex_http:
            return fetch_prices(coins, start, end, mode="live",
                                exchange=ExchangeClient(ex_http, workers=self.exchange_workers),
                                coingecko=CoinGeckoClient(cg_http), now=now)
