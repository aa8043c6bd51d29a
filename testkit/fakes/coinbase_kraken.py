"""Fake Coinbase Exchange and Kraken servers on loopback, in their documented public formats.

Reached through ccxt (``coinbaseexchange``, ``kraken``) like the other exchange fakes of
:mod:`testkit.fakes.price_servers`, with the same listing, refusals, ``delisted`` pairs,
``interval_override`` and ``now``.

- Coinbase Exchange: ``/products`` and ``/products/{id}/candles?granularity=300&start=&end=`` ->
  ``[[time, low, high, open, close, volume], ...]`` newest first, times in seconds, at most 300
  a request (more: HTTP 400); an unknown product: HTTP 404 ``{"message": "NotFound"}``.
- Kraken: ``/0/public/AssetPairs``, ``/0/public/Assets`` and ``/0/public/OHLC?pair=&interval=5&since=``
  -> ``{"error": [], "result": {"XXBTZUSD": [[time, o, h, l, c, vwap, volume, count], ...], "last": t}}``
  oldest first, the entries after ``since`` among the latest 720 (the last one still open), its
  legacy asset names (``XXBT``, ``XETH``, ``ZUSD``; altname ``XBTUSD``); an unknown pair:
  ``{"error": ["EQuery:Unknown asset pair"]}``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from testkit.fakes.price_servers import BAR_MS, FakeExchangeServer

GRANULARITIES = (60, 300, 900, 3600, 21600, 86400)
#: Kraken's legacy names (X for crypto, Z for fiat) and its own codes (XBT, XDG) of some assets.
KRAKEN_ASSETS = {"BTC": "XXBT", "ETH": "XETH", "XRP": "XXRP", "LTC": "XLTC", "XLM": "XXLM", "DOGE": "XXDG"}
KRAKEN_ALTNAMES = {"BTC": "XBT", "DOGE": "XDG"}
KRAKEN_QUOTES = {"USD": "ZUSD"}


def _ms(value: datetime) -> int:
    return int(value.replace(tzinfo=UTC).timestamp() * 1000)


def _iso_ms(text: str) -> int:
    return _ms(datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None))


class FakeCoinbaseExchange(FakeExchangeServer):
    """Coinbase Exchange (``api.exchange.coinbase.com``): products, currencies and candles."""

    exchange_id = "coinbaseexchange"

    def handle(self, path: str, query: dict[str, str], headers: dict[str, str]) -> tuple[int, Any]:
        if path == "/products":
            return 200, [self._product(base, quote) for base, quote in self.pairs()]
        if path == "/currencies":
            return 200, [self._currency(code) for code in sorted({c for pair in self.pairs() for c in pair})]
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "products" or parts[2] != "candles":
            return 404, {"message": "NotFound"}
        products = {f"{base}-{quote}": base for base, quote in self.pairs()}
        base = products.get(parts[1])
        if base is None or base in self.delisted:
            return 404, {"message": "NotFound"}
        if query.get("granularity", "") not in {str(g) for g in GRANULARITIES}:
            return 400, {"message": "Unsupported granularity"}
        granularity_ms = int(query["granularity"]) * 1000
        now_ms = _ms(self.now or datetime.now(UTC).replace(tzinfo=None))
        end_ms = _iso_ms(query["end"]) if "end" in query else now_ms
        start_ms = _iso_ms(query["start"]) if "start" in query else end_ms - 299 * granularity_ms
        if (end_ms - start_ms) // granularity_ms + 1 > 300:
            return 400, {
                "message": "granularity too small for the requested time range. "
                "Count of aggregations requested exceeds 300"
            }
        candles = [
            [open_ms // 1000, row.low, row.high, row.open, row.close, row.volume]
            for open_ms, _, row in self.bars(base, start_ms, end_ms)
        ]
        return 200, [self.mutate_bar(parts[1], c) for c in reversed(candles)]

    @staticmethod
    def _product(base: str, quote: str) -> dict[str, Any]:
        return {
            "id": f"{base}-{quote}",
            "base_currency": base,
            "quote_currency": quote,
            "quote_increment": "0.01",
            "base_increment": "0.00000001",
            "display_name": f"{base}/{quote}",
            "min_market_funds": "1",
            "margin_enabled": False,
            "post_only": False,
            "limit_only": False,
            "cancel_only": False,
            "status": "online",
            "status_message": "",
            "trading_disabled": False,
            "fx_stablecoin": False,
            "max_slippage_percentage": "0.03000000",
            "auction_mode": False,
            "high_bid_limit_percentage": "",
        }

    @staticmethod
    def _currency(code: str) -> dict[str, Any]:
        return {
            "id": code,
            "name": code,
            "min_size": "0.00000001",
            "status": "online",
            "message": "",
            "max_precision": "0.00000001",
            "convertible_to": [],
            "details": {"type": "fiat" if code == "USD" else "crypto", "symbol": "", "sort_order": 1},
        }


class FakeKraken(FakeExchangeServer):
    """Kraken spot: asset pairs, assets and OHLC (only the latest 720 bars, as Kraken serves)."""

    exchange_id = "kraken"
    MAX_ENTRIES = 720

    @staticmethod
    def asset(code: str) -> str:
        """Kraken's name of the asset ``code`` (``BTC`` -> ``XXBT``, ``USD`` -> ``ZUSD``, ``SOL`` -> ``SOL``)."""
        return KRAKEN_ASSETS.get(code) or KRAKEN_QUOTES.get(code) or code

    def pair_id(self, base: str, quote: str) -> str:
        """The pair's key in Kraken's answers (``XXBTZUSD``, ``SOLUSD``, ``ETHUSDT``)."""
        legacy = base in KRAKEN_ASSETS and quote in KRAKEN_QUOTES
        return self.asset(base) + self.asset(quote) if legacy else KRAKEN_ALTNAMES.get(base, base) + quote

    def handle(self, path: str, query: dict[str, str], headers: dict[str, str]) -> tuple[int, Any]:
        if path == "/0/public/AssetPairs":
            return 200, {"error": [], "result": {self.pair_id(b, q): self._pair(b, q) for b, q in self.pairs()}}
        if path == "/0/public/Assets":
            codes = sorted({c for pair in self.pairs() for c in pair})
            return 200, {"error": [], "result": {self.asset(c): self._asset(c) for c in codes}}
        if path != "/0/public/OHLC":
            return 404, {"error": ["EGeneral:Unknown method"]}
        pairs = {self.pair_id(b, q): b for b, q in self.pairs()}
        pair = query.get("pair", "")
        if pair not in pairs or pairs[pair] in self.delisted:
            return 200, {"error": ["EQuery:Unknown asset pair"]}
        if query.get("interval") not in ("1", "5", "15", "30", "60", "240", "1440", "10080", "21600"):
            return 200, {"error": ["EGeneral:Invalid arguments"]}
        now_ms = _ms(self.now or datetime.now(UTC).replace(tzinfo=None))
        latest = self.bars(pairs[pair], now_ms - self.MAX_ENTRIES * self.step_ms(), now_ms)[-self.MAX_ENTRIES :]
        since_ms = int(query.get("since", "0")) * 1000
        entries = []
        for open_ms, _, row in latest:
            if open_ms <= since_ms:
                continue
            vwap = (row.high + row.low + row.close) / 3
            entry = [
                open_ms // 1000,
                f"{row.open:.8f}",
                f"{row.high:.8f}",
                f"{row.low:.8f}",
                f"{row.close:.8f}",
                f"{vwap:.8f}",
                f"{row.volume:.8f}",
                100,
            ]
            entries.append(self.mutate_bar(pair, entry))
        last = next((o for o, n, _ in reversed(latest) if not self.is_open(o, n)), now_ms - BAR_MS) // 1000
        return 200, {"error": [], "result": {pair: entries, "last": last}}

    def _pair(self, base: str, quote: str) -> dict[str, Any]:
        altname = KRAKEN_ALTNAMES.get(base, base) + quote
        return {
            "altname": altname,
            "wsname": f"{KRAKEN_ALTNAMES.get(base, base)}/{quote}",
            "aclass_base": "currency",
            "base": self.asset(base),
            "aclass_quote": "currency",
            "quote": self.asset(quote),
            "lot": "unit",
            "cost_decimals": 5,
            "pair_decimals": 2,
            "lot_decimals": 8,
            "lot_multiplier": 1,
            "leverage_buy": [],
            "leverage_sell": [],
            "fees": [[0, 0.4], [10000, 0.35]],
            "fees_maker": [[0, 0.25], [10000, 0.2]],
            "fee_volume_currency": "ZUSD",
            "margin_call": 80,
            "margin_stop": 40,
            "ordermin": "0.0001",
            "costmin": "0.5",
            "tick_size": "0.01",
            "status": "online",
        }

    def _asset(self, code: str) -> dict[str, Any]:
        return {
            "aclass": "currency",
            "altname": KRAKEN_ALTNAMES.get(code, code),
            "decimals": 8,
            "display_decimals": 5,
            "status": "enabled",
        }
