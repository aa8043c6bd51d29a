"""Perpetual swaps through ccxt: mark and index bars, funding and open interest per coin and window.

Each coin is served by the first exchange of ``CRYPTO_DERIVATIVES_EXCHANGES`` that lists a linear
perpetual for it (settled in USDT, then USDC, then USD: :meth:`Venue.swap_route`), through the
same :class:`~resources.sources.exchange.Venue` (retries, circuit breaker, call counts, error
classification) and :class:`~resources.sources.exchange.ExchangeRouter` as the bars. Per coin and
range, each series is fetched once, in pages of the venue's documented size
(:class:`~resources.sources.venues.SwapFacts`), never once per window:

- mark and index price bars: ``fetch_ohlcv(..., params={"price": "mark"|"index"})``;
- funding settlements: ``fetch_funding_rate_history`` (from two days before the range, for the
  settlement in force at its start and the interval between settlements);
- open interest: ``fetch_open_interest_history`` at 5 minutes, clipped to how far back the venue
  serves it (Binance: 30 days), an hour before the range on;
- for the live window only (the range ends within :data:`LIVE_WINDOW` of ``now``):
  ``fetch_funding_rate`` (the predicted next rate, as the live run observes it). The latest open
  interest comes from the 5-minute history like the rest: the exchanges stamp the
  ``fetch_open_interest`` snapshot with the time of the call, after the window's end.

Rows are assembled point in time (:func:`swap_rows`). An error about one pair (ccxt ``BadSymbol``,
a venue's pair-level code, bars that are not 5-minute bars) makes that coin fall to the next
exchange listing it, else it is missing with the exchange's words; a refusing exchange (451/403) is
skipped for the run and its coins fall to the next (when every exchange refuses, every coin is
missing and the run goes on: a refusal does not pass with a retry); a coin no exchange lists is
counted in ``no_perpetual``. A coin left without rows because an exchange listing it was unavailable fails
the run (it is re-run), as with the bars.
"""

from __future__ import annotations

import logging
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import pandas as pd

from resources.config.settings import Settings
from resources.config.universe import Coin
from resources.sources.exchange import (
    BAR_MS,
    HOUR_MS,
    ExchangeRouter,
    ExchangeUnavailableError,
    Route,
    Routing,
    Venue,
    exchange_venues,
)
from resources.storage.schema import derivatives_data

log = logging.getLogger(__name__)

#: The series fetched per coin, as counted in the run's metadata.
SERIES = ("mark", "index", "funding_history", "funding_now", "open_interest_history")
#: A range ending this close to ``now`` is live: its last window gets the predicted funding rate.
LIVE_WINDOW = timedelta(minutes=15)
#: How far before the range the funding history is read (the settlement in force, and the one before it).
FUNDING_LOOKBACK = timedelta(days=2)
#: How far before the range's first window end the open-interest history is read.
OPEN_INTEREST_LOOKBACK = timedelta(hours=1)
COLUMNS = [column.name for column in derivatives_data.columns]
T = TypeVar("T")


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


@dataclass
class SwapSeries:
    """What one exchange gave for one perpetual over a range (times in ms since the epoch).

    ``mark``/``index``: bars by open time ``(o, h, l, c)``; ``funding``: settlements
    ``(time, rate)`` in time order; ``open_interest``: observations ``(time, contracts, notional)``
    in time order; ``predicted``: the next settlement's predicted ``(rate, time)`` as observed now
    (live only); ``open_interest_from``: the earliest time the venue's open-interest history
    reaches (None: the whole range).
    """

    mark: dict[int, tuple[float, ...]]
    index: dict[int, tuple[float, ...]]
    funding: list[tuple[int, float]]
    open_interest: list[tuple[int, float | None, float | None]]
    predicted: tuple[float, int | None] | None = None
    open_interest_from: int | None = None
    funding_interval_h: float | None = None


def _ms(value: datetime) -> int:
    return int(value.replace(tzinfo=UTC).timestamp() * 1000)


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _contract_size(venue: Venue, route: Route) -> float:
    """The coins one contract of ``route`` holds (ccxt's ``contractSize``: OKX's ``ctVal``, else 1)."""
    return float(venue.client.markets[route.market].get("contractSize") or 1.0)


