"""Fake CoinGecko and exchange servers on loopback that speak the documented formats.

Each server answers from the simulated market (so numbers are realistic) and can be told to
misbehave: a queue of faults is consumed one per request (``429`` with Retry-After, ``500``,
``timeout``, ``truncated`` JSON, ``html`` CDN page), and payload mutators model bad data
(missing fields, negative or null prices, unknown ids).

The exchanges are reached through ccxt, so they speak what ccxt's ``load_markets`` and
``fetch_ohlcv`` call and parse: Binance ``/api/v3/exchangeInfo`` and ``/api/v3/klines``, OKX
``/api/v5/public/instruments`` and ``/api/v5/market/candles`` (``history-candles`` for older
bars); Coinbase Exchange and Kraken are in :mod:`testkit.fakes.coinbase_kraken`. Each can refuse
every request (``refuse = 451``: Binance's geo-block answer, ``403``: a CDN's HTML block page),
answer one pair's bars with its documented "unknown pair" error while its markets still list it
(``delisted``), serve daily or hourly bars whatever interval is asked (``interval_override``), and,
with ``now`` set, serve no bar opening after ``now`` and the bar holding ``now`` still open.
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

import pandas as pd

from resources.config.universe import load_universe
from resources.sources.simulated import simulated_price_frame
from testkit.fakes.loopback import LoopbackServer


class FakeServer(LoopbackServer):
    """A JSON API with queued faults; subclasses implement ``handle(path, query, headers) -> (status, payload)``."""

    def __init__(self) -> None:
        super().__init__()
        self.faults: deque[str] = deque()
        self.requests: list[dict[str, Any]] = []
        self.timeout_sleep_s = 2.0

    def respond(
        self, method: str, path: str, query: dict[str, str], headers: Message, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Record the request and answer it, or the next queued fault."""
        seen = dict(headers)
        self.requests.append({"path": path, "query": query, "headers": seen})
        fault = self.faults.popleft() if self.faults else None
        return self._respond(fault, path, query, seen)

    def _respond(
        self, fault: str | None, path: str, query: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
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
    """``/coins/markets`` and ``/coins/{id}/market_chart/range`` from the simulated market.

    ``now`` (naive UTC, default the real clock) is the time of the snapshot; ``stale`` makes a
    coin's ``last_updated`` that much older than ``now``. The history has CoinGecko's automatic
    granularity: 5-minute points when ``from`` is within a day of now, hourly up to 90 days,
    daily beyond; the point of the window ``w`` is observed 37 s before ``w``'s end. With
    ``api_key`` set, a request without that key (``x-cg-demo-api-key`` or ``x-cg-pro-api-key``)
    gets CoinGecko's 401 (error 10002), and ``GET /key`` reports the key's limits and usage.
    """

    HISTORY_OFFSET = timedelta(seconds=37)

    def __init__(self, now: datetime | None = None) -> None:
        super().__init__()
        self.coins = {c.coin_id: c for c in load_universe()}
        self.now = now
        self.stale: dict[str, timedelta] = {}
        self.api_key: str | None = None
        self.mutate: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] = lambda elements: elements

    def _now(self) -> datetime:
        return self.now or datetime.now(UTC).replace(tzinfo=None)

    def handle(self, path: str, query: dict[str, str], headers: dict[str, str]) -> tuple[int, Any]:
        if self.api_key is not None:
            sent = {k.lower(): v for k, v in headers.items()}
            if self.api_key not in (sent.get("x-cg-demo-api-key"), sent.get("x-cg-pro-api-key")):
                return 401, {"status": {"error_code": 10002, "error_message": "API Key Missing or invalid"}}
            if path == "/key":
                used = len(self.requests)
                return 200, {
                    "plan": "Demo",
                    "rate_limit_request_per_minute": 30,
                    "monthly_call_credit": 10000,
                    "current_total_monthly_calls": used,
                    "current_remaining_monthly_calls": 10000 - used,
                }
        chart = re.fullmatch(r"/coins/([^/]+)/market_chart/range", path)
        if chart:
            return self._market_chart(chart.group(1), query)
        if path != "/coins/markets":
            return 404, {"error": "Not found"}
        ids = [i for i in query.get("ids", "").split(",") if i]
        known = [self.coins[i] for i in ids if i in self.coins]
        now = self._now()
        start = now.replace(second=0, microsecond=0, minute=now.minute - now.minute % 5)
        frame = simulated_price_frame(known, start - timedelta(minutes=5), start)
        elements = []
        for row in frame.itertuples(index=False):
            updated = now - self.stale.get(row.coin_id, timedelta(0))
            elements.append(
                {
                    "id": row.coin_id,
                    "symbol": row.symbol.lower(),
                    "name": row.coin_id.title(),
                    "image": "https://example.invalid/x.png",
                    "current_price": row.current_price,
                    "market_cap": row.market_cap,
                    "market_cap_rank": 1,
                    "fully_diluted_valuation": None,
                    "total_volume": row.volume_24h,
                    "high_24h": row.high_24h,
                    "low_24h": row.low_24h,
                    "price_change_24h": row.price_change_24h,
                    "price_change_percentage_24h": row.price_change_pct_24h,
                    "market_cap_change_24h": None,
                    "market_cap_change_percentage_24h": None,
                    "circulating_supply": None,
                    "total_supply": None,
                    "max_supply": None,
                    "ath": None,
                    "ath_change_percentage": None,
                    "ath_date": None,
                    "atl": None,
                    "atl_change_percentage": None,
                    "atl_date": None,
                    "roi": None,
                    "last_updated": updated.isoformat(timespec="milliseconds") + "Z",
                }
            )
        return 200, self.mutate(elements)

    def _market_chart(self, coin_id: str, query: dict[str, str]) -> tuple[int, Any]:
        coin = self.coins.get(coin_id)
        if coin is None:
            return 404, {"error": "coin not found"}
        if query.get("vs_currency") != "usd":
            return 400, {"error": "invalid vs_currency"}
        try:
            since = datetime.fromtimestamp(float(query["from"]), UTC).replace(tzinfo=None)
            until = datetime.fromtimestamp(float(query["to"]), UTC).replace(tzinfo=None)
        except (KeyError, ValueError):
            return 400, {"error": "from and to must be UNIX timestamps"}
        now = self._now()
        until = min(until, now)
        first = pd.Timestamp(since + self.HISTORY_OFFSET).floor("5min").to_pydatetime()
        frame = simulated_price_frame([coin], first, pd.Timestamp(until).ceil("5min").to_pydatetime())
        starts = pd.to_datetime(frame["window_start"])
        observed = starts + pd.Timedelta(minutes=5) - pd.Timedelta(self.HISTORY_OFFSET)
        keep = (observed >= pd.Timestamp(since)) & (observed <= pd.Timestamp(until))
        if since < now - timedelta(days=1):  # hourly points, daily beyond 90 days
            keep &= starts.dt.minute == 55
            if until - since > timedelta(days=90):
                keep &= starts.dt.hour == 23
        ms = (observed[keep].astype("datetime64[ms]").astype("int64")).tolist()
        prices = [list(p) for p in zip(ms, frame.loc[keep, "current_price"].tolist())]
        caps = [list(p) for p in zip(ms, frame.loc[keep, "market_cap"].tolist())]
        volumes = [list(p) for p in zip(ms, frame.loc[keep, "volume_24h"].tolist())]
        return 200, {"prices": prices, "market_caps": caps, "total_volumes": volumes}


