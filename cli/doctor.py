"""``python -m cli.doctor``: tell whether the sources the platform uses work, before going live.

With ``CRYPTO_SOURCE=simulated`` (the quick start's default) the platform uses no live source: the
doctor says so and checks nothing, unless ``--live`` asks what ``CRYPTO_SOURCE=live`` would use.
Live checks: one request (or a few, where a source has several parts: each exchange, subreddit,
RSS feed and FRED series) per configured source, with the keys and base URLs from the environment
(the settings the platform runs with), all sources at once. The table says, per source: whether
it answered (any HTTP answer), whether its key is valid, the rate limit left where the service
reports it, and what is wrong; then, per coin, which exchange serves its bars and which coins
have no price at all. Each exchange of ``CRYPTO_DERIVATIVES_EXCHANGES`` loads its perpetual swaps
(a row each, never required: without them ``derivatives_data`` only stays empty), and the report
says which exchange serves each coin's perpetual.

Exit status: 0 when every required source works (or nothing was checked: simulated without
``--live``), 1 when a required source fails, 2 for unusable settings. Required: CoinGecko, at least
one exchange of ``CRYPTO_EXCHANGES`` (one alone is not: its coins fall to the next), and Guardian,
Reddit and FRED when their keys are set (a key that is set must work). RSS feeds and Yahoo Finance
are best effort: a failure is a warning. ``--json`` prints the same as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from resources.config.settings import Settings, SettingsError, load_settings
from resources.config.universe import Coin, load_universe
from resources.retry_policy import CircuitBreaker, SourceError
from resources.sources.coingecko import PUBLIC_BASE_URL, CoinGeckoClient, coingecko_http, parse_markets
from resources.sources.derivatives import derivatives_venues
from resources.sources.exchange import ExchangeRouter, Routing, Venue, venues_from_settings
from resources.sources.http import HttpSource
from resources.sources.macro_sources import FredClient, YahooClient
from resources.sources.news_guardian import GuardianClient, guardian_http
from resources.sources.news_reddit import RedditAuth, SubredditFeed, reddit_http
from resources.sources.news_rss import DEFAULT_FEEDS as RSS_DEFAULT_FEEDS
from resources.sources.news_rss import RssFeed, feed_name, rss_http

OK, FAILED, WARNING, SKIPPED = "ok", "FAILED", "warning", "skipped"
TIMEOUT_S = 10.0


@dataclass
class Check:
    """What one request (or one part of a source) showed."""

    source: str
    required: bool
    status: str = OK  # ok, FAILED (a required source), warning (one not required), skipped (not checked)
    reachable: bool | None = None  # whether it answered (any HTTP status); None: nothing was sent
    key: str = "none needed"  # valid, invalid, unknown (no answer to tell), not set, none needed
    rate_limit: str = ""
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Report:
    """Every check, and the coin-level findings; ``source`` is ``CRYPTO_SOURCE``, ``live_checked``
    whether the live sources were checked."""

    source: str
    live_checked: bool = True
    checks: list[Check] = field(default_factory=list)
    coins: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failed(self) -> list[str]:
        """The required sources that failed."""
        return [c.source for c in self.checks if c.required and c.status == FAILED]

    @property
    def ok(self) -> bool:
        """True when no required source failed."""
        return not self.failed

    @property
    def reached(self) -> bool:
        """True when any source answered."""
        return any(c.reachable for c in self.checks)

    def as_json(self) -> dict[str, Any]:
        """The report as one JSON-able object."""
        return {
            "ok": self.ok,
            "source": self.source,
            "live_checked": self.live_checked,
            "seconds": round(self.seconds, 3),
            "checks": [asdict(c) for c in self.checks],
            "coins": self.coins,
        }


def _probe() -> dict[str, Any]:
    """The retry settings of a check's client (its URL and headers are the source's own): short
    timeout, one retry, a breaker of its own."""
    return {
        "timeout_s": TIMEOUT_S,
        "max_attempts": 2,
        "backoff_base_s": 0.2,
        "max_retry_after_s": 5.0,
        "breaker": CircuitBreaker(),
    }


def _timed(check: Check, began: float) -> Check:
    check.seconds = round(time.perf_counter() - began, 3)
    return check


def _failure(
    check: Check,
    exc: Exception,
    *,
    answered: bool | None,
    key_statuses: Sequence[int] = (401, 403),
    best_effort: bool = False,
    key_markers: Sequence[str] = (),
) -> Check:
    """Fill ``check`` from a failed request: ``answered``, whether the source sent any answer (None:
    nothing was sent); a refused key; the error, without the source's name the row already has."""
    status = getattr(exc, "status", None)
    text = _without_source(exc)
    check.status = WARNING if best_effort else FAILED
    check.reachable = answered
    if status in key_statuses or any(m in text for m in key_markers):
        check.key = "invalid"
    check.detail = text
    return check


