"""Where ``derivatives_data`` rows come from: the simulated market, or perpetual swaps through ccxt.

``DerivativesSourceResource`` is the Dagster resource; :func:`validate_derivatives` checks a fetched
frame before anything is written. Live mode asks ``CRYPTO_DERIVATIVES_EXCHANGES`` in order
(:mod:`resources.sources.derivatives`); offline the simulated market's perpetuals
(:func:`resources.sources.simulated.simulated_derivatives_frame`) fill the same columns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from dagster import ConfigurableResource
from pydantic import Field

from resources.config.settings import Settings, setting_default
from resources.config.universe import Coin, load_universe
from resources.sources.derivatives import DerivativesFetch, fetch_live_derivatives
from resources.sources.exchange import exchange_venues
from resources.sources.frame_checks import check_window_keys, typed_frame
from resources.sources.simulated import SOURCE, has_simulated_perpetual, simulated_derivatives_frame
from resources.storage.schema import DOUBLE, TIMESTAMP, derivatives_data
from resources.storage.warehouse import utc_now

#: The columns of a ``derivatives_data`` row, in the table's order; those that are numbers; those that are times.
DERIVATIVES_COLUMNS = tuple(column.name for column in derivatives_data.columns)
NUMERIC_COLUMNS = tuple(column.name for column in derivatives_data.columns if column.type is DOUBLE)
TIME_COLUMNS = tuple(column.name for column in derivatives_data.columns if column.type is TIMESTAMP)
SETTLE_CURRENCIES = ("USDT", "USDC", "USD")


class DerivativesValidationError(ValueError):
    """What a derivatives source returned cannot be written: the message names the problem."""


def validate_derivatives(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Check a fetched frame before anything is written; return it with proper dtypes.

    Raises :class:`DerivativesValidationError` naming the first problem: missing columns,
    non-numeric values, a non-positive mark or index price, high below low, negative open
    interest, a non-positive funding interval, an unknown settle currency, a funding settlement
    at or after the window's end, a duplicate (symbol, window), a window off the 5-minute grid or
    outside the range.
    """
    frame = typed_frame(frame, DERIVATIVES_COLUMNS, NUMERIC_COLUMNS, DerivativesValidationError, "derivatives")
    if frame.empty:
        return frame
    for column in TIME_COLUMNS:
        frame[column] = pd.to_datetime(frame[column])
    for column in ("symbol", "exchange", "contract", "settle", "collected_at"):
        if frame[column].isna().any():
            raise DerivativesValidationError(f"null {column} in the derivatives frame")
    bad_settle = ~frame["settle"].isin(SETTLE_CURRENCIES)
    if bad_settle.any():
        raise DerivativesValidationError(
            f"settle currency {frame.loc[bad_settle, 'settle'].iloc[0]!r} is not one of {', '.join(SETTLE_CURRENCIES)}"
        )

    def refuse(mask: pd.Series, what: str) -> None:
        if mask.any():
            row = frame.loc[mask].iloc[0]
            raise DerivativesValidationError(f"{what} for {row['symbol']} at {row['window_start']}")

    for side in ("mark", "index"):
        for part in ("open", "high", "low", "close"):
            column = f"{side}_{part}"
            refuse(frame[column] <= 0, f"non-positive {column}")
        refuse(frame[f"{side}_high"] < frame[f"{side}_low"], f"{side}_high below {side}_low")
    for column in ("open_interest", "open_interest_value"):
        refuse(frame[column] < 0, f"negative {column}")
    refuse(frame["funding_interval_h"] <= 0, "non-positive funding_interval_h")
    window_end = frame["window_start"] + pd.Timedelta(minutes=5)
    refuse(frame["funding_time"] >= window_end, "a funding settlement at or after the window's end")
    refuse(frame["open_interest_at"] > window_end, "open interest observed after the window's end")
    check_window_keys(frame, start, end, DerivativesValidationError)
    return frame


class DerivativesSourceResource(ConfigurableResource):
    """The derivatives source: ``simulated`` (offline) or ``live`` (perpetual swaps through ccxt).

    The definitions fill the fields from the settings (:meth:`from_settings`); empty
    ``universe_file`` means the shipped universe, empty ``exchanges`` no derivatives at all.
    """

    mode: str = setting_default("source")
    exchanges: str = Field(
        default=",".join(setting_default("derivatives_exchanges")),
        description="comma-separated ccxt ids, in order of preference",
    )
    exchange_urls: dict[str, str] = Field(default_factory=dict, description="exchange id -> base URL override")
    exchange_rate_limit_ms: int = Field(default=0, description="spacing of ccxt's rate limiter (0: ccxt's own)")
    universe_file: str = ""
    live_run_deadline_s: int = setting_default("live_run_deadline_s")
    timeout_s: float = 15.0
    max_attempts: int = 5
    backoff_base_s: float = 0.5
    max_retry_after_s: float = 180.0

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> DerivativesSourceResource:
        """The derivatives source ``settings`` configure; ``overrides`` replace fields (a test's fake servers)."""
        values: dict[str, Any] = dict(
            mode=settings.source,
            exchanges=",".join(settings.derivatives_exchanges),
            exchange_urls=dict(settings.exchange_urls),
            universe_file=str(settings.universe_file or ""),
            live_run_deadline_s=settings.live_run_deadline_s,
        )
        return cls(**{**values, **overrides})

    def coins(self) -> tuple[Coin, ...]:
        """The universe this source collects."""
        return load_universe(self.universe_file)

    def exchange_ids(self) -> tuple[str, ...]:
        """The configured exchanges, in order of preference."""
        return tuple(e.strip().lower() for e in self.exchanges.split(",") if e.strip())

    def fetch(
        self, start: datetime, end: datetime, now: datetime | None = None, deadline: datetime | None = None
    ) -> DerivativesFetch:
        """Rows for every window in [start, end); no retry waits past ``deadline`` (a live run's)."""
        coins = self.coins()
        if self.mode == "simulated":
            return DerivativesFetch(
                simulated_derivatives_frame(coins, start, end).reindex(columns=list(DERIVATIVES_COLUMNS)),
                SOURCE,
                no_perpetual=[c.symbol for c in coins if not has_simulated_perpetual(c)],
            )
        if not self.exchange_ids():
            return DerivativesFetch(
                pd.DataFrame(columns=list(DERIVATIVES_COLUMNS)), "none", no_perpetual=[c.symbol for c in coins]
            )
        venues = exchange_venues(
            self.exchange_ids(),
            self.exchange_urls,
            timeout_s=self.timeout_s,
            max_attempts=self.max_attempts,
            backoff_base_s=self.backoff_base_s,
            max_retry_after_s=self.max_retry_after_s,
            rate_limit_ms=self.exchange_rate_limit_ms,
            deadline=deadline,
            market_type="swap",
        )
        try:
            return fetch_live_derivatives(coins, start, end, venues=venues, now=now or utc_now())
        finally:
            for venue in venues:
                venue.close()
