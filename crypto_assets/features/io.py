"""Read what the features of a window range need from the warehouse (no Dagster import).

The features read their history from the tables, not through hundreds of upstream partitions:
``price_data_real`` from ``PRICE_LOOKBACK_WINDOWS - 1`` windows before the range, ``derivatives_data``
whole in the range and its lagged columns before it (the last ``DERIVATIVES_RECENT_WINDOWS - 1``
windows, and before those the hourly funding samples), ``sentiment_data`` from the start of the
longest sentiment horizon, and ``macro_indicators`` far enough back for the staleest catalogued series.
On MySQL/MariaDB the price and derivatives reads go through connectorx (Arrow, much faster than the
DB-API path) when it is installed; otherwise through SQLAlchemy.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
import sqlalchemy as sa

from crypto_assets.features.compute import (
    MACRO_INPUT_COLUMNS,
    PRICE_INPUT_COLUMNS,
    SENTIMENT_INPUT_COLUMNS,
    history_start,
    sentiment_start,
)
from crypto_assets.features.derivatives_features import (
    DERIVATIVES_HISTORY_COLUMNS,
    DERIVATIVES_INPUT_COLUMNS,
    derivatives_start,
    funding_sample_windows,
    recent_start,
)
from resources.storage.feature_specs import MACRO_AVAILABILITY_LAG, MACRO_LOOKBACK_DAYS, MACRO_SERIES
from resources.storage.schema import derivatives_data, macro_indicators, price_data_real, sentiment_data
from resources.storage.warehouse import Warehouse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureInputs:
    """The rows the features of [start, end) read, and how long reading them took."""

    prices: pd.DataFrame
    sentiment: pd.DataFrame
    macro: pd.DataFrame
    derivatives: pd.DataFrame
    seconds: float
    reader: str

    def row_counts(self) -> dict[str, int]:
        """Rows read per table (for run metadata)."""
        return {
            price_data_real.name: len(self.prices),
            derivatives_data.name: len(self.derivatives),
            sentiment_data.name: len(self.sentiment),
            macro_indicators.name: len(self.macro),
        }


def price_history_query(start: datetime, end: datetime) -> sa.Select:
    """``price_data_real`` rows the range [start, end) reads, in key order."""
    t = price_data_real
    return (
        sa.select(*(t.c[name] for name in PRICE_INPUT_COLUMNS))
        .where(t.c.window_start >= history_start(start), t.c.window_start < end)
        .order_by(t.c.symbol, t.c.window_start)
    )


def derivatives_query(start: datetime, end: datetime) -> sa.Select:
    """``derivatives_data`` rows of the range's own windows, whole, in key order."""
    t = derivatives_data
    return (
        sa.select(*(t.c[name] for name in DERIVATIVES_INPUT_COLUMNS))
        .where(t.c.window_start >= start, t.c.window_start < end)
        .order_by(t.c.symbol, t.c.window_start)
    )


def derivatives_history_query(start: datetime, end: datetime) -> sa.Select:
    """The lagged columns of the ``derivatives_data`` rows before the range: the last day's, and before
    it the windows of the hourly funding samples (every window for a range of an hour or more)."""
    t = derivatives_data
    stmt = sa.select(*(t.c[name] for name in DERIVATIVES_HISTORY_COLUMNS))
    samples = funding_sample_windows(start, end)
    if samples is None:
        stmt = stmt.where(t.c.window_start >= derivatives_start(start), t.c.window_start < start)
    else:
        recent = sa.and_(t.c.window_start >= recent_start(start), t.c.window_start < start)
        stmt = stmt.where(sa.or_(recent, t.c.window_start.in_(samples)))
    return stmt.order_by(t.c.symbol, t.c.window_start)


def sentiment_query(start: datetime, end: datetime, model: str | None = None) -> sa.Select:
    """``sentiment_data`` rows of items published in the windows the range's horizons cover."""
    t = sentiment_data
    stmt = sa.select(*(t.c[name] for name in SENTIMENT_INPUT_COLUMNS)).where(
        t.c.window_start >= sentiment_start(start), t.c.window_start < end
    )
    if model:
        stmt = stmt.where(t.c.model == model)
    return stmt.order_by(t.c.symbol, t.c.window_start, t.c.item_id, t.c.model)


def macro_query(start: datetime, end: datetime) -> sa.Select:
    """Catalogued ``macro_indicators`` observations that could be known during [start, end)."""
    t = macro_indicators
    published_by = (end - MACRO_AVAILABILITY_LAG).date()
    return (
        sa.select(*(t.c[name] for name in MACRO_INPUT_COLUMNS))
        .where(
            t.c.series_id.in_(list(MACRO_SERIES)),
            t.c.observation_date >= (start - timedelta(days=MACRO_LOOKBACK_DAYS)).date(),
            t.c.realtime_start <= published_by,
        )
        .order_by(t.c.series_id, t.c.observation_date)
    )


def _read_bulk(wh: Warehouse, query: sa.Select) -> tuple[pd.DataFrame, str]:
    """A large read through connectorx where it works, else through SQLAlchemy; and which one read it."""
    if wh.connectorx_url() is not None:
        try:
            return wh.read_connectorx(query), "connectorx"
        except Exception as exc:  # a driver or type mapping problem: the portable path still works
            log.warning("connectorx read failed (%s); reading through SQLAlchemy", exc)
    return wh.read_frame(query), "sqlalchemy"


def read_feature_inputs(
    wh: Warehouse, start: datetime, end: datetime, *, sentiment_model: str | None = None
) -> FeatureInputs:
    """Read the price, derivatives, sentiment and macro rows the features of [start, end) need."""
    began = time.perf_counter()
    prices, reader = _read_bulk(wh, price_history_query(start, end))
    history, _ = _read_bulk(wh, derivatives_history_query(start, end))
    own, _ = _read_bulk(wh, derivatives_query(start, end))
    derivatives = pd.concat([history, own], ignore_index=True) if len(history) else own
    sentiment = wh.read_frame(sentiment_query(start, end, sentiment_model))
    macro = wh.read_frame(macro_query(start, end))
    return FeatureInputs(prices, sentiment, macro, derivatives, time.perf_counter() - began, reader)
