"""The table contract: every table of the warehouse, and per data table the facts others derive from.

Plain SQLAlchemy Core, no Dagster: the bottom of the layers (the gateway, the assets, the checks,
backup, retention and the sensors all read it). Each data table has one :class:`TableContract`
(its key, time column, window length, ``partition_log`` asset, lookbacks and how the gateway
serves it), listed in :data:`CONTRACTS`; ``ml_features_materialized`` is declared here, eagerly,
with one DOUBLE column per feature of :mod:`resources.storage.feature_specs`.

Adding a table is a ``sa.Table`` and a :class:`TableContract` here (and its line in
:data:`CONTRACTS`): backup, retention, the table checks (keys; gaps of 5-minute tables), the
gateway's ``/v1/freshness`` and the gap sensor's lookbacks take it from there. Adding a feature is
one spec in ``feature_specs.py`` (and its computation): the column follows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from types import MappingProxyType

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from resources.storage.feature_specs import (
    DERIVATIVES_LOOKBACK_WINDOWS,
    FEATURE_NAMES,
    PRICE_LOOKBACK_WINDOWS,
    SENTIMENT_LOOKBACK_WINDOWS,
)
from resources.storage.windows import DAY, WINDOW

METADATA = sa.MetaData()
DOUBLE = sa.Float(precision=53).with_variant(mysql.DOUBLE(asdecimal=False), "mysql", "mariadb")
# MySQL DATETIME(6) keeps microseconds; window boundaries are whole minutes either way.
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")

price_data_real = sa.Table(
    "price_data_real",
    METADATA,
    sa.Column("symbol", sa.String(16), primary_key=True),
    sa.Column("window_start", TIMESTAMP, primary_key=True),
    sa.Column("coin_id", sa.String(64), nullable=False),
    sa.Column("current_price", DOUBLE),
    sa.Column("market_cap", DOUBLE),
    sa.Column("volume_24h", DOUBLE),
    sa.Column("price_change_24h", DOUBLE),
    sa.Column("price_change_pct_24h", DOUBLE),
    sa.Column("high_24h", DOUBLE),
    sa.Column("low_24h", DOUBLE),
    sa.Column("open_24h", DOUBLE),
    sa.Column("open", DOUBLE),
    sa.Column("high", DOUBLE),
    sa.Column("low", DOUBLE),
    sa.Column("close", DOUBLE),
    sa.Column("volume", DOUBLE),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("collected_at", TIMESTAMP, nullable=False),
    # Added by issue 14 (existing tables get them through ensure_schema's ADD COLUMN):
    # the currency of open..close and current_price (USD, USDT, USDC: a USDT bar is not USD),
    # and how old the market fields are at the window's end (seconds; negative when the live
    # snapshot was taken after the window closed).
    sa.Column("quote", sa.String(8)),
    sa.Column("market_data_age_s", DOUBLE),
    sa.Index("ix_price_data_real_window_start", "window_start"),
)

# Perpetual swaps (issue 24): per coin and 5-minute window, what the derivatives market knew at the
# window's end. Mark and index bars of the window; the funding rate in force (the latest settlement
# strictly before the window's end) and the predicted next one as the live run observed it, just
# after the window's end (live only: NULL in backfilled windows); open interest as of the window's end.
derivatives_data = sa.Table(
    "derivatives_data",
    METADATA,
    sa.Column("symbol", sa.String(16), primary_key=True),
    sa.Column("window_start", TIMESTAMP, primary_key=True),
    sa.Column("exchange", sa.String(32), nullable=False),  # ccxt id of the venue, or "simulated"
    sa.Column("contract", sa.String(64), nullable=False),  # ccxt unified symbol, e.g. BTC/USDT:USDT
    sa.Column("settle", sa.String(8), nullable=False),  # margin and settlement currency: USDT, USDC, USD
    sa.Column("mark_open", DOUBLE),
    sa.Column("mark_high", DOUBLE),
    sa.Column("mark_low", DOUBLE),
    sa.Column("mark_close", DOUBLE),
    sa.Column("index_open", DOUBLE),
    sa.Column("index_high", DOUBLE),
    sa.Column("index_low", DOUBLE),
    sa.Column("index_close", DOUBLE),
    sa.Column("premium", DOUBLE),  # mark_close / index_close - 1
    sa.Column("funding_rate", DOUBLE),  # per funding interval, as a fraction (0.0001 = 0.01 %)
    sa.Column("funding_time", TIMESTAMP),  # the settlement funding_rate comes from
    sa.Column("next_funding_rate", DOUBLE),
    sa.Column("next_funding_time", TIMESTAMP),
    sa.Column("funding_interval_h", DOUBLE),
    sa.Column("open_interest", DOUBLE),  # contracts, in the base currency
    sa.Column("open_interest_value", DOUBLE),  # notional, in the settle currency
    sa.Column("open_interest_at", TIMESTAMP),  # the observation open_interest comes from
    sa.Column("collected_at", TIMESTAMP, nullable=False),
    sa.Index("ix_derivatives_data_window_start", "window_start"),
)

# CoinGecko's market history (/coins/{id}/market_chart/range), cached so that a backfill asks
# for each coin's span once: the observations, and per coin the span already fetched.
coingecko_history = sa.Table(
    "coingecko_history",
    METADATA,
    sa.Column("coin_id", sa.String(64), primary_key=True),
    sa.Column("observed_at", TIMESTAMP, primary_key=True),
    sa.Column("price", DOUBLE),
    sa.Column("market_cap", DOUBLE),
    sa.Column("total_volume", DOUBLE),
)

coingecko_history_coverage = sa.Table(
    "coingecko_history_coverage",
    METADATA,
    sa.Column("coin_id", sa.String(64), primary_key=True),
    sa.Column("covered_from", TIMESTAMP, nullable=False),
    sa.Column("covered_to", TIMESTAMP, nullable=False),
    sa.Column("fetched_at", TIMESTAMP, nullable=False),
)

news_items = sa.Table(
    "news_items",
    METADATA,
    sa.Column("item_id", sa.String(64), primary_key=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("published_at", TIMESTAMP, nullable=False),
    sa.Column("collected_at", TIMESTAMP, nullable=False),
    sa.Column("window_start", TIMESTAMP, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("summary", LONG_TEXT),
    sa.Column("url", sa.String(1024)),
    sa.Column("symbols", sa.String(512), nullable=False, default=""),
    sa.Index("ix_news_items_window_start", "window_start"),
)

sentiment_data = sa.Table(
    "sentiment_data",
    METADATA,
    sa.Column("item_id", sa.String(64), primary_key=True),
    sa.Column("symbol", sa.String(16), primary_key=True),
    sa.Column("model", sa.String(191), primary_key=True),
    sa.Column("window_start", TIMESTAMP, nullable=False),
    sa.Column("sentiment_score", DOUBLE, nullable=False),
    sa.Column("confidence", DOUBLE, nullable=False),
    sa.Column("label", sa.String(16), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("analyzed_at", TIMESTAMP, nullable=False),
    sa.Index("ix_sentiment_data_window_symbol", "window_start", "symbol"),
)

macro_indicators = sa.Table(
    "macro_indicators",
    METADATA,
    sa.Column("series_id", sa.String(64), primary_key=True),
    sa.Column("observation_date", sa.Date, primary_key=True),
    sa.Column("value", DOUBLE),
    sa.Column("realtime_start", sa.Date, nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
)

partition_log = sa.Table(
    "partition_log",
    METADATA,
    sa.Column("asset", sa.String(64), primary_key=True),
    sa.Column("window_start", TIMESTAMP, primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("row_count", sa.Integer, nullable=False),
    sa.Column("code_version", sa.String(64), nullable=False),
    sa.Column("committed_at", TIMESTAMP, nullable=False),
    sa.Index("ix_partition_log_committed_at", "committed_at"),
)

ml_features_materialized = sa.Table(
    "ml_features_materialized",
    METADATA,
    sa.Column("symbol", sa.String(16), primary_key=True),
    sa.Column("timestamp", TIMESTAMP, primary_key=True),
    sa.Column("price", DOUBLE),
    *(sa.Column(name, DOUBLE) for name in FEATURE_NAMES),
    sa.Column("feature_set_version", sa.String(32), nullable=False),
    sa.Index("ix_ml_features_timestamp", "timestamp"),
)


@dataclass(frozen=True, eq=False)
class TableContract:
    """The facts of one data table that checks, backup, retention, the gateway and the sensors use.

    The table's name is also its asset's key and its ``partition_log`` asset name; its key is the
    table's primary key. Compared by identity: there is one contract a table.
    """

    table: sa.Table
    #: The column that places a row in its window (a DATE column for daily tables).
    time_column: str = "window_start"
    #: The length of one committed window.
    window: timedelta = WINDOW
    #: Tables this one's asset reads a trailing history of: {table name: windows read, its own included}.
    lookbacks: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    #: The gateway's name for the table (``/v1/<dataset>``).
    dataset: str = ""
    #: The gateway's row order (and cursor); the primary key when left empty.
    read_order: tuple[str, ...] = ()
    #: The column holding the ticker a row is about, None when rows are not per symbol.
    symbol_column: str | None = "symbol"
    #: Text columns that hold comma-separated lists (served as lists).
    list_columns: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The table's name: also its asset key and its ``partition_log`` asset."""
        return self.table.name

    @property
    def asset(self) -> str:
        """The ``partition_log`` asset that commits the table's windows."""
        return self.table.name

    @property
    def key(self) -> tuple[str, ...]:
        """The primary key's column names."""
        return tuple(c.name for c in self.table.primary_key.columns)

    @property
    def order(self) -> tuple[str, ...]:
        """The gateway's row order."""
        return self.read_order or self.key

    @property
    def daily(self) -> bool:
        """Whether the time column holds dates (windows of a day or more)."""
        return self.window >= DAY

    def time_bounds(self, start: datetime, end: datetime) -> tuple[datetime | date, datetime | date]:
        """[start, end) in the time column's terms: dates for a daily table, else the times themselves."""
        return (start.date(), end.date()) if self.daily else (start, end)

    def window_end(self, start: datetime) -> datetime:
        """The end of the window that starts at ``start``."""
        return start + self.window


