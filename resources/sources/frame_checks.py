"""What every fetched frame of (symbol, 5-minute window) rows must pass before any of it is written.

Shared by the price and the derivatives sources: the columns are there and the numbers are
numbers (:func:`typed_frame`), and each (symbol, window) is one window of the run's range, once
(:func:`check_window_keys`). Each source's own rules (positive prices, caps, point in time) stay
with it. ``error`` is the source's validation error, raised with a message naming the problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd


def typed_frame(
    frame: pd.DataFrame, columns: Sequence[str], numeric: Sequence[str], error: type[ValueError], what: str
) -> pd.DataFrame:
    """``frame``'s ``columns`` in that order, the ``numeric`` ones as float64 (an empty frame as it is).

    Raises ``error`` naming a missing column or a value that is not a number.
    """
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise error(f"{what} frame lacks column(s): {', '.join(missing)}")
    frame = frame[list(columns)].copy()
    if frame.empty:
        return frame
    for column in numeric:
        converted = pd.to_numeric(frame[column], errors="coerce")
        bad = converted.isna() & frame[column].notna()
        if bad.any():
            raise error(f"column {column} holds non-numeric values, e.g. {frame.loc[bad, column].iloc[0]!r}")
        frame[column] = converted.astype("float64")
    return frame


def check_window_keys(frame: pd.DataFrame, start: datetime, end: datetime, error: type[ValueError]) -> None:
    """Raise ``error`` for a duplicate (symbol, window_start), or a window_start off the 5-minute grid
    or outside [start, end)."""
    duplicated = frame.duplicated(["symbol", "window_start"])
    if duplicated.any():
        row = frame.loc[duplicated].iloc[0]
        raise error(f"duplicate row for {row['symbol']} at {row['window_start']}")
    off_grid = (frame["window_start"] - frame["window_start"].dt.floor("5min")) != pd.Timedelta(0)
    outside = (frame["window_start"] < pd.Timestamp(start)) | (frame["window_start"] >= pd.Timestamp(end))
    if off_grid.any() or outside.any():
        row = frame.loc[off_grid | outside].iloc[0]
        raise error(f"window_start {row['window_start']} of {row['symbol']} is not a window of [{start}, {end})")
