"""What differs between exchanges, one entry per exchange (freqtrade's per-exchange facts are the model).

Everything :mod:`resources.sources.exchange` and :mod:`resources.sources.exchange_errors` need to
know about one venue is here, from the venue's API documentation: how many 5-minute bars one
``fetch_ohlcv`` call returns, the query parameter that asks for 5-minute bars, where the venue's own
bar row says when the bar closes, and the error codes or messages by which it says that one pair
(not the whole exchange) cannot be served; for the perpetual swaps (:mod:`resources.sources.derivatives`),
the market types ccxt loads, each series' page size and how far back its history goes
(:class:`SwapFacts`). An exchange not listed gets :data:`DEFAULT`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class SwapFacts:
    """One exchange's documented facts about its perpetual swaps' market data.

    ``market_types``: ccxt's ``fetchMarkets`` types that hold its linear perpetuals.
    ``funding_limit`` / ``open_interest_limit``: funding settlements / 5-minute open-interest
    observations one call returns at most (mark and index bars page like spot bars, by
    ``VenueFacts.page_limit``). ``funding_history`` / ``open_interest_history``: how far back
    before now the venue serves that history (None: since the listing). ``funding_until``: the
    parameter that bounds a funding-history page at its newest end and what to add to the
    inclusive bound (ccxt's unified ``until``, or the venue's exclusive one where ccxt has none).
    """

    market_types: tuple[str, ...]
    funding_limit: int
    open_interest_limit: int
    funding_history: timedelta | None = None
    open_interest_history: timedelta | None = None
    funding_until: tuple[str, int] = ("until", 0)


@dataclass(frozen=True)
class VenueFacts:
    """One exchange's documented facts.

    ``page_limit``: bars one ``fetch_ohlcv`` call returns at most. ``interval_query``: the query
    parameter and value by which the request asks for 5-minute bars (None: not checked).
    ``close_time_field``: index of the bar's inclusive close time (ms) in the venue's raw bar row,
    where its format has one. ``pair_errors``: the venue's error codes and messages that are about
    the one pair asked for (unknown, delisted, invalid symbol), besides ccxt's ``BadSymbol``.
    """

    page_limit: int = 100
    interval_query: tuple[str, str] | None = None
    close_time_field: int | None = None
    pair_errors: frozenset[str] = frozenset()
    swap: SwapFacts | None = None


#: Per ccxt id. OKX serves at most 100 older bars a call whatever ``limit`` says (ccxt asks for
#: 300); Coinbase Exchange at most 300 a request; Kraken only its latest 720 bars (2.5 days).
VENUES: dict[str, VenueFacts] = {
    "binance": VenueFacts(
        page_limit=1000,
        interval_query=("interval", "5m"),
        close_time_field=6,
        # -1121 "Invalid symbol." (unknown or delisted pair), -1100 illegal characters in the symbol
        pair_errors=frozenset({"-1121", "-1100"}),
    ),
    # USD-M futures (fapi): mark/index klines 1000 a call through ccxt (the API allows 1500),
    # fundingRate 1000, futures/data/openInterestHist 500 and only the latest 30 days.
    "binanceusdm": VenueFacts(
        page_limit=1000,
        interval_query=("interval", "5m"),
        close_time_field=6,
        pair_errors=frozenset({"-1121", "-1100"}),
        swap=SwapFacts(
            market_types=("linear",),
            funding_limit=1000,
            open_interest_limit=500,
            open_interest_history=timedelta(days=30),
        ),
    ),
    # Mark/index candles 100 a call; funding-rate-history 100 and the last 3 months;
    # rubik contracts open-interest-history 100 a call and its latest 1,440 entries (5 days at 5m).
    "okx": VenueFacts(
        page_limit=100,
        interval_query=("bar", "5m"),
        # 51001 "Instrument ID doesn't exist.", 51014 "Index doesn't exist."
        pair_errors=frozenset({"51001", "51014"}),
        swap=SwapFacts(
            market_types=("swap",),
            funding_limit=100,
            open_interest_limit=100,
            funding_history=timedelta(days=90),
            open_interest_history=timedelta(days=5),
            funding_until=("after", 1),
        ),
    ),
    # v5 market: mark/index klines 1000 a call, funding/history 200, open-interest 200.
    "bybit": VenueFacts(
        page_limit=1000,
        interval_query=("interval", "5"),
        # retCode 10001 is any parameter error: only its unknown-symbol message is about the pair
        pair_errors=frozenset({"params error: symbol invalid"}),
        swap=SwapFacts(
            market_types=("linear",),
            funding_limit=200,
            open_interest_limit=200,
        ),
    ),
    "coinbaseexchange": VenueFacts(
        page_limit=300,
        interval_query=("granularity", "300"),
        pair_errors=frozenset({"NotFound"}),  # HTTP 404 {"message": "NotFound"}: no such product
    ),
    "kraken": VenueFacts(
        page_limit=720,
        interval_query=("interval", "5"),
        pair_errors=frozenset({"EQuery:Unknown asset pair", "EQuery:Invalid asset pair"}),
    ),
}
DEFAULT = VenueFacts()


def venue_facts(exchange_id: str) -> VenueFacts:
    """The facts of ``exchange_id`` (a ccxt id), or :data:`DEFAULT`."""
    return VENUES.get(exchange_id, DEFAULT)


def swap_exchanges() -> list[str]:
    """The ccxt ids whose perpetual swaps are documented here (:class:`SwapFacts`)."""
    return [exchange_id for exchange_id, facts in VENUES.items() if facts.swap is not None]