PRICES = TableContract(price_data_real, dataset="prices")
DERIVATIVES = TableContract(derivatives_data, dataset="derivatives")
NEWS = TableContract(
    news_items, dataset="news", read_order=("window_start", "item_id"), symbol_column=None, list_columns=("symbols",)
)
SENTIMENT = TableContract(
    sentiment_data, dataset="sentiment", read_order=("symbol", "window_start", "item_id", "model")
)
FEATURES = TableContract(
    ml_features_materialized,
    time_column="timestamp",
    lookbacks=MappingProxyType(
        {
            price_data_real.name: PRICE_LOOKBACK_WINDOWS,
            derivatives_data.name: DERIVATIVES_LOOKBACK_WINDOWS,
            sentiment_data.name: SENTIMENT_LOOKBACK_WINDOWS,
        }
    ),
    dataset="features",
)
MACRO = TableContract(macro_indicators, time_column="observation_date", window=DAY, dataset="macro", symbol_column=None)

#: Every table committed through ``partition_log``, upstream first.
CONTRACTS: tuple[TableContract, ...] = (PRICES, DERIVATIVES, NEWS, SENTIMENT, FEATURES, MACRO)
CONTRACTS_BY_NAME: Mapping[str, TableContract] = MappingProxyType({c.name: c for c in CONTRACTS})


def contract_of(name: str) -> TableContract | None:
    """The contract of the table called ``name``, None for a table outside the window model (caches, logs)."""
    return CONTRACTS_BY_NAME.get(name)