def _without_source(exc: Exception | str, source: str | None = None) -> str:
    """The error's text without the ``<source>: `` it starts with."""
    source = source or getattr(exc, "source", None)
    return str(exc).removeprefix(f"{source}: ") if source else str(exc)


def _header_limit(headers: httpx.Headers, pairs: Sequence[tuple[str, str]]) -> str:
    """``remaining/limit per period`` from the first rate-limit header pairs a response has."""
    parts = []
    for remaining, limit in pairs:
        if remaining in headers:
            total = f"/{headers[limit]}" if limit in headers else ""
            parts.append(f"{headers[remaining]}{total} {remaining.rsplit('-', 1)[-1].lower()}")
    return ", ".join(parts)


# ------------------------------------------------------------------------------------------ sources
def check_coingecko(settings: Settings, coins: Sequence[Coin]) -> tuple[Check, list[str]]:
    """One ``/coins/markets`` call for the whole universe (and ``/key`` with a key): the check, and
    the coins CoinGecko does not price (every coin when it failed)."""
    began = time.perf_counter()
    check = Check("coingecko", required=True, key="unknown" if settings.coingecko_api_key else "none needed")
    every_coin = sorted(c.symbol for c in coins)
    try:
        http = coingecko_http(
            settings.coingecko_plan, settings.coingecko_api_key, settings.coingecko_base_url, **_probe()
        )
    except SourceError as exc:
        return _timed(_failure(check, exc, answered=None), began), every_coin
    with http:
        try:
            frame, _ = parse_markets(CoinGeckoClient(http).markets([c.coin_id for c in coins]), coins)
        except SourceError as exc:
            # 10002 missing key, 10005 plan restricted, 10010/10011 key used on the wrong host
            failed = _failure(
                check, exc, answered=http.stats.answered > 0, key_markers=("10002", "10005", "10010", "10011")
            )
            return _timed(failed, began), every_coin
        check.reachable = True
        if settings.coingecko_api_key:
            check.key = "valid"
        unpriced = sorted({c.symbol for c in coins} - set(frame["symbol"]))
        check.detail = f"{len(frame)} of {len(coins)} coins priced"
        if settings.coingecko_api_key:
            check.rate_limit = _coingecko_key_limits(http)
    if settings.coingecko_plan == "demo" and not settings.coingecko_api_key and http.base_url == PUBLIC_BASE_URL:
        check.detail += "; keyless: the public limit is shared and low, set COINGECKO_API_KEY"
    return _timed(check, began), unpriced


def _coingecko_key_limits(http: HttpSource) -> str:
    """The key's limits from ``GET /key`` (``rate_limit_request_per_minute``, monthly credits)."""
    try:
        body = http.get_json("/key")
    except SourceError:
        return "not reported"
    if not isinstance(body, dict):
        return "not reported"
    parts = []
    if body.get("rate_limit_request_per_minute") is not None:
        parts.append(f"{body['rate_limit_request_per_minute']}/min")
    if body.get("current_remaining_monthly_calls") is not None:
        parts.append(f"{body['current_remaining_monthly_calls']} calls left this month")
    return ", ".join(parts) or "not reported"


def check_guardian(settings: Settings) -> Check:
    """One search of one result: key valid, and the day's and minute's calls left."""
    began = time.perf_counter()
    check = Check("guardian", required=bool(settings.guardian_api_key), key="unknown")
    if not settings.guardian_api_key:
        check.status, check.key, check.detail = SKIPPED, "not set", "GUARDIAN_API_KEY is not set"
        return check
    with guardian_http(settings.guardian_base_url, **_probe()) as http:
        try:
            body, response = GuardianClient(http, settings.guardian_api_key).probe()
        except SourceError as exc:
            return _timed(_failure(check, exc, answered=http.stats.answered > 0), began)
    check.reachable, check.key = True, "valid"
    check.rate_limit = _header_limit(
        response.headers,
        [
            ("X-RateLimit-Remaining-day", "X-RateLimit-Limit-day"),
            ("X-RateLimit-Remaining-minute", "X-RateLimit-Limit-minute"),
        ],
    )
    check.detail = f"{body.get('total', 0)} articles match 'bitcoin'"
    return _timed(check, began)


