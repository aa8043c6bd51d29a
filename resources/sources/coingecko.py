"""CoinGecko: the live market snapshot (``/coins/markets``) and the market history
(``/coins/{id}/market_chart/range``).

The snapshot is "now" (cached 45-60 s by CoinGecko, each coin with its ``last_updated``), so it
only describes the window that is closing. The history (price, market cap and 24h volume points:
5-minute within the last day, hourly up to 90 days, daily beyond) gives older windows their
market fields (see ``resources/sources/market_history.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from resources.config.universe import Coin
from resources.sources.http import HttpSource, SourceError

PUBLIC_BASE_URL = "https://api.coingecko.com/api/v3"
PRO_BASE_URL = "https://pro-api.coingecko.com/api/v3"
MAX_IDS_PER_CALL = 250
#: The market fields of a ``price_data_real`` row that come from CoinGecko (snapshot or history).
MARKET_FIELDS = (
    "market_cap",
    "volume_24h",
    "price_change_24h",
    "price_change_pct_24h",
    "high_24h",
    "low_24h",
    "open_24h",
)
HISTORY_SERIES = {"prices": "price", "market_caps": "market_cap", "total_volumes": "total_volume"}
SNAPSHOT_COLUMNS = (
    "current_price",
    "market_cap",
    "volume_24h",
    "price_change_24h",
    "price_change_pct_24h",
    "high_24h",
    "low_24h",
)
# CoinGecko field -> our column
_FIELDS = {
    "current_price": "current_price",
    "market_cap": "market_cap",
    "total_volume": "volume_24h",
    "price_change_24h": "price_change_24h",
    "price_change_percentage_24h": "price_change_pct_24h",
    "high_24h": "high_24h",
    "low_24h": "low_24h",
}


def coingecko_host_and_headers(plan: str, api_key: str | None) -> tuple[str, dict[str, str]]:
    """The base URL and key header for a plan: demo/keyless on the public host, pro on its own."""
    if plan == "pro":
        if not api_key:
            raise SourceError("coingecko", "COINGECKO_PLAN=pro needs COINGECKO_API_KEY")
        return PRO_BASE_URL, {"x-cg-pro-api-key": api_key}
    return PUBLIC_BASE_URL, ({"x-cg-demo-api-key": api_key} if api_key else {})


def coingecko_http(plan: str, api_key: str | None, base_url: str | None = None, **options: Any) -> HttpSource:
    """CoinGecko's HTTP client for ``plan`` (its host unless ``base_url``, its key header);
    ``options`` go to :class:`HttpSource` (retry settings, rate limit, deadline)."""
    host, headers = coingecko_host_and_headers(plan, api_key)
    return HttpSource("coingecko", base_url or host, headers=headers, **options)


class CoinGeckoClient:
    """Reads market snapshots for a list of coin ids, 250 ids a call."""

    def __init__(self, http: HttpSource):
        self.http = http

    def markets(self, coin_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The raw ``/coins/markets`` elements for ``coin_ids`` (USD)."""
        elements: list[dict[str, Any]] = []
        for offset in range(0, len(coin_ids), MAX_IDS_PER_CALL):
            batch = coin_ids[offset : offset + MAX_IDS_PER_CALL]
            payload = self.http.get_json(
                "/coins/markets",
                params={
                    "vs_currency": "usd",
                    "ids": ",".join(batch),
                    "per_page": MAX_IDS_PER_CALL,
                    "page": 1,
                },
            )
            if not isinstance(payload, list):
                raise SourceError("coingecko", f"/coins/markets returned {type(payload).__name__}, expected a list")
            elements.extend(payload)
        return elements

    def market_chart_range(self, coin_id: str, start: datetime, end: datetime) -> Any:
        """The raw ``/coins/{id}/market_chart/range`` payload (USD) for [start, end] (naive UTC)."""
        return self.http.get_json(
            f"/coins/{coin_id}/market_chart/range",
            params={
                "vs_currency": "usd",
                "from": int(start.replace(tzinfo=UTC).timestamp()),
                "to": int(end.replace(tzinfo=UTC).timestamp()),
            },
        )