BINANCE_GEO_BLOCK = {
    "code": 0,
    "msg": "Service unavailable from a restricted location according to 'b. Eligibility' "
    "in https://www.binance.com/en/terms. Please contact customer service if you "
    "believe you received this message in error.",
}
CDN_BLOCK_PAGE = (
    b'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN"><HTML><HEAD><TITLE>ERROR: The '
    b"request could not be satisfied</TITLE></HEAD><BODY><H1>403 ERROR</H1><H2>The request could not "
    b"be satisfied.</H2>Request blocked. Generated by cloudfront (CloudFront)</BODY></HTML>"
)
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
BAR_MS = 300_000


def default_listing() -> dict[str, str]:
    """Every universe coin with an exchange pair, quoted in USDT."""
    return {c.symbol: "USDT" for c in load_universe() if c.exchange_pair}


class FakeExchangeServer(FakeServer):
    """What the exchange fakes share: the listed coins (symbol -> quote), simulated bars, refusals.

    ``exchange_id`` is the ccxt id the fake stands for."""

    exchange_id = ""

    def __init__(self, listed: dict[str, str] | None = None) -> None:
        super().__init__()
        self.universe = {c.symbol: c for c in load_universe()}
        self.listed = dict(default_listing() if listed is None else listed)
        self.extra_pairs: set[tuple[str, str]] = set()  # (base, quote) listed besides ``listed``
        self.refuse: int | None = None
        self.interval_override: str | None = None
        self.now: datetime | None = None
        self.drop_bars: set[tuple[str, int]] = set()
        self.delisted: set[str] = set()  # listed in the markets, but their bars answer "unknown pair"
        self.mutate_bar: Callable[[str, list[Any]], list[Any]] = lambda pair, bar: bar

    def _respond(
        self, fault: str | None, path: str, query: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        if self.refuse == 451:
            return 451, {"Content-Type": "application/json"}, json.dumps(BINANCE_GEO_BLOCK).encode()
        if self.refuse is not None:
            return self.refuse, {"Content-Type": "text/html"}, CDN_BLOCK_PAGE
        return super()._respond(fault, path, query, headers)

    def pairs(self) -> list[tuple[str, str]]:
        """Every listed (base, quote)."""
        return sorted(set(self.listed.items()) | self.extra_pairs)

    def step_ms(self) -> int:
        """The length of the bars served."""
        return {"1d": DAY_MS, "1h": HOUR_MS}.get(self.interval_override or "", BAR_MS)

    def bars(self, symbol: str, first_ms: int, last_ms: int) -> list[tuple[int, int, Any]]:
        """``(open_ms, length_ms, row)`` of the simulated bars opening in [first_ms, last_ms], on the
        5-minute grid (or the daily or hourly one of ``interval_override``), none opening after ``now``."""
        step = self.step_ms()
        first = -(-first_ms // step) * step
        if self.now is not None:
            last_ms = min(last_ms, int(self.now.replace(tzinfo=UTC).timestamp() * 1000))
        if last_ms < first:
            return []
        start = datetime.fromtimestamp(first / 1000, UTC).replace(tzinfo=None)
        end = datetime.fromtimestamp((last_ms // BAR_MS * BAR_MS + BAR_MS) / 1000, UTC).replace(tzinfo=None)
        frame = simulated_price_frame([self.universe[symbol]], start, end)
        out = []
        for row in frame.itertuples(index=False):
            open_ms = int(row.window_start.replace(tzinfo=UTC).timestamp() * 1000)
            if open_ms % step or open_ms > last_ms or (symbol, open_ms) in self.drop_bars:
                continue
            out.append((open_ms, step, row))
        return out

    def is_open(self, open_ms: int, length_ms: int) -> bool:
        """Whether the bar is still open at ``now``."""
        now = self.now or datetime.now(UTC).replace(tzinfo=None)
        return open_ms + length_ms > int(now.replace(tzinfo=UTC).timestamp() * 1000)


class FakeBinance(FakeExchangeServer):
    """Binance spot: ``/api/v3/exchangeInfo`` and ``/api/v3/klines`` (unknown symbols: HTTP 400, -1121)."""

    exchange_id = "binance"

    def handle(self, path: str, query: dict[str, str], headers: dict[str, str]) -> tuple[int, Any]:
        if path == "/api/v3/exchangeInfo":
            return 200, self._exchange_info()
        if path != "/api/v3/klines":
            return 404, {"code": -1, "msg": "not found"}
        pairs = {base + quote: base for base, quote in self.pairs()}
        pair = query.get("symbol", "")
        if pair not in pairs or pairs[pair] in self.delisted or query.get("interval") not in ("5m", "1m", "1h", "1d"):
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        start_ms = int(query.get("startTime", 0))
        limit = min(int(query.get("limit", 500)), 1000)
        end_ms = int(query.get("endTime", start_ms + limit * self.step_ms() - 1))
        klines = []
        for open_ms, length, row in self.bars(pairs[pair], start_ms, end_ms)[:limit]:
            bar = [
                open_ms,
                f"{row.open:.8f}",
                f"{row.high:.8f}",
                f"{row.low:.8f}",
                f"{row.close:.8f}",
                f"{row.volume:.8f}",
                open_ms + length - 1,
                f"{row.volume * row.close:.8f}",
                100,
                "0",
                "0",
                "0",
            ]
            klines.append(self.mutate_bar(pair, bar))
        return 200, klines

    def _exchange_info(self) -> dict[str, Any]:
        symbols = []
        for base, quote in self.pairs():
            symbols.append(
                {
                    "symbol": base + quote,
                    "status": "TRADING",
                    "baseAsset": base,
                    "baseAssetPrecision": 8,
                    "quoteAsset": quote,
                    "quotePrecision": 8,
                    "quoteAssetPrecision": 8,
                    "baseCommissionPrecision": 8,
                    "quoteCommissionPrecision": 8,
                    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT"],
                    "icebergAllowed": True,
                    "ocoAllowed": True,
                    "quoteOrderQtyMarketAllowed": True,
                    "allowTrailingStop": True,
                    "cancelReplaceAllowed": True,
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": "0.00000001",
                            "maxPrice": "1000000.00000000",
                            "tickSize": "0.00000001",
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": "0.00001000",
                            "maxQty": "9000.00000000",
                            "stepSize": "0.00001000",
                        },
                        {
                            "filterType": "NOTIONAL",
                            "minNotional": "5.00000000",
                            "applyMinToMarket": True,
                            "maxNotional": "9000000.00000000",
                            "applyMaxToMarket": False,
                            "avgPriceMins": 5,
                        },
                    ],
                    "permissions": [],
                    "permissionSets": [["SPOT"]],
                    "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                    "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
                }
            )
        return {
            "timezone": "UTC",
            "serverTime": int(time.time() * 1000),
            "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}],
            "exchangeFilters": [],
            "symbols": symbols,
        }


class FakeOkx(FakeExchangeServer):
    """OKX: ``/api/v5/public/instruments`` and ``/api/v5/market/candles`` / ``history-candles``.

    Candles are newest first, ``[ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]`` as strings,
    strictly between ``before`` and ``after``; at most 300 (``candles``) or 100 (``history-candles``).
    An unknown instrument: ``{"code": "51001", "msg": "Instrument ID doesn't exist."}``.
    """

    exchange_id = "okx"

    def handle(self, path: str, query: dict[str, str], headers: dict[str, str]) -> tuple[int, Any]:
        if path == "/api/v5/public/instruments":
            if query.get("instType") != "SPOT":
                return 200, {"code": "0", "msg": "", "data": []}
            return 200, {"code": "0", "msg": "", "data": [self._instrument(b, q) for b, q in self.pairs()]}
        if path not in ("/api/v5/market/candles", "/api/v5/market/history-candles"):
            return 404, {"code": "50030", "msg": "Illegal API path", "data": []}
        inst = {f"{base}-{quote}": base for base, quote in self.pairs()}
        inst_id = query.get("instId", "")
        if inst_id not in inst or inst[inst_id] in self.delisted:
            return 200, {"code": "51001", "msg": "Instrument ID doesn't exist.", "data": []}
        cap = 300 if path.endswith("/candles") and "history" not in path else 100
        limit = min(int(query.get("limit", 100)), cap)
        now_ms = int((self.now or datetime.now(UTC).replace(tzinfo=None)).replace(tzinfo=UTC).timestamp() * 1000)
        after = int(query.get("after", now_ms + 1))
        before = int(query.get("before", after - limit * self.step_ms() - 1))
        bars = [b for b in self.bars(inst[inst_id], before + 1, after - 1)][::-1][:limit]
        data = []
        for open_ms, length, row in bars:
            candle = [
                str(open_ms),
                f"{row.open:.8f}",
                f"{row.high:.8f}",
                f"{row.low:.8f}",
                f"{row.close:.8f}",
                f"{row.volume:.8f}",
                f"{row.volume * row.close:.8f}",
                f"{row.volume * row.close:.8f}",
                "0" if self.is_open(open_ms, length) else "1",
            ]
            data.append(self.mutate_bar(inst_id, candle))
        return 200, {"code": "0", "msg": "", "data": data}

    @staticmethod
    def _instrument(base: str, quote: str) -> dict[str, Any]:
        return {
            "alias": "",
            "auctionEndTime": "",
            "baseCcy": base,
            "category": "1",
            "ctMult": "",
            "ctType": "",
            "ctVal": "",
            "ctValCcy": "",
            "expTime": "",
            "instFamily": "",
            "instId": f"{base}-{quote}",
            "instType": "SPOT",
            "lever": "10",
            "listTime": "1606468572000",
            "lotSz": "0.00000001",
            "maxIcebergSz": "9999999999",
            "maxLmtAmt": "1000000",
            "maxLmtSz": "9999999999",
            "maxMktAmt": "1000000",
            "maxMktSz": "1000000",
            "maxStopSz": "1000000",
            "maxTriggerSz": "9999999999",
            "maxTwapSz": "9999999999",
            "minSz": "0.00001",
            "optType": "",
            "quoteCcy": quote,
            "settleCcy": "",
            "state": "live",
            "stk": "",
            "tickSz": "0.0001",
            "uly": "",
            "ruleType": "normal",
        }