def check_reddit(settings: Settings, now: datetime) -> list[Check]:
    """A token (credentials valid), then the newest post of each subreddit ("r/X not found")."""
    began = time.perf_counter()
    if not (settings.reddit_client_id and settings.reddit_client_secret):
        return [
            Check(
                "reddit",
                required=False,
                status=SKIPPED,
                key="not set",
                detail="REDDIT_CLIENT_ID and REDDIT_CLIENT_SECRET are not set",
            )
        ]
    token = Check("reddit token", required=True, key="unknown")
    auth_http, api = reddit_http(settings.reddit_auth_url, settings.reddit_api_url, **_probe())
    with auth_http, api:
        auth = RedditAuth(auth_http, settings.reddit_client_id, settings.reddit_client_secret)
        try:
            auth.token()
        except SourceError as exc:
            failed = _failure(token, exc, answered=auth_http.stats.answered > 0, key_markers=("token request refused",))
            return [_timed(failed, began)]
        token.reachable, token.key, token.detail = True, "valid", "client credentials accepted"
        checks = [_timed(token, began)]
        for subreddit in settings.reddit_subreddits:
            began = time.perf_counter()
            feed = SubredditFeed(api, auth, subreddit, limit=1, max_pages=1)
            check = Check(f"reddit r/{feed.subreddit}", required=True, key="valid")
            answers = api.stats.answered
            try:
                posts = feed.fetch(now - timedelta(days=1), now, Counter())
            except SourceError as exc:
                checks.append(_timed(_failure(check, exc, answered=api.stats.answered > answers), began))
                continue
            check.reachable = True
            check.detail = f"newest post {posts[0].published_at:%Y-%m-%d %H:%M}" if posts else "no posts"
            rl = feed.ratelimit
            if rl.remaining is not None:
                check.rate_limit = f"{rl.remaining:.0f} calls left, resets in {rl.reset_s or 0:.0f} s"
            checks.append(_timed(check, began))
    return checks


def check_rss(settings: Settings, now: datetime) -> list[Check]:
    """Each feed fetched and parsed: entries, and those without a usable date (best effort)."""
    checks = []
    for url in settings.rss_feeds or RSS_DEFAULT_FEEDS:
        began = time.perf_counter()
        check = Check(feed_name(url), required=False)
        with rss_http(url, **_probe()) as http:
            skipped: Counter = Counter()
            try:
                items = RssFeed(http, url).fetch(now, now, skipped)
            except SourceError as exc:
                checks.append(_timed(_failure(check, exc, answered=http.stats.answered > 0, best_effort=True), began))
                continue
        check.reachable = True
        notes = ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items()))
        check.detail = f"{len(items)} entries" + (f" ({notes})" if notes else "")
        checks.append(_timed(check, began))
    return checks


def check_fred(settings: Settings, today: datetime) -> list[Check]:
    """Each configured series' recent vintage dates: key valid, series known."""
    if not settings.fred_api_key:
        return [Check("fred", required=False, status=SKIPPED, key="not set", detail="FRED_API_KEY is not set")]
    checks = []
    client = FredClient(settings.fred_api_key, base_url=settings.fred_base_url, **_probe())
    try:
        for series_id in settings.fred_series:
            began = time.perf_counter()
            check = Check(f"fred {series_id}", required=True, key="unknown")
            answers = client.http.stats.answered
            try:
                dates = client.vintage_dates(series_id, (today - timedelta(days=90)).date())
            except SourceError as exc:
                answered = client.http.stats.answered > answers
                failed = _failure(check, exc, answered=answered, key_statuses=(), key_markers=("api_key",))
                checks.append(_timed(failed, began))
                continue
            check.reachable, check.key = True, "valid"
            check.detail = f"last published {dates[-1]}" if dates else "nothing published in 90 days"
            checks.append(_timed(check, began))
    finally:
        client.close()
    return checks