def parse_market_chart(payload: Any, coin_id: str) -> pd.DataFrame:
    """``market_chart/range`` as rows (coin_id, observed_at, price, market_cap, total_volume).

    Raises :class:`SourceError` for a payload that is not an object of the three series, a point
    that is not ``[ms, number-or-null]``, or a negative value.
    """
    if not isinstance(payload, dict) or any(not isinstance(payload.get(k), list) for k in HISTORY_SERIES):
        raise SourceError(
            "coingecko",
            f"{coin_id}: market_chart/range returned {str(payload)[:120]}, expected "
            "prices, market_caps and total_volumes",
        )
    series = {}
    for key, column in HISTORY_SERIES.items():
        points: dict[int, float | None] = {}
        for point in payload[key]:
            if (
                not isinstance(point, list)
                or len(point) != 2
                or isinstance(point[0], bool)
                or not isinstance(point[0], (int, float))
            ):
                raise SourceError("coingecko", f"{coin_id}: malformed {key} point {str(point)[:80]}")
            value = _number(point[1], key, coin_id)
            if value is not None and value < 0:
                raise SourceError("coingecko", f"{coin_id}: negative {key} value {value}")
            points[int(point[0])] = value
        series[column] = pd.Series(points, dtype="float64")
    frame = pd.DataFrame(series).sort_index()
    frame.index = pd.to_datetime(frame.index, unit="ms").astype("datetime64[us]")
    frame = frame.rename_axis("observed_at").reset_index()
    frame.insert(0, "coin_id", coin_id)
    return frame.reindex(columns=["coin_id", "observed_at", *HISTORY_SERIES.values()])


def _last_updated(value: Any, coin_id: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise SourceError("coingecko", f"{coin_id}: last_updated is {value!r}, expected an ISO 8601 time") from None
    if not isinstance(value, str) or pd.isna(stamp):
        raise SourceError("coingecko", f"{coin_id}: last_updated is {value!r}, expected an ISO 8601 time")
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp


def _number(value: Any, field: str, coin_id: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SourceError("coingecko", f"{coin_id}: field {field} is {value!r}, expected a number or null")
    value = float(value)
    if not math.isfinite(value):
        raise SourceError("coingecko", f"{coin_id}: field {field} is not finite ({value})")
    return value


def parse_markets(elements: Iterable[Any], coins: Sequence[Coin]) -> tuple[pd.DataFrame, list[str]]:
    """Turn ``/coins/markets`` elements into one row per known coin: (frame, unknown ids).

    Raises :class:`SourceError` for a malformed element (not an object, no ``id``, a non-numeric
    field, a negative price, a ``last_updated`` that is not an ISO time) or a coin listed twice. A coin whose ``current_price`` is null is
    left out (the caller reports it as missing). Ids outside the universe are returned, not kept.
    """
    by_id = {c.coin_id: c for c in coins}
    rows: list[dict[str, Any]] = []
    unknown: list[str] = []
    seen: set[str] = set()
    for element in elements:
        if not isinstance(element, dict) or not isinstance(element.get("id"), str):
            raise SourceError("coingecko", f"malformed /coins/markets element: {str(element)[:120]}")
        coin_id = element["id"]
        coin = by_id.get(coin_id)
        if coin is None:
            unknown.append(coin_id)
            continue
        if coin_id in seen:
            raise SourceError("coingecko", f"coin {coin_id} listed twice in one snapshot")
        seen.add(coin_id)
        missing = [f for f in ("current_price",) if f not in element]
        if missing:
            raise SourceError("coingecko", f"{coin_id}: missing field(s) {', '.join(missing)}")
        row: dict[str, Any] = {"symbol": coin.symbol, "coin_id": coin_id}
        for field, column in _FIELDS.items():
            row[column] = _number(element.get(field), field, coin_id)
        if row["current_price"] is None:
            continue
        for column in ("current_price", "market_cap", "volume_24h", "high_24h", "low_24h"):
            if row[column] is not None and row[column] < 0:
                raise SourceError("coingecko", f"{coin_id}: negative {column} ({row[column]})")
        if row["current_price"] == 0:
            raise SourceError("coingecko", f"{coin_id}: current_price is 0")
        change = row["price_change_24h"]
        row["open_24h"] = row["current_price"] - change if change is not None else None
        row["last_updated"] = _last_updated(element.get("last_updated"), coin_id)
        rows.append(row)
    columns = ["symbol", "coin_id", *SNAPSHOT_COLUMNS, "open_24h", "last_updated"]
    return pd.DataFrame(rows, columns=columns), unknown


def snapshot_frame(
    client: CoinGeckoClient, coins: Sequence[Coin], window_start: datetime, collected_at: datetime
) -> tuple[pd.DataFrame, list[str]]:
    """The snapshot as ``price_data_real`` market fields for one window: (frame, unknown ids)."""
    frame, unknown = parse_markets(client.markets([c.coin_id for c in coins]), coins)
    frame["last_updated"] = pd.to_datetime(frame["last_updated"])
    frame["window_start"] = pd.Timestamp(window_start)
    frame["collected_at"] = pd.Timestamp(collected_at)
    return frame, unknown
