"""The window grid every table is committed on: 5-minute windows (daily ones for macro series).

The bottom of the storage layer (no SQLAlchemy, no Dagster): the feature catalog counts its
lookbacks in these windows, the table contract gives each table its window length, and the
checks and the gap sensor compare the windows expected with those committed through
:func:`absent_windows`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import pandas as pd

#: One 5-minute window: the partition of every 5-minute asset.
WINDOW = timedelta(minutes=5)
#: One day: the window of a daily table, and the batch of a backup or a retention pass.
DAY = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1)


def window_starts(start: datetime, end: datetime, step: timedelta = WINDOW) -> list[datetime]:
    """The window starts in [start, end) at ``step``."""
    out = []
    current = start
    while current < end:
        out.append(current)
        current += step
    return out


def window_floor(value: datetime, step: timedelta = WINDOW) -> datetime:
    """The start of the ``step`` window (aligned to the Unix epoch) that holds ``value``."""
    return _EPOCH + ((value - _EPOCH) // step) * step


def absent_windows(
    committed: Iterable[datetime | pd.Timestamp], start: datetime, end: datetime, window: timedelta = WINDOW
) -> list[datetime]:
    """The window starts of [start, end) (naive UTC) that are not among ``committed``, oldest first."""
    have = {_naive_utc(pd.Timestamp(w)) for w in committed}
    return [w for w in window_starts(start, end, window) if pd.Timestamp(w) not in have]


def _naive_utc(ts: pd.Timestamp) -> pd.Timestamp:
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts
