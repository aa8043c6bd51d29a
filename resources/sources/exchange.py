"""Exchange 5-minute bars through ccxt, from an ordered list of exchanges (``CRYPTO_EXCHANGES``).

Each run loads every configured exchange's spot markets once. A coin is served by the first
exchange that lists a USD, USDT or USDC pair for it (``exchange_pair`` in the universe file, a
ccxt symbol such as ``IOTA/USDT`` or an exchange's market id such as ``IOTAUSDT``, overrides the
pair where that exchange lists it). An exchange that refuses (HTTP 451 or 403: geo-blocking, a
CDN block) or stays unreachable after the retries is skipped for the rest of the run, and its
coins fall to the next exchange that lists them. An error about one pair (an unknown or delisted
symbol) fails that coin on that exchange only: it falls to the next exchange listing it, else it
is missing with the venue's reason (:mod:`resources.sources.exchange_errors` classifies errors,
:mod:`resources.sources.venues` holds what differs between exchanges).

ccxt is synchronous and raises its own errors; :class:`Venue` runs every ccxt call under
:mod:`resources.retry_policy`: a timeout, retries with jittered exponential back-off on
transient failures (connection errors, timeouts, 5xx, 429 with ``Retry-After``, a truncated or
non-JSON body), the process-wide circuit breaker of the source (``exchange:<id>``), and a
:class:`SourceError` that names the exchange and the problem, in the exchange's own words (the
body ccxt keeps as ``last_http_response``). ccxt's own rate limiter is on.

Bars are checked for their interval before they are kept (see :func:`check_interval` and
:func:`check_series`), and a bar still open (open time + 5 minutes after ``now``) is never returned.

:func:`exchange_routing` loads the configured exchanges' markets and tells which exchange serves
each coin without fetching bars (for ``doctor``).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs, urlsplit

import ccxt
import pandas as pd

from resources.config.settings import Settings
from resources.config.universe import Coin
from resources.retry_policy import (
    CallStats,
    CircuitOpenError,
    RetryPolicy,
    SourceError,
    TransientError,
    circuit_breaker_for,
    parse_retry_after,
    problem_of,
    retry_call,
)
from resources.sources.exchange_errors import Scope, classify, pair_reason, venue_reason
from resources.sources.venues import swap_exchanges, venue_facts

log = logging.getLogger(__name__)

TIMEFRAME = "5m"
BAR_MS = 5 * 60 * 1000
HOUR_MS = 60 * 60 * 1000
DAY_MS = 24 * HOUR_MS
DAY_SLOTS = DAY_MS // BAR_MS
#: Quote currencies a coin's pair may have, in order of preference on one exchange.
QUOTES = ("USD", "USDT", "USDC")
BAR_COLUMNS = ("open", "high", "low", "close", "volume")
T = TypeVar("T")


class ExchangeRefusedError(SourceError):
    """The exchange refused us (HTTP 451/403): it is skipped for the run."""


class ExchangeUnavailableError(SourceError):
    """The exchange stayed unreachable through the retries (or its circuit is open)."""


class IntervalError(SourceError):
    """The bars served are not 5-minute bars (e.g. daily bars for a 5-minute request)."""


class PairError(SourceError):
    """The exchange answered one pair's request with an error about that pair (unknown or delisted
    symbol): that coin falls to the next exchange; the exchange serves the others."""

    source_is_up = True  # the exchange answered: its circuit breaker counts a success


def _point_at(urls: Any, base_url: str) -> Any:
    """ccxt's ``urls['api']`` (a URL or a dict of them) with every scheme and host replaced by ``base_url``."""
    if isinstance(urls, str):
        return re.sub(r"^https?://[^/]+", base_url.rstrip("/"), urls)
    if isinstance(urls, dict):
        return {key: _point_at(value, base_url) for key, value in urls.items()}
    return urls


def _ms(value: datetime) -> int:
    return int(value.replace(tzinfo=UTC).timestamp() * 1000)


