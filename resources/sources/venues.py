"""What differs between exchanges, one entry per exchange (freqtrade's per-exchange facts are the model).

Everything :mod:`resources.sources.exchange` and :mod:`resources.sources.exchange_errors` need to
know about one venue is here, from the venue's API documentation: how many 5-minute bars one
``fetch_ohlcv`` call returns, the query parameter that asks for 5-minute bars, where the venue's own
bar row says when the bar closes, and the error codes or messages by which it says that one pair
(not the whole exchange) cannot be served. An exchange not listed gets :data:`DEFAULT`.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    "okx": VenueFacts(
        page_limit=100,
        interval_query=("bar", "5m"),
        # 51001 "Instrument ID doesn't exist.", 51014 "Index doesn't exist."
        pair_errors=frozenset({"51001", "51014"}),
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
