"""Perpetual swaps through ccxt: mark and index bars, funding and open interest per coin and window.

(Interface fixed for the live client; the implementation lands with the exchange fakes.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from resources.config.universe import Coin
from resources.retry_policy import SourceError
from resources.sources.exchange import Venue


@dataclass
class DerivativesFetch:
    """``derivatives_data`` rows for a range and what the run's metadata says about them.

    ``no_perpetual``: coins no configured exchange lists a perpetual for (counted, not an error);
    ``missing_reasons``: why a coin with a perpetual has no row (the exchange's own words);
    ``exchanges``: per exchange, calls per series and refusals.
    """

    frame: pd.DataFrame
    source: str
    no_perpetual: list[str] = field(default_factory=list)
    missing_reasons: dict[str, str] = field(default_factory=dict)
    exchanges: dict[str, Any] = field(default_factory=dict)


def fetch_live_derivatives(
    coins: Sequence[Coin], start: datetime, end: datetime, *, venues: Sequence[Venue], now: datetime
) -> DerivativesFetch:
    """Rows of ``derivatives_data`` for every window in [start, end) from the first exchange listing each coin's perpetual."""
    raise SourceError("derivatives", "the live derivatives client is not wired in yet")
