"""Fake CoinGecko and exchange servers on loopback that speak the documented formats.

Each server answers from the simulated market (so numbers are realistic) and can be told to
misbehave: a queue of faults is consumed one per request (``429`` with Retry-After, ``500``,
``timeout``, ``truncated`` JSON, ``html`` CDN page), and payload mutators model bad data
(missing fields, negative or null prices, unknown ids).
"""

from __future__ import annotations

import json
import time
from collections import deque
from datetime import datetime, timedelta, timezone
from email.message import Message
from typing import Any, Callable

from resources.simulated import simulated_price_frame
from resources.universe import load_universe
from tests.fakes.loopback import LoopbackServer


class FakeServer(LoopbackServer):
    """A JSON API with queued faults; subclasses implement ``handle(path, query, headers) -> (status, payload)``."""

    def __init__(self) -> None:
        super().__init__()
        self.faults: deque[str] = deque()
        self.requests: list[dict[str, Any]] = []
        self.timeout_sleep_s = 2.0

    def respond(self, method: str, path: str, query: dict[str, str], headers: Message,
                body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Record the request and answer it, or the next queued fault."""
        seen = dict(headers)
        self.requests.append({"path": path, "query": query, "headers": seen})
        fault = self.faults.popleft() if self.faults else None
        return self._respond(fault, path, query, seen)

    def _respond(self, fault: str | None, path: str, query: dict[str, str],
                 headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        json_headers = {"Content-Type": "application/json"}
        if fault == "429":
            body = json.dumps({"status": {"error_code": 429, "error_message": "You've exceeded the Rate Limit."}})
            return 429, {**json_headers, "Retry-After": "0"}, body.encode()
        if fault == "429-long":
            return 429, {**json_headers, "Retry-After": "119"}, b'{"status": {"error_code": 429}}'
        if fault == "500":
            return 500, json_headers, b'{"error": "internal"}'
        if fault == "timeout":
            time.sleep(self.timeout_sleep_s)
        if fault == "html":
            return 503, {"Content-Type": "text/html"}, b"<html><body>error code: 1020</body></html>"
        status, body = self.handle(path, query, headers)
        raw = json.dumps(body).encode()
        if fault == "truncated":
            raw = raw[: max(1, len(raw) // 2)]
        return status, json_headers, raw

    def handle(self, path: str, query: dict[str, str], headers: dict[str, str]) -> tuple[int, Any]:
        raise NotImplementedError


class FakeCoinGecko(FakeServer):
    """``/coins/markets`` from the simulated market at the current time."""

    def __init__(self, now: datetime | None = None) -> None:
        super().__init__()
        self.coins = {c.coin_id: c for c in load_universe()}
        self.now = now
        self.mutate: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] = lambda elements: elements

    def handle(self, path: str, query: dict[str, str], headers: dict[str, str]) -> tuple[int, Any]:
        if path != "/coins/markets":
            return 404, {"error": "Not found"}
        ids = [i for i in query.get("ids", "").split(",") if i]
        known = [self.coins[i] for i in ids if i in self.coins]
        now = self.now or datetime.now(timezone.utc).replace(tzinfo=None)
        start = now.replace(second=0, microsecond=0, minute=now.minute - now.minute % 5)
        frame = simulated_price_frame(known, start - timedelta(minutes=5), start)
        elements = []
        for row in frame.itertuples(index=False):
            elements.append({
                "id": row.coin_id, "symbol": row.symbol.lower(), "name": row.coin_id.title(),
                "image": "https://example.invalid/x.png",
                "current_price": row.current_price, "market_cap": row.market_cap, "market_cap_rank": 1,
                "fully_diluted_valuation": None, "total_volume": row.volume_24h,
                "high_24h": row.high_24h, "low_24h": row.low_24h, "price_change_24h": row.price_change_24h,
                "price_change_percentage_24h": row.price_change_pct_24h,
                "market_cap_change_24h": None, "market_cap_change_percentage_24h": None,
                "circulating_supply": None, "total_supply": None, "max_supply": None,
                "ath": None, "ath_change_percentage": None, "ath_date": None, "atl": None,
                "atl_change_percentage": None, "atl_date": None, "roi": None,
                "last_updated": now.isoformat() + "Z",
            })
        return 200, self.mutate(elements)


class FakeExchange(FakeServer):
    """Binance-style ``/api/v3/klines`` from the simulated market; unknown pairs get HTTP 400 -1121."""

    def __init__(self) -> None:
        super().__init__()
        self.coins = {c.exchange_pair: c for c in load_universe() if c.exchange_pair}
        self.drop_bars: set[tuple[str, int]] = set()
        self.delisted: set[str] = set()
        self.mutate_bar: Callable[[str, list[Any]], list[Any]] = lambda pair, bar: bar

    def handle(self, path: str, query: dict[str, str], headers: dict[str, str]) -> tuple[int, Any]:
        if path != "/api/v3/klines":
            return 404, {"code": -1, "msg": "not found"}
        pair = query.get("symbol", "")
        coin = self.coins.get(pair)
        if coin is None or pair in self.delisted:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        start_ms = int(query["startTime"])
        end_ms = int(query.get("endTime", start_ms + 1000 * 300_000))
        limit = min(int(query.get("limit", 500)), 1000)
        first = (start_ms + 299_999) // 300_000 * 300_000
        last = min(end_ms, first + limit * 300_000 - 1)
        start = datetime.fromtimestamp(first / 1000, timezone.utc).replace(tzinfo=None)
        end = datetime.fromtimestamp((last // 300_000 * 300_000 + 300_000) / 1000, timezone.utc).replace(tzinfo=None)
        frame = simulated_price_frame([coin], start, end)
        bars = []
        for row in frame.itertuples(index=False):
            open_ms = int(row.window_start.timestamp() * 1000)
            if open_ms > last or (pair, open_ms) in self.drop_bars:
                continue
            bar = [open_ms, f"{row.open:.8f}", f"{row.high:.8f}", f"{row.low:.8f}", f"{row.close:.8f}",
                   f"{row.volume:.8f}", open_ms + 299_999, f"{row.volume * row.close:.8f}", 100,
                   "0", "0", "0"]
            bars.append(self.mutate_bar(pair, bar))
        return 200, bars[:limit]