def check_yahoo(settings: Settings, today: datetime) -> Check:
    """A week of S&P 500 closes (Yahoo Finance has no official API: best effort)."""
    began = time.perf_counter()
    check = Check("yahoo", required=False)
    client = YahooClient(base_url=settings.yahoo_base_url, **_probe())
    try:
        closes = client.daily_closes("^GSPC", (today - timedelta(days=7)).date(), today.date())
    except SourceError as exc:
        return _timed(_failure(check, exc, answered=client.http.stats.answered > 0, best_effort=True), began)
    finally:
        client.close()
    check.reachable = True
    check.detail = f"{len(closes)} daily closes of ^GSPC this week"
    return _timed(check, began)


# ------------------------------------------------------------------------------------------ exchange
def check_exchanges(settings: Settings, coins: Sequence[Coin]) -> tuple[list[Check], dict[str, str | None]]:
    """Every exchange of ``CRYPTO_EXCHANGES`` loads its markets once (the price asset's own routing,
    ``resources/sources/exchange.py``): a row per exchange, and per symbol the exchange serving its bars
    (None: no exchange lists it). No exchange is required alone: one that refuses (HTTP 451 geo-block,
    403) or cannot be reached is a warning, and its coins fall to the next. When none works (or the
    loading fails as it would fail a run), a required ``exchanges`` row fails."""
    began = time.perf_counter()
    served: dict[str, str | None] = {c.symbol: None for c in coins}
    try:
        venues = venues_from_settings(settings, **{k: v for k, v in _probe().items() if k != "breaker"})
        router = ExchangeRouter(venues)
    except SourceError as exc:  # an id ccxt does not know, or no exchange at all
        return [_timed(_failure(Check("exchanges", required=True), exc, answered=None), began)], served
    with router:
        error: SourceError | None = None
        try:
            routing = router.load(coins)
        except SourceError as exc:
            error, routing = exc, router.routing or Routing()
        serving = {} if error else routing.serving()
        checks = [_timed(_exchange_check(v, routing.exchanges.get(v.id), serving), began) for v in venues]
    if error is not None:
        working = any(c.status == OK for c in checks)
        checks.append(
            _timed(
                Check(
                    "exchanges",
                    required=True,
                    status=FAILED,
                    reachable=any(v.stats.answered for v in venues),
                    detail=f"loading the markets failed: {error}"
                    if working
                    else f"none of the {len(venues)} exchanges works: live bars need at least one",
                ),
                began,
            )
        )
    for symbol, route in serving.items():
        served[symbol] = route.exchange
    return checks, served


def check_derivatives(settings: Settings, coins: Sequence[Coin]) -> tuple[list[Check], dict[str, str | None]]:
    """Every exchange of ``CRYPTO_DERIVATIVES_EXCHANGES`` loads its perpetual swaps once (the
    derivatives asset's own routing, ``resources/sources/derivatives.py``): a row per exchange (a
    warning when it refuses or cannot be reached: never required), and per symbol the exchange
    serving its perpetual (None: none lists one)."""
    began = time.perf_counter()
    served: dict[str, str | None] = {c.symbol: None for c in coins}
    if not settings.derivatives_exchanges:
        return [], served
    probe = {k: v for k, v in _probe().items() if k != "breaker"}
    try:
        venues = derivatives_venues(settings, **probe)
        router = ExchangeRouter(venues)
    except SourceError as exc:  # an id without perpetual swaps here
        return [
            _timed(_failure(Check("perpetuals", required=False), exc, answered=None, best_effort=True), began)
        ], served
    with router:
        try:
            routing = router.load(coins)
        except SourceError:  # none could be reached: each row says why
            routing = router.routing or Routing()
        serving = routing.serving()
        checks = [
            _timed(_exchange_check(v, routing.exchanges.get(v.id), serving, f"perpetuals {v.id}"), began)
            for v in venues
        ]
    for symbol, route in serving.items():
        served[symbol] = route.exchange
    return checks, served