class CountedVenue:
    """A venue whose HTTP requests are counted per series of :data:`SERIES` (retries included)."""

    def __init__(self, venue: Venue):
        self.venue = venue
        self.calls = dict.fromkeys(SERIES, 0)

    def __call__(self, series: str, what: str, call: Callable[[], T]) -> T:
        """Run a per-pair ccxt call on the venue (see :meth:`Venue.pair_call`), counted under ``series``."""
        before = self.venue.stats.requests
        try:
            return self.venue.pair_call(what, call)
        finally:
            self.calls[series] += self.venue.stats.requests - before

    def bars(self, series: str, route: Route, start: datetime, end: datetime, now: datetime) -> list[tuple]:
        """The ``mark`` or ``index`` (``series``) price bars of ``route``, counted under ``series``."""
        before = self.venue.stats.requests
        try:
            return self.venue.bars(route, start, end, now, price=series)
        finally:
            self.calls[series] += self.venue.stats.requests - before


def _history(
    counted: CountedVenue,
    series: str,
    what: str,
    fetch: Callable[[int, int], list[dict[str, Any]]],
    since_ms: int,
    until_ms: int,
    span_ms: int,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(time, entry)`` of a venue's history in [since_ms, until_ms], asked for in pages of
    ``span_ms`` (``fetch(page_start, page_end)``, counted under ``series``); an entry without a time
    or outside the page it was asked for is left out."""
    cursor = since_ms
    while cursor <= until_ms:
        page_end = min(until_ms, cursor + span_ms)
        for entry in counted(series, what, partial(fetch, cursor, page_end)):
            when = entry.get("timestamp")
            if when is not None and cursor <= int(when) <= page_end:
                yield int(when), entry
        cursor = page_end + 1


def _funding_history(counted: CountedVenue, route: Route, since_ms: int, until_ms: int) -> list[tuple[int, float]]:
    """Funding settlements in [since_ms, until_ms], in pages of the venue's size (settlements are at
    most hourly, so a page spans its size in hours)."""
    venue = counted.venue
    facts = venue.facts.swap
    assert facts is not None
    key, add = facts.funding_until

    def page(first: int, last: int) -> list[dict[str, Any]]:
        return venue.client.fetch_funding_rate_history(
            route.market, since=first, limit=facts.funding_limit, params={key: last + add}
        )

    settlements: dict[int, float] = {}
    what = f"fetch_funding_rate_history {route.market}"
    span = (facts.funding_limit - 1) * HOUR_MS
    for when, entry in _history(counted, "funding_history", what, page, since_ms, until_ms, span):
        if entry.get("fundingRate") is not None:
            settlements[when] = float(entry["fundingRate"])
    return sorted(settlements.items())


def _open_interest_history(
    counted: CountedVenue, route: Route, since_ms: int, until_ms: int
) -> list[tuple[int, float | None, float | None]]:
    """5-minute open-interest observations in [since_ms, until_ms], in pages of the venue's size."""
    venue = counted.venue
    facts = venue.facts.swap
    assert facts is not None
    size = _contract_size(venue, route)

    def page(first: int, last: int) -> list[dict[str, Any]]:
        return venue.client.fetch_open_interest_history(
            route.market, "5m", since=first, limit=facts.open_interest_limit, params={"until": last}
        )

    observations: dict[int, tuple[float | None, float | None]] = {}
    what = f"fetch_open_interest_history {route.market}"
    span = (facts.open_interest_limit - 1) * BAR_MS
    for when, entry in _history(counted, "open_interest_history", what, page, since_ms, until_ms, span):
        amount = _number(entry.get("openInterestAmount"))
        observations[when] = (None if amount is None else amount * size, _number(entry.get("openInterestValue")))
    return [(t, *observations[t]) for t in sorted(observations)]


