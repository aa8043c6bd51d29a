"""An exchange's public 5-minute klines (Binance-compatible): OHLCV history for backfills.

``GET /api/v3/klines?symbol=BTCUSDT&interval=5m&startTime=ms&endTime=ms&limit=1000`` returns at
most 1000 bars a call, so ranges are paged by ``startTime``. An interval without trades has no
bar: a missing bar is normal, not an error. An unknown pair (HTTP 400, code -1121) means the
coin has no market there; it is reported as missing, not fatal.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Sequence

import pandas as pd

from resources.http import HttpSource, SourceError
from resources.universe import Coin

DEFAULT_BASE_URL = "https://api.binance.com"
MAX_BARS_PER_CALL = 1000
BAR_MS = 5 * 60 * 1000
BAR_COLUMNS = ("open", "high", "low", "close", "volume")


def _ms(value: datetime) -> int:
    return int(value.replace(tzinfo=timezone.utc).timestamp() * 1000)


def _price(value: Any, field: str, pair: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SourceError("exchange", f"{pair}: {field} is {value!r}, expected a numeric string") from None
    if not math.isfinite(number) or number < 0:
        raise SourceError("exchange", f"{pair}: {field} is {value!r}, expected a non-negative number")
    return number


def parse_klines(payload: Any, pair: str, start_ms: int, end_ms: int) -> list[tuple]:
    """Validate a klines payload; return (open_time_ms, open, high, low, close, volume) in range."""
    if not isinstance(payload, list):
        raise SourceError("exchange", f"{pair}: klines returned {type(payload).__name__}, expected a list")
    bars = []
    for bar in payload:
        if not isinstance(bar, list) or len(bar) < 6 or not isinstance(bar[0], int):
            raise SourceError("exchange", f"{pair}: malformed kline {str(bar)[:120]}")
        open_time = bar[0]
        if open_time % BAR_MS:
            raise SourceError("exchange", f"{pair}: kline open time {open_time} is not on a 5-minute boundary")
        if not start_ms <= open_time < end_ms:
            continue
        o, h, l, c, v = (_price(bar[i], name, pair) for i, name in enumerate(BAR_COLUMNS, start=1))
        if min(o, h, l, c) <= 0:
            raise SourceError("exchange", f"{pair}: non-positive price in kline at {open_time}")
        if h < max(o, c, l) or l > min(o, c):
            raise SourceError("exchange", f"{pair}: inconsistent kline at {open_time} (high {h}, low {l})")
        bars.append((open_time, o, h, l, c, v))
    return bars


class ExchangeClient:
    """Pages 5-minute klines for many pairs (a few pairs at a time, over one retrying client)."""

    def __init__(self, http: HttpSource, workers: int = 8):
        self.http = http
        self.workers = workers

    def klines(self, pair: str, start: datetime, end: datetime) -> list[tuple] | None:
        """Bars of ``pair`` with open time in [start, end); None when the exchange has no such pair."""
        start_ms, end_ms = _ms(start), _ms(end)
        bars: list[tuple] = []
        cursor = start_ms
        while cursor < end_ms:
            try:
                payload = self.http.get_json("/api/v3/klines", params={
                    "symbol": pair, "interval": "5m", "startTime": cursor,
                    "endTime": end_ms - 1, "limit": MAX_BARS_PER_CALL,
                })
            except SourceError as exc:
                if exc.status == 400 and "-1121" in str(exc):
                    return None
                raise
            page = parse_klines(payload, pair, cursor, end_ms)
            bars.extend(page)
            if len(payload) < MAX_BARS_PER_CALL or not page:
                break
            cursor = page[-1][0] + BAR_MS
        return bars

    def bars_frame(self, coins: Sequence[Coin], start: datetime, end: datetime) -> tuple[pd.DataFrame, list[str]]:
        """OHLCV rows (symbol, coin_id, window_start, open..volume) for ``coins``; and symbols without a pair."""
        with_pair = [c for c in coins if c.exchange_pair]
        no_pair = [c.symbol for c in coins if not c.exchange_pair]
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            results = list(pool.map(lambda c: self.klines(c.exchange_pair, start, end), with_pair))
        rows = []
        for coin, bars in zip(with_pair, results):
            if bars is None:
                no_pair.append(coin.symbol)
                continue
            rows.extend((coin.symbol, coin.coin_id, *bar) for bar in bars)
        frame = pd.DataFrame(rows, columns=["symbol", "coin_id", "open_time", *BAR_COLUMNS])
        frame["window_start"] = pd.to_datetime(frame["open_time"], unit="ms").astype("datetime64[us]")
        return frame.drop(columns="open_time"), no_pair