def _exchange_check(venue: Venue, state: dict[str, Any] | None, serving: Mapping[str, Any], label: str = "") -> Check:
    """One exchange's row (``label``, else ``exchange <id>``) from its routing ``state`` (None: not
    tried) and the coins it serves."""
    check = Check(
        label or f"exchange {venue.id}", required=False, reachable=venue.stats.answered > 0 if state else None
    )
    if state is None:
        check.status, check.detail = SKIPPED, "not tried: an earlier exchange's failure ended the loading"
    elif state["state"] == "ok":
        quotes = Counter(r.quote for r in serving.values() if r.exchange == venue.id)
        check.detail = f"{state['markets']} markets; serves {sum(quotes.values())} coins" + (
            f" ({', '.join(f'{q} {n}' for q, n in quotes.most_common())})" if quotes else ""
        )
        headers = venue.client.last_response_headers or {}
        used = headers.get("x-mbx-used-weight-1m") or headers.get("X-MBX-USED-WEIGHT-1M")
        if used is not None:
            check.rate_limit = f"weight used {used}/6000 a minute"
    else:
        check.status, check.detail = WARNING, f"{state['state']}: {_without_source(state['detail'], venue.name)}"
    return check


# ------------------------------------------------------------------------------------------ run
def run_doctor(settings: Settings, coins: Sequence[Coin], now: datetime | None = None) -> Report:
    """Every live check at once (one thread a source); the report in a stable order."""
    began = time.perf_counter()
    now = now or datetime.now(UTC).replace(tzinfo=None)
    with ThreadPoolExecutor(max_workers=8) as pool:
        coingecko = pool.submit(check_coingecko, settings, coins)
        exchange = pool.submit(check_exchanges, settings, coins)
        derivatives = pool.submit(check_derivatives, settings, coins)
        guardian = pool.submit(check_guardian, settings)
        reddit = pool.submit(check_reddit, settings, now)
        rss = pool.submit(check_rss, settings, now)
        fred = pool.submit(check_fred, settings, now)
        yahoo = pool.submit(check_yahoo, settings, now)
        cg_check, unpriced = coingecko.result()
        ex_checks, served_by = exchange.result()
        perp_checks, perpetual_of = derivatives.result()
        checks = [
            cg_check,
            *ex_checks,
            *perp_checks,
            guardian.result(),
            *reddit.result(),
            *rss.result(),
            *fred.result(),
            yahoo.result(),
        ]
    served = Counter(e for e in served_by.values() if e)
    no_bars = sorted(s for s, e in served_by.items() if not e)
    price_checks = [cg_check, *ex_checks]
    report = Report(
        settings.source,
        checks=checks,
        coins={
            "universe": len(coins),
            "price_sources_working": [c.source for c in price_checks if c.status == OK],
            "price_sources_reached": any(c.reachable for c in price_checks),
            "served_by": dict(served.most_common()),
            "exchange_of": served_by,
            "no_bars_anywhere": no_bars,
            "not_priced_by_coingecko": unpriced,
            "no_price_at_all": sorted(set(no_bars) & set(unpriced)),
            "derivatives_exchanges": list(settings.derivatives_exchanges),
            "perpetuals_served_by": dict(Counter(e for e in perpetual_of.values() if e).most_common()),
            "perpetual_of": perpetual_of,
            "no_perpetual_anywhere": sorted(s for s, e in perpetual_of.items() if not e),
        },
    )
    report.seconds = time.perf_counter() - began
    return report


# ------------------------------------------------------------------------------------------ output
def _heading(report: Report) -> str:
    """What the platform runs on, and what the doctor checks."""
    if report.source == "live":
        return "CRYPTO_SOURCE=live: checking the live sources the platform uses."
    if not report.live_checked:
        return (
            "CRYPTO_SOURCE=simulated: the platform runs on simulated sources (offline, deterministic) and uses no\n"
            "live source, so none is checked. To check what CRYPTO_SOURCE=live would use: python -m cli.doctor --live"
        )
    return (
        "CRYPTO_SOURCE=simulated: the platform runs on simulated sources and uses none of these.\n"
        "Checking what CRYPTO_SOURCE=live would use:"
    )


def _symbols(symbols: Sequence[str], universe: int) -> str:
    """``(n): A, B`` for a list of coins; ``all`` for the whole universe."""
    listed = "all" if symbols and len(symbols) == universe else ", ".join(symbols) or "-"
    return f"({len(symbols)}): {listed}"


