"""Fake perpetual-swap exchanges on loopback that speak each exchange's documented derivatives formats.

Every number comes from :func:`resources.sources.simulated.simulated_derivatives_frame` of the whole
universe, so what a client assembles through ccxt can be compared with the simulated frame of the
same windows: the mark
and index bars of a window, the funding settlements (a settlement at time T is the ``funding_time``
of the windows from T on), open interest observed at each window's end, and the predicted rate
as observed at the end of the window holding ``now``.

- :class:`FakeBinanceUsdm`: Binance USD-M futures (``/fapi/v1/exchangeInfo``, ``markPriceKlines``,
  ``indexPriceKlines``, ``fundingRate``, ``premiumIndex``, ``time`` and
  ``/futures/data/openInterestHist``, which refuses a ``startTime`` older than its 30 days).
- :class:`FakeOkxSwap`: OKX (``public/instruments?instType=SWAP`` besides the spot ones of
  :class:`~testkit.fakes.price_servers.FakeOkx`, ``market/(history-)mark-price-candles``,
  ``market/(history-)index-candles``, ``public/funding-rate(-history)``,
  ``rubik/stat/contracts/open-interest-history`` with its latest 1,440 entries).
- :class:`FakeBybit`: Bybit v5 (``market/instruments-info?category=linear``, ``market/mark-price-kline``,
  ``market/index-price-kline``, ``market/funding/history``, ``market/tickers``, ``market/open-interest``).

Faults, besides the queue of :class:`~testkit.fakes.price_servers.FakeServer` (``429``, ``500``,
``timeout``, ``truncated``, ``html``): ``refuse = 451`` (Binance's geo-block answer, whole) or 403,
and ``delisted`` symbols still listed whose every series answers the venue's pair-level error
(Binance HTTP 400 -1121 "Invalid symbol.", OKX 51001, Bybit 10001 "params error: symbol invalid").
``now`` (naive UTC) is the fake's clock: no bar opens after it and no observation is later.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from resources.config.universe import load_universe
from resources.sources.simulated import has_simulated_perpetual, simulated_derivatives_frame
from testkit.fakes.price_servers import BAR_MS, DAY_MS, FakeExchangeServer, FakeOkx

HOUR_MS = 3_600_000
#: The simulated columns a fake serves, by name.
SERVED = (
    "mark_open",
    "mark_high",
    "mark_low",
    "mark_close",
    "index_open",
    "index_high",
    "index_low",
    "index_close",
    "funding_rate",
    "next_funding_rate",
    "open_interest",
    "open_interest_value",
    "funding_interval_h",
)


def perpetual_listing() -> dict[str, str]:
    """Every universe coin with a simulated perpetual, settled in USDT."""
    return {c.symbol: "USDT" for c in load_universe() if has_simulated_perpetual(c)}


@lru_cache(maxsize=64)
def _day(day_ms: int) -> dict[str, dict[str, np.ndarray]]:
    """The simulated derivatives of the whole universe for one UTC day (as the platform's simulated
    mode computes them), per symbol as arrays (times in ms)."""
    start = datetime.fromtimestamp(day_ms / 1000, UTC).replace(tzinfo=None)
    frame = simulated_derivatives_frame(load_universe(), start, start + timedelta(days=1))
    out: dict[str, dict[str, np.ndarray]] = {}
    for symbol, rows in frame.groupby("symbol", sort=False):
        arrays = {name: rows[name].to_numpy(dtype=float) for name in SERVED}
        for name in ("window_start", "funding_time", "next_funding_time"):
            arrays[name] = pd.to_datetime(rows[name]).to_numpy().astype("datetime64[ms]").astype("int64")
        out[str(symbol)] = arrays
    return out


def _ms(value: datetime) -> int:
    return int(value.replace(tzinfo=UTC).timestamp() * 1000)


def _num(value: float) -> str:
    return repr(float(value))


class FakeDerivativesServer(FakeExchangeServer):
    """What the derivatives fakes share: listed perpetuals (symbol -> settle) and the simulated series."""

    def __init__(self, listed: dict[str, str] | None = None, now: datetime | None = None) -> None:
        super().__init__(perpetual_listing() if listed is None else listed)
        self.now = now

    def now_ms(self) -> int:
        """The fake's clock, in ms."""
        return _ms(self.now or datetime.now(UTC).replace(tzinfo=None))

    def windows(self, symbol: str, first_ms: int, last_ms: int) -> dict[str, np.ndarray]:
        """The simulated rows of ``symbol`` whose window opens in [first_ms, last_ms] and not after now."""
        last_ms = min(last_ms, self.now_ms())
        if last_ms < first_ms:
            return {name: np.array([]) for name in (*SERVED, "window_start", "funding_time", "next_funding_time")}
        days = [_day(d)[symbol] for d in range(first_ms // DAY_MS * DAY_MS, last_ms + 1, DAY_MS)]
        joined = {name: np.concatenate([d[name] for d in days]) for name in days[0]}
        keep = (joined["window_start"] >= first_ms) & (joined["window_start"] <= last_ms)
        return {name: values[keep] for name, values in joined.items()}

    def swap_pairs(self) -> list[tuple[str, str]]:
        """Every listed perpetual (base, settle)."""
        return sorted(self.listed.items())

    def price_bars(self, symbol: str, first_ms: int, last_ms: int, side: str) -> list[tuple]:
        """``(open_ms, o, h, l, c)`` of the ``side`` (mark or index) bars opening in [first_ms, last_ms]."""
        rows = self.windows(symbol, -(-first_ms // BAR_MS) * BAR_MS, last_ms)
        parts = [rows[f"{side}_{p}"] for p in ("open", "high", "low", "close")]
        return [(int(t), *(float(p[i]) for p in parts)) for i, t in enumerate(rows["window_start"])]

    def settlements(self, symbol: str, first_ms: int, last_ms: int) -> list[tuple[int, float]]:
        """Funding settlements ``(time, rate)`` in [first_ms, last_ms], not after now."""
        rows = self.windows(symbol, first_ms // BAR_MS * BAR_MS, last_ms)
        seen = dict(zip(rows["funding_time"].tolist(), rows["funding_rate"].tolist()))
        return sorted((int(t), r) for t, r in seen.items() if first_ms <= t <= min(last_ms, self.now_ms()))

    def open_interest(self, symbol: str, first_ms: int, last_ms: int) -> list[tuple[int, float, float]]:
        """Open interest ``(time, contracts, notional)`` observed at the window ends in [first_ms, last_ms]."""
        last_ms = min(last_ms, self.now_ms())
        rows = self.windows(symbol, -(-first_ms // BAR_MS) * BAR_MS - BAR_MS, last_ms - BAR_MS)
        return [
            (int(t) + BAR_MS, float(oi), float(v))
            for t, oi, v in zip(rows["window_start"], rows["open_interest"], rows["open_interest_value"])
            if first_ms <= t + BAR_MS <= last_ms
        ]

    def latest(self, symbol: str) -> dict[str, float]:
        """The window ending at now (on the grid): its predicted rate, next settlement and open interest."""
        end = self.now_ms() // BAR_MS * BAR_MS
        rows = self.windows(symbol, end - BAR_MS, end - BAR_MS)
        return {name: float(values[0]) for name, values in rows.items()}

    def known(self, symbol_id: str, ids: dict[str, str]) -> str | None:
        """The coin of an exchange's contract id, unless unknown or delisted."""
        coin = ids.get(symbol_id)
        return None if coin is None or coin in self.delisted else coin


class FakeBinanceUsdm(FakeDerivativesServer):
    """Binance USD-M futures: ``/fapi/v1/*`` and ``/futures/data/openInterestHist`` (30 days)."""

    exchange_id = "binanceusdm"
    OPEN_INTEREST_DAYS = 30
    INVALID = {"code": -1121, "msg": "Invalid symbol."}

    def handle(self, path: str, query: dict[str, str], headers: dict[str, str]) -> tuple[int, Any]:
        ids = {base + settle: base for base, settle in self.swap_pairs()}
        if path == "/fapi/v1/exchangeInfo":
            return 200, self._exchange_info()
        if path == "/fapi/v1/time":
            return 200, {"serverTime": self.now_ms()}
        pair = query.get("symbol", query.get("pair", ""))
        coin = self.known(pair, ids)
        if path in ("/fapi/v1/markPriceKlines", "/fapi/v1/indexPriceKlines"):
            if coin is None or query.get("interval") != "5m":
                return 400, self.INVALID
            limit = min(int(query.get("limit", 500)), 1500)
            first = int(query.get("startTime", self.now_ms() - limit * BAR_MS))
            last = int(query.get("endTime", first + limit * BAR_MS - 1))
            side = "mark" if "mark" in path else "index"
            return 200, [
                [t, _num(o), _num(h), _num(low), _num(c), "0", t + BAR_MS - 1, "0", 300, "0", "0", "0"]
                for t, o, h, low, c in self.price_bars(coin, first, last, side)[:limit]
            ]
        if coin is None:
            return 400, self.INVALID
        if path == "/fapi/v1/fundingRate":
            limit = min(int(query.get("limit", 100)), 1000)
            last = int(query.get("endTime", self.now_ms()))
            first = int(query.get("startTime", last - limit * 8 * HOUR_MS))
            return 200, [
                {"symbol": pair, "fundingTime": t, "fundingRate": _num(r), "markPrice": ""}
                for t, r in self.settlements(coin, first, last)[:limit]
            ]
        if path == "/fapi/v1/premiumIndex":
            now = self.latest(coin)
            return 200, {
                "symbol": pair,
                "markPrice": _num(now["mark_close"]),
                "indexPrice": _num(now["index_close"]),
                "estimatedSettlePrice": _num(now["index_close"]),
                "lastFundingRate": _num(now["next_funding_rate"]),
                "interestRate": "0.00010000",
                "nextFundingTime": int(now["next_funding_time"]),
                "time": self.now_ms(),
            }
        if path == "/futures/data/openInterestHist":
            if query.get("period") != "5m":
                return 400, {"code": -1130, "msg": "Data sent for parameter 'period' is not valid."}
            limit = min(int(query.get("limit", 30)), 500)
            last = int(query.get("endTime", self.now_ms()))
            first = int(query.get("startTime", last - (limit - 1) * BAR_MS))
            if first < self.now_ms() - self.OPEN_INTEREST_DAYS * DAY_MS:
                return 400, {"code": -1130, "msg": "Data sent for parameter 'startTime' is not valid."}
            return 200, [
                {
                    "symbol": pair,
                    "sumOpenInterest": _num(oi),
                    "sumOpenInterestValue": _num(value),
                    "CMCCirculatingSupply": "0",
                    "timestamp": t,
                }
                for t, oi, value in self.open_interest(coin, first, last)[:limit]
            ]
        return 404, {"code": -5000, "msg": "Path not found"}

    def _exchange_info(self) -> dict[str, Any]:
        symbols = [
            {
                "symbol": base + settle,
                "pair": base + settle,
                "contractType": "PERPETUAL",
                "deliveryDate": 4133404800000,
                "onboardDate": 1569398400000,
                "status": "TRADING",
                "maintMarginPercent": "2.5000",
                "requiredMarginPercent": "5.0000",
                "baseAsset": base,
                "quoteAsset": settle,
                "marginAsset": settle,
                "pricePrecision": 2,
                "quantityPrecision": 3,
                "baseAssetPrecision": 8,
                "quotePrecision": 8,
                "underlyingType": "COIN",
                "underlyingSubType": [],
                "triggerProtect": "0.0500",
                "liquidationFee": "0.012500",
                "marketTakeBound": "0.05",
                "maxMoveOrderLimit": 10000,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"},
                    {"filterType": "LOT_SIZE", "stepSize": "0.001", "maxQty": "1000", "minQty": "0.001"},
                    {"filterType": "MARKET_LOT_SIZE", "stepSize": "0.001", "maxQty": "120", "minQty": "0.001"},
                    {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                    {"filterType": "MIN_NOTIONAL", "notional": "5"},
                    {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500"},
                ],
                "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"],
                "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
                "permissionSets": ["GRID", "COPY"],
            }
            for base, settle in self.swap_pairs()
        ]
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "futuresType": "U_MARGINED",
            "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400}],
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": symbols,
        }


def _okx_error(code: str, msg: str) -> tuple[int, Any]:
    return 200, {"code": code, "msg": msg, "data": []}


class FakeOkxSwap(FakeOkx, FakeDerivativesServer):
    """OKX spot (:class:`~testkit.fakes.price_servers.FakeOkx`) and perpetual swaps (``ctVal`` 0.01 for
    BTC, 1 otherwise: open interest ``oi`` is in contracts, ``oiCcy`` in the coin)."""

    exchange_id = "okx"
    OPEN_INTEREST_ENTRIES = 1440
    SWAP_PATHS = (
        "/api/v5/market/mark-price-candles",
        "/api/v5/market/history-mark-price-candles",
        "/api/v5/market/index-candles",
        "/api/v5/market/history-index-candles",
        "/api/v5/public/funding-rate",
        "/api/v5/public/funding-rate-history",
        "/api/v5/rubik/stat/contracts/open-interest-history",
    )

    def __init__(
        self,
        listed: dict[str, str] | None = None,
        now: datetime | None = None,
        spot: dict[str, str] | None = None,
    ) -> None:
        FakeDerivativesServer.__init__(self, spot or {}, now)
        self.swaps = perpetual_listing() if listed is None else dict(listed)

    def swap_pairs(self) -> list[tuple[str, str]]:
        """Every listed perpetual (base, settle); ``listed`` holds the spot pairs."""
        return sorted(self.swaps.items())

    @staticmethod
    def ct_val(base: str) -> float:
        """The contract's size in the coin."""
        return 0.01 if base == "BTC" else 1.0

    def handle(self, path: str, query: dict[str, str], headers: dict[str, str]) -> tuple[int, Any]:
        if path == "/api/v5/public/instruments" and query.get("instType") == "SWAP":
            return 200, {"code": "0", "msg": "", "data": [self._swap(b, s) for b, s in self.swap_pairs()]}
        if path not in self.SWAP_PATHS:
            return super().handle(path, query, headers)
        index = "index-candles" in path
        ids = {f"{b}-{s}" + ("" if index else "-SWAP"): b for b, s in self.swap_pairs()}
        inst = query.get("instId", "")
        coin = self.known(inst, ids)
        if coin is None:
            return _okx_error("51001", "Instrument ID doesn't exist.")
        now_ms = self.now_ms()
        if "candles" in path:
            if query.get("bar") != "5m":
                return _okx_error("51000", "Parameter bar error")
            limit = min(int(query.get("limit", 100)), 100)
            after = int(query.get("after", now_ms + 1))
            before = int(query.get("before", after - limit * BAR_MS - 1))
            bars = self.price_bars(coin, before + 1, after - 1, "index" if index else "mark")[::-1][:limit]
            confirm = lambda t: "0" if t + BAR_MS > now_ms else "1"  # noqa: E731
            data = [[str(t), _num(o), _num(h), _num(low), _num(c), confirm(t)] for t, o, h, low, c in bars]
            return 200, {"code": "0", "msg": "", "data": data}
        if path == "/api/v5/public/funding-rate-history":
            limit = min(int(query.get("limit", 100)), 100)
            after = int(query.get("after", now_ms + 1))
            before = int(query.get("before", after - limit * 8 * HOUR_MS))
            settled = self.settlements(coin, max(before + 1, now_ms - 90 * DAY_MS), after - 1)[::-1][:limit]
            history = [
                {
                    "instType": "SWAP",
                    "instId": inst,
                    "formulaType": "noRate",
                    "fundingRate": _num(r),
                    "realizedRate": _num(r),
                    "fundingTime": str(t),
                    "method": "current_period",
                }
                for t, r in settled
            ]
            return 200, {"code": "0", "msg": "", "data": history}
        if path == "/api/v5/public/funding-rate":
            now = self.latest(coin)
            interval = int(now["funding_interval_h"] * HOUR_MS)
            return 200, {
                "code": "0",
                "msg": "",
                "data": [
                    {
                        "instType": "SWAP",
                        "instId": inst,
                        "fundingRate": _num(now["next_funding_rate"]),
                        "fundingTime": str(int(now["next_funding_time"])),
                        "nextFundingRate": "",
                        "nextFundingTime": str(int(now["next_funding_time"]) + interval),
                        "method": "current_period",
                        "maxFundingRate": "0.0075",
                        "minFundingRate": "-0.0075",
                        "settState": "settled",
                        "ts": str(now_ms),
                    }
                ],
            }
        size = self.ct_val(coin)
        if query.get("period") != "5m":
            return _okx_error("51000", "Parameter period error")
        limit = min(int(query.get("limit", 100)), 100)
        end = int(query.get("end", now_ms + 1))
        begin = max(int(query.get("begin", end - limit * BAR_MS - 1)), now_ms - self.OPEN_INTEREST_ENTRIES * BAR_MS)
        observed = self.open_interest(coin, begin + 1, end - 1)[::-1][:limit]
        entries = [[str(t), _num(oi / size), _num(oi), _num(value)] for t, oi, value in observed]
        return 200, {"code": "0", "msg": "", "data": entries}

    def _swap(self, base: str, settle: str) -> dict[str, Any]:
        return {
            **self._instrument(base, settle),
            "instType": "SWAP",
            "instId": f"{base}-{settle}-SWAP",
            "uly": f"{base}-{settle}",
            "instFamily": f"{base}-{settle}",
            "baseCcy": "",
            "quoteCcy": "",
            "settleCcy": settle,
            "ctVal": _num(self.ct_val(base)),
            "ctMult": "1",
            "ctValCcy": base,
            "ctType": "linear",
            "lotSz": "1",
            "minSz": "1",
            "lever": "50",
        }


class FakeBybit(FakeDerivativesServer):
    """Bybit v5 linear perpetuals (lists newest first; an unknown symbol: retCode 10001)."""

    exchange_id = "bybit"

    @staticmethod
    def answer(result: dict[str, Any], code: int = 0, msg: str = "OK") -> tuple[int, Any]:
        """Bybit's envelope."""
        return 200, {
            "retCode": code,
            "retMsg": msg,
            "result": result,
            "retExtInfo": {},
            "time": int(time.time() * 1000),
        }

    def handle(self, path: str, query: dict[str, str], headers: dict[str, str]) -> tuple[int, Any]:
        if path == "/v5/market/time":
            return self.answer({"timeSecond": str(self.now_ms() // 1000), "timeNano": str(self.now_ms() * 10**6)})
        if path == "/v5/market/instruments-info":
            listed = (
                [] if query.get("status") == "PreLaunch" or query.get("category") != "linear" else self.swap_pairs()
            )
            return self.answer(
                {"category": "linear", "list": [self._instrument(b, s) for b, s in listed], "nextPageCursor": ""}
            )
        ids = {base + settle: base for base, settle in self.swap_pairs()}
        symbol = query.get("symbol", "")
        coin = self.known(symbol, ids)
        if coin is None:
            return self.answer({}, 10001, "params error: symbol invalid")
        now_ms = self.now_ms()
        if path in ("/v5/market/mark-price-kline", "/v5/market/index-price-kline"):
            limit = min(int(query.get("limit", 200)), 1000)
            first = int(query.get("start", now_ms - limit * BAR_MS))
            last = int(query.get("end", first + limit * BAR_MS - 1))
            bars = self.price_bars(coin, first, last, "mark" if path.endswith("mark-price-kline") else "index")[:limit][
                ::-1
            ]
            rows = [[str(t), _num(o), _num(h), _num(low), _num(c)] for t, o, h, low, c in bars]
            return self.answer({"symbol": symbol, "category": "linear", "list": rows})
        if path == "/v5/market/funding/history":
            limit = min(int(query.get("limit", 200)), 200)
            last = int(query.get("endTime", now_ms))
            first = int(query.get("startTime", last - limit * HOUR_MS))
            settled = self.settlements(coin, first, last)[::-1][:limit]
            history = [{"symbol": symbol, "fundingRate": _num(r), "fundingRateTimestamp": str(t)} for t, r in settled]
            return self.answer({"category": "linear", "list": history})
        if path == "/v5/market/tickers":
            now = self.latest(coin)
            ticker = {
                "symbol": symbol,
                "lastPrice": _num(now["mark_close"]),
                "indexPrice": _num(now["index_close"]),
                "markPrice": _num(now["mark_close"]),
                "fundingRate": _num(now["next_funding_rate"]),
                "nextFundingTime": str(int(now["next_funding_time"])),
                "fundingIntervalHour": str(int(now["funding_interval_h"])),
                "openInterest": _num(now["open_interest"]),
                "openInterestValue": _num(now["open_interest_value"]),
            }
            return self.answer({"category": "linear", "list": [ticker]})
        if path == "/v5/market/open-interest":
            if query.get("intervalTime") != "5min":
                return self.answer({}, 10001, "params error: intervalTime invalid")
            limit = min(int(query.get("limit", 50)), 200)
            last = int(query.get("endTime", now_ms))
            first = int(query.get("startTime", last - limit * BAR_MS))
            observed = self.open_interest(coin, first, last)[::-1][:limit]
            points = [{"openInterest": _num(oi), "timestamp": str(t)} for t, oi, _ in observed]
            return self.answer({"symbol": symbol, "category": "linear", "list": points, "nextPageCursor": ""})
        return 404, {"retCode": 10404, "retMsg": "path not found"}

    def _instrument(self, base: str, settle: str) -> dict[str, Any]:
        interval_h = float(self.latest(base)["funding_interval_h"]) if self.now else 8.0
        return {
            "symbol": base + settle,
            "contractType": "LinearPerpetual",
            "status": "Trading",
            "baseCoin": base,
            "quoteCoin": settle,
            "launchTime": "1585526400000",
            "deliveryTime": "0",
            "deliveryFeeRate": "",
            "priceScale": "2",
            "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
            "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": "0.10"},
            "lotSizeFilter": {
                "maxOrderQty": "1190.000",
                "minOrderQty": "0.001",
                "qtyStep": "0.001",
                "postOnlyMaxOrderQty": "1190.000",
                "maxMktOrderQty": "500.000",
                "minNotionalValue": "5",
            },
            "unifiedMarginTrade": True,
            "fundingInterval": int(interval_h * 60),
            "settleCoin": settle,
            "copyTrading": "both",
            "upperFundingRate": "0.0075",
            "lowerFundingRate": "-0.0075",
        }