def fetch_swap_series(counted: CountedVenue, route: Route, start: datetime, end: datetime, now: datetime) -> SwapSeries:
    """Every series of ``route``'s perpetual for [start, end) from the venue, economically (see the module)."""
    venue = counted.venue
    facts = venue.facts.swap
    assert facts is not None
    start_ms, end_ms, now_ms = _ms(start), _ms(end), _ms(now)
    mark = {b[0]: b[1:5] for b in counted.bars("mark", route, start, end, now)}
    index = {b[0]: b[1:5] for b in counted.bars("index", route, start, end, now)} if mark else {}
    series = SwapSeries(mark, index, [], [])
    if not (mark and index):
        return series
    last_end = min(end_ms, now_ms // BAR_MS * BAR_MS)
    funding_from = start_ms - int(FUNDING_LOOKBACK.total_seconds() * 1000)
    if facts.funding_history is not None:
        funding_from = max(funding_from, now_ms - int(facts.funding_history.total_seconds() * 1000))
    series.funding = _funding_history(counted, route, funding_from, last_end - 1)
    oi_from = start_ms + BAR_MS - int(OPEN_INTEREST_LOOKBACK.total_seconds() * 1000)
    if facts.open_interest_history is not None:
        reach = now_ms - int(facts.open_interest_history.total_seconds() * 1000)
        reach = -(-reach // BAR_MS) * BAR_MS + BAR_MS  # on the grid, a window inside the limit
        if reach > oi_from:
            series.open_interest_from = oi_from = reach
    if oi_from <= last_end:
        series.open_interest = _open_interest_history(counted, route, oi_from, last_end)
    info = venue.client.markets[route.market].get("info") or {}
    if info.get("fundingInterval"):  # Bybit's instruments say it, in minutes
        series.funding_interval_h = float(info["fundingInterval"]) / 60
    if abs(now - end) <= LIVE_WINDOW:
        rate = counted(
            "funding_now", f"fetch_funding_rate {route.market}", partial(venue.client.fetch_funding_rate, route.market)
        )
        if rate.get("fundingRate") is not None:
            series.predicted = (float(rate["fundingRate"]), rate.get("fundingTimestamp"))
    return series


def swap_rows(
    coin: Coin, route: Route, series: SwapSeries, start: datetime, end: datetime, now: datetime
) -> tuple[list[dict[str, Any]], int]:
    """``derivatives_data`` rows of ``coin`` for the windows in [start, end) with a mark and an index
    bar, point in time, and how many of them lack open interest because the venue's history does
    not reach back to them.

    ``funding_rate``: the latest settlement strictly before the window's end (one at exactly the
    end belongs to the next window); ``funding_interval_h``: the time since the settlement before
    it (else the venue's stated interval); ``next_funding_time``: the settlement's time plus the
    interval; ``next_funding_rate``: the predicted rate, only in the last closed window of a live
    range; open interest: the latest observation at or before the window's end.
    """
    start_ms, end_ms = _ms(start), _ms(end)
    live_window = None
    if series.predicted is not None:
        live_window = min(end_ms, _ms(now) // BAR_MS * BAR_MS) - BAR_MS
    funding_times = [t for t, _ in series.funding]
    oi_times = [t for t, *_ in series.open_interest]
    rows, beyond_history = [], 0
    for ws in sorted(series.mark.keys() & series.index.keys()):
        if not start_ms <= ws < end_ms:
            continue
        we = ws + BAR_MS
        mark, index = series.mark[ws], series.index[ws]
        row: dict[str, Any] = {
            "symbol": coin.symbol,
            "window_start": _time(ws),
            "exchange": route.exchange,
            "contract": route.market,
            "settle": route.quote,
            **{f"mark_{k}": v for k, v in zip(("open", "high", "low", "close"), mark)},
            **{f"index_{k}": v for k, v in zip(("open", "high", "low", "close"), index)},
            "premium": mark[3] / index[3] - 1.0,
            "collected_at": now,
        }
        i = bisect_left(funding_times, we) - 1
        if i >= 0:
            when, rate = series.funding[i]
            interval_h = (when - funding_times[i - 1]) / HOUR_MS if i >= 1 else series.funding_interval_h
            row.update(funding_rate=rate, funding_time=_time(when), funding_interval_h=interval_h)
            if interval_h:
                row["next_funding_time"] = _time(when + int(interval_h * HOUR_MS))
        if ws == live_window and series.predicted is not None:
            row["next_funding_rate"], predicted_time = series.predicted
            if predicted_time is not None:
                row["next_funding_time"] = _time(int(predicted_time))
        j = bisect_right(oi_times, we) - 1
        if j >= 0:
            when, contracts, notional = series.open_interest[j]
            if notional is None and contracts is not None:
                notional = contracts * mark[3]
            row.update(open_interest=contracts, open_interest_value=notional, open_interest_at=_time(when))
        elif series.open_interest_from is not None and we < series.open_interest_from:
            beyond_history += 1
        rows.append(row)
    return rows, beyond_history


def fetch_live_derivatives(
    coins: Sequence[Coin], start: datetime, end: datetime, *, venues: Sequence[Venue], now: datetime
) -> DerivativesFetch:
    """Rows of ``derivatives_data`` for every window in [start, end) from the first exchange listing each coin's perpetual."""
    router = ExchangeRouter(venues)
    counted = {venue.id: CountedVenue(venue) for venue in venues}
    try:
        routing = router.load(coins)
    except ExchangeUnavailableError:
        if router.routing is None or any(v["state"] != "refused" for v in router.routing.exchanges.values()):
            raise  # an outage: the run fails and is re-run
        # Every exchange refuses (a geo-block is not transient): the coins are missing, with the reasons.
        reason = "every derivatives exchange refused: " + "; ".join(router.routing.exchanges)
        return DerivativesFetch(
            pd.DataFrame(columns=COLUMNS),
            "none",
            missing_reasons={coin.symbol: reason for coin in coins},
            exchanges=_exchanges_metadata(router, router.routing, counted, {}, {}, now),
        )

    def fetch(coin: Coin, venue: Venue, route: Route) -> tuple[list[dict[str, Any]], int] | None:
        series = fetch_swap_series(counted[venue.id], route, start, end, now)
        coin_rows, without_oi = swap_rows(coin, route, series, start, end, now)
        return (coin_rows, without_oi) if coin_rows else None

    found = router.first_serving(coins, fetch, what="the perpetuals of ", nothing="mark and index bar")
    rows: list[dict[str, Any]] = []
    beyond: dict[str, int] = {}
    for route, (coin_rows, without_oi) in found.served.values():
        rows.extend(coin_rows)
        if without_oi:
            beyond[route.exchange] = beyond.get(route.exchange, 0) + without_oi
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return DerivativesFetch(
        frame,
        ",".join(sorted(found.by_exchange)) or "none",
        no_perpetual=sorted(routing.unlisted),
        missing_reasons=dict(sorted(found.why.items())),
        exchanges=_exchanges_metadata(router, routing, counted, found.by_exchange, beyond, now),
    )


def _exchanges_metadata(
    router: ExchangeRouter,
    routing: Routing,
    counted: dict[str, CountedVenue],
    served: dict[str, int],
    beyond: dict[str, int],
    now: datetime,
) -> dict[str, Any]:
    """Per exchange: its state and reason (whole), calls per series, coins served, history limits."""
    out: dict[str, Any] = {}
    for venue_id, meta in router.metadata().items():
        venue = router.venues[venue_id]
        facts = venue.facts.swap
        reach = facts.open_interest_history if facts else None
        out[venue_id] = {
            **meta,
            "calls": dict(counted[venue_id].calls),
            "coins_served": served.get(venue_id, 0),
            "refused": routing.exchanges.get(venue_id, {}).get("state") == "refused",
            "open_interest_history_from": (now - reach).isoformat() if reach else None,
            "windows_before_open_interest_history": beyond.get(venue_id, 0),
        }
    return out


def derivatives_venues(settings: Settings, **kwargs: Any) -> list[Venue]:
    """A swap :class:`Venue` per exchange of ``CRYPTO_DERIVATIVES_EXCHANGES``, in order, pointed at
    ``CRYPTO_EXCHANGE_URLS`` (for ``doctor``, which routes the universe with them); ``kwargs`` go to
    :class:`Venue`."""
    return exchange_venues(settings.derivatives_exchanges, dict(settings.exchange_urls), market_type="swap", **kwargs)


__all__ = [
    "SERIES",
    "CountedVenue",
    "DerivativesFetch",
    "SwapSeries",
    "derivatives_venues",
    "fetch_live_derivatives",
    "fetch_swap_series",
    "swap_rows",
]
