"""What an exchange's failed answer means for the run: decided here, once, from ccxt's exception
hierarchy, the HTTP status and the venue's own error codes (:mod:`resources.sources.venues`).

=============  ==================================================================  ======================
scope          when                                                                what happens
=============  ==================================================================  ======================
``refused``    HTTP 451 or 403 (geo-blocking, a CDN's block page), any call        exchange skipped for
                                                                                   the run
``pair``       a per-pair call (bars, a perpetual's series) answered ccxt          that coin only: next
               ``BadSymbol``, or an ``ExchangeError`` (``BadRequest``, ...) with    exchange, else missing
               one of the venue's pair-level codes (Binance -1121, OKX 51001,       with the reason
               Bybit ``symbol invalid``, Coinbase ``NotFound``, Kraken
               ``EQuery:Unknown asset pair``)
``transient``  ``NetworkError`` (``RequestTimeout``, ``ExchangeNotAvailable``,      retried; then the
               ``DDoSProtection``/``RateLimitExceeded``) without an answer; any     exchange is
               answer with a retryable status (429, 5xx), whatever class ccxt      unavailable
               made of its body; a body ccxt could not parse
``final``      anything else (``AuthenticationError``, ``PermissionDenied``, an     the source fails
               ``ExchangeError`` with no pair-level code, a load_markets error)
=============  ==================================================================  ======================

:func:`venue_reason` gives the venue's own words (the message of its JSON error body, or the text
of its HTML page) without ccxt's boilerplate (its id, method, URL and status line), whole.
"""

from __future__ import annotations

import json
import re
from enum import Enum
from typing import Any

import ccxt

from resources.retry_policy import TRANSIENT_STATUS, is_transient
from resources.sources.venues import VenueFacts

#: Answers that mean "not from here" (geo-blocking, a CDN's block page): the exchange is skipped.
REFUSAL_STATUS = frozenset({403, 451})
#: Keys of a venue's JSON error body that hold its code or message (Binance ``code``/``msg``, OKX
#: ``code``/``msg``/``sCode``/``sMsg``, Bybit ``retCode``/``retMsg``, Coinbase ``message``, Kraken ``error``,
#: CoinGecko-like ``error``).
_CODE_KEYS = ("code", "sCode", "retCode")
_MESSAGE_KEYS = ("msg", "message", "error", "sMsg", "retMsg", "error_message")
#: Longest text kept of an answer without a message field (an HTML block page), in characters.
PAGE_TEXT_LIMIT = 500


class Scope(Enum):
    """How far a failed call's consequence reaches."""

    REFUSED = "refused"
    PAIR = "pair"
    TRANSIENT = "transient"
    FINAL = "final"


def _json(body: Any) -> Any:
    try:
        return json.loads(body) if isinstance(body, str) and body.strip()[:1] in ("{", "[") else None
    except ValueError:
        return None


def _values(payload: Any, keys: tuple[str, ...]) -> list[str]:
    """The non-empty strings under ``keys`` of a JSON object (and of the objects in its ``data`` list)."""
    if not isinstance(payload, dict):
        return []
    found: list[str] = []
    for key in keys:
        value = payload.get(key)
        items = value if isinstance(value, list) else [value]
        found.extend(str(v) for v in items if v not in (None, "", 0, "0") and not isinstance(v, (dict, list)))
    data = payload.get("data")
    for row in data if isinstance(data, list) else []:
        found.extend(_values(row, keys))
    return found


def classify(exc: BaseException, status: int | None, body: Any, facts: VenueFacts, *, per_pair: bool) -> Scope:
    """The :class:`Scope` of ``exc``, raised by a call answered with ``status`` and ``body`` (None:
    no answer); ``per_pair``: the call asked about one pair (its bars), not the whole exchange."""
    if status in REFUSAL_STATUS:
        return Scope.REFUSED
    if per_pair and isinstance(exc, ccxt.ExchangeError):
        payload = _json(body)
        said = set(_values(payload, _CODE_KEYS)) | set(_values(payload, _MESSAGE_KEYS))
        if isinstance(exc, ccxt.BadSymbol) or said & facts.pair_errors:
            return Scope.PAIR
    if status in TRANSIENT_STATUS:  # 429, 5xx: retried, whatever class ccxt made of the body
        return Scope.TRANSIENT
    if not isinstance(exc, ccxt.BaseError):
        return Scope.TRANSIENT  # ccxt's parsers raise TypeError, KeyError, ... on a payload they cannot read
    return Scope.TRANSIENT if is_transient(exc, status) else Scope.FINAL


def venue_reason(exc: BaseException, body: Any) -> str:
    """The venue's own words about the failure: its JSON error message(s) whole, else the text of
    the page it answered (tags stripped), else the exception's text without ccxt's
    ``<id> <METHOD> <url>`` prefix (these two at most :data:`PAGE_TEXT_LIMIT` characters)."""
    payload = _json(body)
    messages = _values(payload, _MESSAGE_KEYS)
    if messages:
        return "; ".join(dict.fromkeys(messages))
    if payload is not None:
        return _cut(json.dumps(payload))
    if isinstance(body, str) and body.strip():
        return _cut(re.sub(r"<[^>]*>", " ", body))
    text = " ".join(str(exc).split())
    return _cut(re.sub(r"^\S+ (?:GET|POST|PUT|DELETE) \S+\s*", "", text) or text)


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= PAGE_TEXT_LIMIT else text[:PAGE_TEXT_LIMIT] + "..."


def pair_reason(exchange_id: str, exc: BaseException, body: Any) -> str:
    """``<exchange>: <ccxt error>: <the venue's words>``, e.g. ``binance: BadSymbol: Invalid symbol.``."""
    return f"{exchange_id}: {type(exc).__name__}: {venue_reason(exc, body)}"