def _excerpt(text: Any, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass(frozen=True)
class Route:
    """Where a coin's bars come from: the exchange, its ccxt symbol (``BTC/USDT``) and the quote."""

    symbol: str
    exchange: str
    market: str
    quote: str


class Venue:
    """One exchange through ccxt, with the project's timeouts, retries, circuit breaker and call counts."""

    def __init__(
        self,
        exchange_id: str,
        *,
        base_url: str | None = None,
        timeout_s: float = 15.0,
        max_attempts: int = 5,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_retry_after_s: float = 180.0,
        rate_limit_ms: int = 0,
        deadline: datetime | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        market_type: str = "spot",
    ):
        """``rate_limit_ms``: the spacing ccxt's rate limiter keeps between calls (0: ccxt's own for
        the exchange, e.g. Binance 50 ms, OKX 110 ms); the limiter is always on. ``deadline``: no
        retry waits past it (a live run's; see :class:`resources.retry_policy.RetryPolicy`).
        ``market_type``: ``spot`` (bars) or ``swap`` (the linear perpetuals of
        :mod:`resources.sources.derivatives`, the ccxt market types of the venue's ``SwapFacts``)."""
        if exchange_id not in ccxt.exchanges:
            raise SourceError("exchange", f"unknown exchange {exchange_id!r} in CRYPTO_EXCHANGES (not a ccxt id)")
        self.id = exchange_id
        self.name = f"exchange:{exchange_id}"
        self.facts = venue_facts(exchange_id)
        self.market_type = market_type
        if market_type == "swap" and self.facts.swap is None:
            raise SourceError(
                "exchange",
                f"{exchange_id!r} has no documented perpetual swaps here (CRYPTO_DERIVATIVES_EXCHANGES: one of "
                f"{', '.join(swap_exchanges())})",
            )
        types = list(self.facts.swap.market_types) if market_type == "swap" and self.facts.swap else ["spot"]
        self.client = getattr(ccxt, exchange_id)(
            {
                "enableRateLimit": True,
                "enableLastJsonResponse": True,
                "timeout": int(timeout_s * 1000),
                "options": {"fetchMarkets": {"types": types}, "fetchCurrencies": False},
            }
        )
        if base_url:
            self.client.urls["api"] = _point_at(self.client.urls["api"], base_url)
        if rate_limit_ms:
            self.client.rateLimit = rate_limit_ms
        self.client.session.hooks["response"].append(self._answered)
        self.policy = RetryPolicy(
            max_attempts=max_attempts,
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
            max_retry_after_s=max_retry_after_s,
            deadline=deadline,
            sleep=sleep,
            clock=clock,
        )
        self.breaker = circuit_breaker_for(self.name)
        self.stats = CallStats()
        self.open_bars_dropped = 0
        self._status: int | None = None

    def close(self) -> None:
        """Close ccxt's HTTP session."""
        session = getattr(self.client, "session", None)
        if session is not None:
            session.close()

    # ------------------------------------------------------------------ calls
    def _answered(self, response: Any, *args: Any, **kwargs: Any) -> None:
        """requests' response hook: count the answer and keep its status (ccxt keeps its body)."""
        self.stats.answered += 1
        self._status = response.status_code

    def _call(self, what: str, call: Callable[[], T], *, per_pair: bool = False) -> T:
        """Run one ccxt call with the retry policy; raise a :class:`SourceError` subclass naming the
        problem (:class:`PairError` for an error about the one pair a ``per_pair`` call asked for)."""

        def attempt() -> T:
            client, answered = self.client, self.stats.answered
            client.last_http_response = client.last_json_response = client.last_response_headers = None
            self._status = None
            try:
                result = call()
                self._check_body(what)
            except (ccxt.BaseError, TypeError, ValueError, KeyError, IndexError) as exc:
                self.stats.requests += max(1, self.stats.answered - answered)
                raise self._failure(what, exc, per_pair) from exc
            self.stats.requests += self.stats.answered - answered
            return result

        def give_up(exc: BaseException, attempts: int) -> BaseException:
            if isinstance(exc, SourceError):
                return exc
            problem = problem_of(exc).removeprefix(f"{what}: ")
            return ExchangeUnavailableError(
                self.name, f"{what} failed after {attempts} attempts; last error: {problem}"
            )

        return retry_call(
            attempt, self.policy, name=self.name, give_up=give_up, stats=self.stats, breaker=self.breaker, logger=log
        )

    def pair_call(self, what: str, call: Callable[[], T]) -> T:
        """Run one ccxt call about one pair (a perpetual's funding or open interest) like the bars:
        retried, and an error about that pair raised as :class:`PairError`."""
        return self._call(what, call, per_pair=True)

    def _check_body(self, what: str) -> None:
        """Raise :class:`TransientError` for a 2xx answer whose body is not JSON (truncated, an HTML page)."""
        body = self.client.last_http_response
        if self._status is not None and 200 <= self._status < 300 and self.client.last_json_response is None:
            raise TransientError(
                f"{what}: MalformedBody: HTTP {self._status} with a body that is not JSON: {_excerpt(body)!r}",
                status=self._status,
            )

    def _failure(self, what: str, exc: BaseException, per_pair: bool) -> Exception:
        """The error ending an attempt that raised ``exc``: transient or final, as classified once
        by :func:`~resources.sources.exchange_errors.classify` from the exchange's answer."""
        status, body = self._status, self.client.last_http_response
        scope = classify(exc, status, body, self.facts, per_pair=per_pair)
        said = venue_reason(exc, body) if scope is not Scope.TRANSIENT else _excerpt(exc)
        problem = f"{type(exc).__name__}: {said}"
        if scope is Scope.REFUSED:
            return ExchangeRefusedError(
                self.name, f"{what} refused with HTTP {status} (geo-blocked or blocked by a CDN): {said}", status=status
            )
        if scope is Scope.PAIR:
            return PairError(self.name, f"{what}: {pair_reason(self.id, exc, body)}", status=status)
        if scope is Scope.FINAL:
            return SourceError(self.name, f"{what}: {problem}", status=status)
        retry_after = None
        if status == 429:
            self.stats.throttled += 1
            retry_after = parse_retry_after((self.client.last_response_headers or {}).get("Retry-After"))
            if retry_after is not None and retry_after > self.policy.max_retry_after_s:
                return ExchangeUnavailableError(
                    self.name,
                    f"{what}: rate limited (HTTP 429) with Retry-After {retry_after:.0f}s, "
                    f"more than the {self.policy.max_retry_after_s:.0f}s this client waits",
                    status=429,
                )
        return TransientError(f"{what}: {problem}", status=status, retry_after=retry_after)

    # ------------------------------------------------------------------ markets
    def load_markets(self) -> int:
        """Load the exchange's markets of its ``market_type`` (once per run); the number of markets."""
        markets = self._call("load_markets", lambda: self.client.load_markets(reload=True))
        if not isinstance(markets, dict):
            raise SourceError(self.name, f"load_markets returned {type(markets).__name__}, expected markets")
        return len(markets)

    def route(self, coin: Coin) -> Route | None:
        """The pair serving ``coin`` here (override first, then USD, USDT, USDC), or None; on a
        ``swap`` venue its linear perpetual (:meth:`swap_route`)."""
        if self.market_type == "swap":
            return self.swap_route(coin)
        markets = self.client.markets or {}
        if coin.exchange_pair:
            named = markets.get(coin.exchange_pair) or next(
                iter((self.client.markets_by_id or {}).get(coin.exchange_pair) or []), None
            )
            if named and named.get("spot") and named.get("quote") in QUOTES and named.get("active") is not False:
                return Route(coin.symbol, self.id, named["symbol"], named["quote"])
        for quote in QUOTES:
            market = markets.get(f"{coin.symbol}/{quote}")
            if market and market.get("spot") and market.get("active") is not False:
                return Route(coin.symbol, self.id, market["symbol"], quote)
        return None

    def swap_route(self, coin: Coin) -> Route | None:
        """The linear perpetual serving ``coin`` here (settled in USDT, then USDC, then USD), or None;
        ``Route.quote`` is its settle currency."""
        markets = self.client.markets or {}
        for settle in ("USDT", "USDC", "USD"):
            market = markets.get(f"{coin.symbol}/{settle}:{settle}")
            if market and market.get("swap") and market.get("linear") and market.get("active") is not False:
                return Route(coin.symbol, self.id, market["symbol"], settle)
        return None

    # ------------------------------------------------------------------ bars
    def bars(
        self, route: Route, start: datetime, end: datetime, now: datetime, price: str | None = None
    ) -> list[tuple]:
        """Closed 5-minute bars ``(open_ms, o, h, l, c, v)`` of ``route`` with open time in [start, end);
        ``price``: ``mark`` or ``index`` for a perpetual's mark or index price bars (no volume: 0)."""
        start_ms = _ms(start)
        closed_end = min(_ms(end), _ms(now) // BAR_MS * BAR_MS)  # a bar ending after now is still open
        page_limit = self.facts.page_limit
        bars: list[tuple] = []
        cursor = start_ms
        while cursor < closed_end:
            limit = max(1, min(page_limit, (closed_end - cursor) // BAR_MS))
            since = cursor
            page = self._call(
                f"fetch_ohlcv {route.market}" + (f" ({price} price)" if price else ""),
                partial(
                    self.client.fetch_ohlcv,
                    route.market,
                    TIMEFRAME,
                    since=since,
                    limit=limit,
                    params={"price": price} if price else {},
                ),
                per_pair=True,
            )
            check_request(self.id, route.market, self.client.last_request_url)
            check_interval(self.id, route.market, page, self.client.last_json_response, since, limit)
            for bar in page:
                if bar[0] >= closed_end:
                    self.open_bars_dropped += int(bar[0] + BAR_MS > _ms(now))
                    continue
                if since <= bar[0] < since + limit * BAR_MS:
                    bars.append(_checked_bar(self.name, route.market, bar if not price else [*bar[:5], 0.0]))
            cursor += limit * BAR_MS
        check_series(self.id, route.market, [b[0] for b in bars], (closed_end - start_ms) // BAR_MS)
        return bars


def check_request(exchange_id: str, market: str, url: str | None) -> None:
    """Raise :class:`IntervalError` unless the request sent for bars (``url``) asked for 5-minute bars
    with the exchange's documented parameter (``interval_query`` of :mod:`resources.sources.venues`)."""
    wanted = venue_facts(exchange_id).interval_query
    if wanted is None or url is None:
        return
    asked = parse_qs(urlsplit(url).query).get(wanted[0], [])
    if asked != [wanted[1]]:
        raise IntervalError(
            f"exchange:{exchange_id}",
            f"{market}: the bars were asked for with {wanted[0]}={','.join(asked) or '(none)'}, "
            f"not {wanted[0]}={wanted[1]} (5 minutes)",
        )


def check_interval(exchange_id: str, market: str, page: Any, raw: Any, since: int, limit: int) -> None:
    """Raise :class:`IntervalError` unless ``page`` (ccxt's ``[ts, o, h, l, c, v]`` rows) are 5-minute bars.

    Per page: an open time off the 5-minute grid, or a bar beyond ``since + limit x 5 min`` (at
    most ``limit`` 5-minute bars from ``since`` cannot reach past it, while coarser bars do), rejects
    the page; where the exchange's own format says the bar's length (``close_time_field`` of
    :mod:`resources.sources.venues`: Binance's kline close time), it must be 5 minutes, which
    catches even a single daily bar. :func:`check_series`
    then looks at the whole range.
    """
    name = f"exchange:{exchange_id}"
    if not isinstance(page, list) or any(not isinstance(b, list) or len(b) < 6 for b in page):
        raise SourceError(
            name, f"{market}: fetch_ohlcv returned {_excerpt(page, 120)}, expected [ts, o, h, l, c, v] rows"
        )
    times = [b[0] for b in page]
    if any(not isinstance(t, int) for t in times):
        raise SourceError(name, f"{market}: a bar without an integer open time in {_excerpt(page, 120)}")
    off_grid = [t for t in times if t % BAR_MS]
    if off_grid:
        raise IntervalError(name, f"{market}: bar open time {off_grid[0]} is not on the 5-minute grid")
    beyond = [t for t in times if t > since + limit * BAR_MS]  # the span's end itself: APIs that include it
    if beyond:
        raise IntervalError(
            name,
            f"{market}: asked for {limit} 5-minute bar(s) from {since}, got one opening at "
            f"{beyond[0]}: these are not 5-minute bars",
        )
    field = venue_facts(exchange_id).close_time_field
    if field is not None and isinstance(raw, list):
        for row in raw:
            if isinstance(row, list) and len(row) > field and int(row[field]) != int(row[0]) + BAR_MS - 1:
                length = (int(row[field]) + 1 - int(row[0])) / 60000
                raise IntervalError(
                    name,
                    f"{market}: bar opening at {row[0]} closes at {row[field]}, a {length:g}-minute bar, not 5 minutes",
                )


def check_series(exchange_id: str, market: str, times: Sequence[int], slots: int) -> None:
    """Raise :class:`IntervalError` when a route's bars over a range of ``slots`` windows look coarser.

    Every exchange's bars are judged by their series, whether or not its format has a close time
    (OKX, Coinbase and Kraken have none): two or more bars where every gap between consecutive
    bars is a whole number of hours are hourly (or coarser) bars, and a lone bar opening at
    midnight over a range of a day or more is a daily bar. A genuine 5-minute series passes with
    any number of missing bars as long as one gap between consecutive bars is not a whole number
    of hours (two adjacent bars suffice); only a series with at most one bar an hour, always at the
    same minute (at least 11 of every 12 windows between its bars missing), is rejected, and it
    has no usable 5-minute series either: the coin falls to the next exchange at no loss.
    """
    name = f"exchange:{exchange_id}"
    if not times:
        return
    if slots >= DAY_SLOTS and all(t % DAY_MS == 0 for t in times):
        raise IntervalError(
            name, f"{market}: over {slots} windows only bars opening at midnight: daily bars, not 5-minute bars"
        )
    gaps = [b - a for a, b in zip(times, times[1:])]
    if gaps and all(gap > 0 and gap % HOUR_MS == 0 for gap in gaps):
        raise IntervalError(
            name,
            f"{market}: {len(times)} bars, every one a whole number of hours after the previous "
            f"(at least {min(gaps) // 60000} minutes): hourly or coarser bars, not 5-minute bars",
        )


def _checked_bar(name: str, market: str, bar: list) -> tuple:
    values = bar[1:6]
    if any(v is None or not isinstance(v, (int, float)) for v in values):
        raise SourceError(name, f"{market}: bar at {bar[0]} has a missing or non-numeric value: {_excerpt(bar, 120)}")
    o, h, low, c, v = (float(x) for x in values)
    if min(o, h, low, c) <= 0 or v < 0:
        raise SourceError(
            name, f"{market}: bar at {bar[0]} has a non-positive price or negative volume: {_excerpt(bar, 120)}"
        )
    if h < max(o, c, low) or low > min(o, c):
        raise SourceError(name, f"{market}: inconsistent bar at {bar[0]} (high {h}, low {low})")
    return (int(bar[0]), o, h, low, c, v)


@dataclass
class Routing:
    """Which exchange serves each coin, after loading every configured exchange's markets.

    ``routes``: per symbol, the exchanges listing a pair for it in preference order (the first
    serves it; the next ones take over if it fails during the run). ``unlisted``: coins no
    reachable exchange lists. ``exchanges``: per exchange tried, ``state`` (``ok``, ``refused``,
    ``unavailable``; ``failed``: another error, which ends the loading), ``markets`` loaded and
    ``detail``.
    """

    routes: dict[str, list[Route]] = field(default_factory=dict)
    unlisted: list[str] = field(default_factory=list)
    exchanges: dict[str, dict[str, Any]] = field(default_factory=dict)

    def serving(self) -> dict[str, Route]:
        """The first route of each routed coin."""
        return {symbol: routes[0] for symbol, routes in self.routes.items() if routes}


@dataclass
class BarsResult:
    """A run's bars and what the metadata says about them.

    ``rejected``: per coin, why an exchange's bars failed the interval check; ``failed_pairs``:
    per coin, the exchanges' errors about its pair (both even when a later exchange served it);
    ``why_missing``: per coin without bars, why.
    """

    frame: pd.DataFrame
    served_by: dict[str, int]
    missing: list[str]
    rejected: dict[str, str]
    routing: Routing
    failed_pairs: dict[str, str] = field(default_factory=dict)
    why_missing: dict[str, str] = field(default_factory=dict)


@dataclass
class CoinsServed(Generic[T]):
    """What :meth:`ExchangeRouter.first_serving` found: per coin served, its route and the exchange's
    answer; coins served per exchange; per coin left unserved, why."""

    served: dict[str, tuple[Route, T]] = field(default_factory=dict)
    by_exchange: dict[str, int] = field(default_factory=dict)
    why: dict[str, str] = field(default_factory=dict)


class ExchangeRouter:
    """The ordered exchanges of a run: loads their markets once, routes coins, fetches their bars."""

    def __init__(self, venues: Sequence[Venue]):
        if not venues:
            raise SourceError("exchange", "no exchange configured (CRYPTO_EXCHANGES is empty)")
        self.venues = {v.id: v for v in venues}
        self.routing: Routing | None = None

    def close(self) -> None:
        for venue in self.venues.values():
            venue.close()

    def __enter__(self) -> ExchangeRouter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _skip(self, venue: Venue, exc: SourceError) -> None:
        assert self.routing is not None
        state = "refused" if isinstance(exc, ExchangeRefusedError) else "unavailable"
        self.routing.exchanges[venue.id].update(state=state, detail=str(exc))
        log.warning("%s skipped for this run: %s", venue.name, exc)

    def load(self, coins: Sequence[Coin]) -> Routing:
        """Load every exchange's markets and route ``coins`` (done once per run)."""
        self.routing = routing = Routing()
        for venue in self.venues.values():
            routing.exchanges[venue.id] = {"state": "ok", "markets": 0, "detail": ""}
            try:
                routing.exchanges[venue.id]["markets"] = venue.load_markets()
            except (ExchangeRefusedError, ExchangeUnavailableError, CircuitOpenError) as exc:
                self._skip(venue, exc)
            except SourceError as exc:  # any other failure ends the run: the routing says where
                routing.exchanges[venue.id].update(state="failed", detail=str(exc))
                raise
        usable = [v for v in self.venues.values() if routing.exchanges[v.id]["state"] == "ok"]
        if not usable:
            raise ExchangeUnavailableError(
                "exchange",
                "no configured exchange could be reached: "
                + "; ".join(f"{k} {v['state']} ({v['detail']})" for k, v in routing.exchanges.items()),
            )
        for coin in coins:
            routes = [r for r in (v.route(coin) for v in usable) if r is not None]
            if routes:
                routing.routes[coin.symbol] = routes
            else:
                routing.unlisted.append(coin.symbol)
        return routing

    def first_serving(
        self,
        coins: Sequence[Coin],
        fetch: Callable[[Coin, Venue, Route], T | None],
        *,
        what: str,
        nothing: str,
        pair_problem: Callable[[Coin, Venue, Route, SourceError], str] | None = None,
    ) -> CoinsServed[T]:
        """Per routed coin, ``fetch``'s answer from the first exchange listing it that serves it.

        A coin falls to the next exchange listing it when its exchange is not usable, refuses or
        fails mid-run (skipped for the rest of the run), answers an error about its pair or bars that
        fail the interval check (``pair_problem`` turns that error into the reason, else its text), or
        has nothing in the range (``fetch`` returns None: "no ``nothing`` in the range"). A coin no
        exchange serves is in ``why`` with its reasons. Raises :class:`ExchangeUnavailableError` when
        a coin is left unserved because every exchange listing it was unavailable (``what`` names
        what could not be served: the run fails and is re-run).
        """
        routing = self.routing or self.load(coins)
        found: CoinsServed[T] = CoinsServed()
        stranded: list[str] = []
        for coin in coins:
            routes = routing.routes.get(coin.symbol)
            if not routes:
                continue
            lost_to_outage = False
            reasons: list[str] = []
            for route in routes:
                venue = self.venues[route.exchange]
                if routing.exchanges[venue.id]["state"] != "ok":
                    lost_to_outage |= routing.exchanges[venue.id]["state"] == "unavailable"
                    reasons.append(f"{venue.id}: {routing.exchanges[venue.id]['state']}")
                    continue
                try:
                    answer = fetch(coin, venue, route)
                except (IntervalError, PairError) as exc:
                    reasons.append(
                        pair_problem(coin, venue, route, exc) if pair_problem else str(exc).removeprefix("exchange:")
                    )
                    continue
                except (ExchangeRefusedError, ExchangeUnavailableError, CircuitOpenError) as exc:
                    self._skip(venue, exc)
                    lost_to_outage |= not isinstance(exc, ExchangeRefusedError)
                    reasons.append(f"{venue.id}: {routing.exchanges[venue.id]['state']}")
                    continue
                if answer is None:
                    reasons.append(f"{venue.id}: no {nothing} in the range")
                    continue
                found.served[coin.symbol] = (route, answer)
                found.by_exchange[route.exchange] = found.by_exchange.get(route.exchange, 0) + 1
                break
            else:
                if lost_to_outage:
                    stranded.append(coin.symbol)
                found.why[coin.symbol] = "; ".join(reasons)
        if stranded:
            raise ExchangeUnavailableError(
                "exchange",
                f"no exchange could serve {what}{len(stranded)} coin(s) "
                f"({', '.join(stranded[:10])}{', ...' if len(stranded) > 10 else ''}): "
                + "; ".join(
                    f"{k} {v['state']}" + (f" ({v['detail']})" if v["detail"] else "")
                    for k, v in routing.exchanges.items()
                ),
            )
        return found

    def bars_frame(self, coins: Sequence[Coin], start: datetime, end: datetime, now: datetime) -> BarsResult:
        """Bars of every coin for [start, end) from its first working exchange.

        A coin whose exchange refuses or fails mid-run, answers an error about its pair, fails the
        interval check or has no bar in the range falls to the next exchange listing it; a coin no
        exchange serves is missing, with its reasons. Raises :class:`ExchangeUnavailableError`
        when a coin is left without bars because every exchange listing it was unavailable (the
        run fails, nothing is written, and the window is re-run), and :class:`SourceError` for a
        malformed bar.
        """
        routing = self.routing or self.load(coins)
        rejected: dict[str, str] = {}
        failed_pairs: dict[str, str] = {}

        def pair_problem(coin: Coin, venue: Venue, route: Route, exc: SourceError) -> str:
            if isinstance(exc, IntervalError):
                rejected[coin.symbol] = str(exc)
                return str(exc).removeprefix("exchange:")
            reason = str(exc).removeprefix(f"{venue.name}: fetch_ohlcv {route.market}: ")
            failed_pairs[coin.symbol] = "; ".join(filter(None, [failed_pairs.get(coin.symbol), reason]))
            return reason

        found = self.first_serving(
            coins,
            lambda coin, venue, route: venue.bars(route, start, end, now) or None,
            what="",
            nothing="bar",
            pair_problem=pair_problem,
        )
        why = {s: "no reachable exchange lists a USD, USDT or USDC pair" for s in routing.unlisted} | found.why
        rows: list[tuple] = []
        for coin in coins:
            if coin.symbol in found.served:
                route, bars = found.served[coin.symbol]
                rows.extend((coin.symbol, coin.coin_id, *bar, route.exchange, route.quote) for bar in bars)
        frame = pd.DataFrame(rows, columns=["symbol", "coin_id", "open_time", *BAR_COLUMNS, "exchange", "quote"])
        frame["window_start"] = pd.to_datetime(frame["open_time"], unit="ms").astype("datetime64[us]")
        return BarsResult(
            frame.drop(columns="open_time"),
            found.by_exchange,
            sorted(why),
            rejected,
            routing,
            failed_pairs,
            dict(sorted(why.items())),
        )

    def metadata(self) -> dict[str, Any]:
        """Per exchange: state, markets, HTTP calls, retries, circuit, open bars dropped."""
        routing = self.routing or Routing()
        return {
            v.id: {
                **routing.exchanges.get(v.id, {}),
                **v.stats.as_metadata(),
                "circuit": v.breaker.snapshot(),
                "open_bars_dropped": v.open_bars_dropped,
            }
            for v in self.venues.values()
        }


def exchange_venues(exchanges: Sequence[str], urls: Mapping[str, str], **kwargs: Any) -> list[Venue]:
    """A :class:`Venue` per exchange id of ``exchanges``, in order, pointed at its URL in ``urls``
    (``market_type="swap"`` in ``kwargs``: their perpetual swaps)."""
    return [Venue(exchange_id, base_url=urls.get(exchange_id), **kwargs) for exchange_id in exchanges]


def venues_from_settings(settings: Settings, **kwargs: Any) -> list[Venue]:
    """A :class:`Venue` per exchange of ``settings.exchanges``, pointed at ``settings.exchange_urls``."""
    return exchange_venues(settings.exchanges, dict(settings.exchange_urls), **kwargs)


def exchange_routing(settings: Settings, coins: Sequence[Coin], **kwargs: Any) -> Routing:
    """Load each configured exchange's markets and tell which exchange serves each coin.

    For ``doctor`` and operators: ``kwargs`` go to :class:`Venue` (``timeout_s``, ``max_attempts``,
    ...). Raises :class:`ExchangeUnavailableError` when no exchange can be reached at all.
    """
    with ExchangeRouter(venues_from_settings(settings, **kwargs)) as router:
        return router.load(coins)