def _coin_lines(coins: Mapping[str, Any]) -> list[str]:
    """Which exchange serves the coins' bars, and which coins have no price."""
    universe = coins["universe"]
    if not coins["price_sources_working"]:
        why = (
            "could be reached" if not coins["price_sources_reached"] else "works (CoinGecko and every exchange failed)"
        )
        return [f"coins: {universe}; no price source {why}: none of the {universe} coins has a price"]
    served = ", ".join(f"{name} {n}" for name, n in coins["served_by"].items()) or "none"
    cg_failed = "coingecko" not in coins["price_sources_working"]
    return [
        f"coins: {universe}; bars served by: {served}",
        f"no bars on any exchange {_symbols(coins['no_bars_anywhere'], universe)}",
        f"not priced by CoinGecko {_symbols(coins['not_priced_by_coingecko'], universe)}"
        + (" (CoinGecko failed)" if cg_failed else ""),
        f"no price at all {_symbols(coins['no_price_at_all'], universe)}",
        *_perpetual_lines(coins),
    ]


def _perpetual_lines(coins: Mapping[str, Any]) -> list[str]:
    """Which exchange serves the coins' perpetual swaps (derivatives), and which coins have none."""
    if not coins.get("derivatives_exchanges"):
        return ["perpetuals: no derivatives exchange configured (CRYPTO_DERIVATIVES_EXCHANGES is empty)"]
    served = ", ".join(f"{name} {n}" for name, n in coins["perpetuals_served_by"].items()) or "none"
    by_exchange: dict[str, list[str]] = {}
    for symbol, exchange in coins["perpetual_of"].items():
        if exchange:
            by_exchange.setdefault(exchange, []).append(symbol)
    return [
        f"perpetuals served by: {served}",
        *(f"  {name}: {', '.join(sorted(symbols))}" for name, symbols in by_exchange.items()),
        f"no perpetual on any derivatives exchange {_symbols(coins['no_perpetual_anywhere'], coins['universe'])}",
    ]


def _verdict(report: Report) -> str:
    """The last line: whether the required sources work."""
    took = f"({report.seconds:.2f} s)"
    if report.ok:
        return f"OK: every required source works {took}"
    offline = "" if report.reached else "no source could be reached (is this machine offline?); "
    unaffected = "; the simulated platform does not use them" if report.source == "simulated" else ""
    return f"NOT READY: {offline}required sources failed: {', '.join(report.failed)}{unaffected} {took}"


DETAIL_WIDTH = 110


def _full_details(report: Report) -> list[str]:
    """The details the table cut, whole (an exchange's own reason for refusing us, ...)."""
    cut = [c for c in report.checks if len(c.detail) > DETAIL_WIDTH]
    return ["in full:", *(f"  {c.source}: {c.detail}" for c in cut), ""] if cut else []


def render(report: Report) -> str:
    """The report as a heading, a plain-text table, the details it cut in full, a coin summary and a verdict."""
    if not report.live_checked:
        return _heading(report)
    header = ("source", "required", "status", "reachable", "key", "rate limit", "detail", "s")
    rows = [
        (
            c.source,
            "yes" if c.required else "no",
            c.status,
            {True: "yes", False: "no", None: "-"}[c.reachable],
            c.key,
            c.rate_limit or "-",
            c.detail if len(c.detail) <= DETAIL_WIDTH else c.detail[: DETAIL_WIDTH - 3] + "...",
            f"{c.seconds:.2f}",
        )
        for c in report.checks
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    table = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    table.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(
        [_heading(report), "", *table, "", *_full_details(report), *_coin_lines(report.coins), "", _verdict(report)]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the checks and print the report (or ``--json``); the exit status says whether to go live."""
    parser = argparse.ArgumentParser(prog="python -m cli.doctor", description=__doc__.splitlines()[0])
    parser.add_argument("--live", action="store_true", help="check the live sources even when CRYPTO_SOURCE=simulated")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the sources' retry warnings: the table has the outcome
    try:
        settings = load_settings()
        coins = load_universe(settings.universe_file)
    except (SettingsError, ValueError, OSError) as exc:
        print(f"doctor: {exc}", file=sys.stderr)
        return 2
    if settings.source == "simulated" and not args.live:
        report = Report(settings.source, live_checked=False)
    else:
        report = run_doctor(settings, coins)
    print(json.dumps(report.as_json(), indent=2, default=str) if args.json else render(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
