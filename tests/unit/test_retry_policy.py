"""The one retry policy: errors classified once into transient and final, one loop per call."""

import sqlite3

import ccxt
import pytest
from sqlalchemy.exc import OperationalError

from resources.retry_policy import RetryPolicy, SourceError, TransientError, is_transient, retry_call


@pytest.mark.parametrize(
    ("exc", "status", "transient"),
    [
        (TransientError("HTTP 503"), 503, True),
        (ccxt.RequestTimeout("binance GET ..."), None, True),
        (ccxt.RateLimitExceeded("429"), 429, True),
        (ccxt.ExchangeNotAvailable("502"), 502, True),
        (ccxt.ExchangeNotAvailable("answered 400"), 400, False),
        (ccxt.BadSymbol("unknown"), 400, False),
        (ccxt.BadRequest("bad"), 400, False),
        (ccxt.AuthenticationError("key"), 401, False),
        (OperationalError("INSERT", {}, Exception(1213, "Deadlock found")), None, True),
        (OperationalError("INSERT", {}, Exception(2013, "Lost connection")), None, True),
        (OperationalError("INSERT", {}, Exception(1054, "Unknown column")), None, False),
        (OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked")), None, True),
        (SourceError("coingecko", "HTTP 404"), 404, False),
        (ValueError("a bug"), None, False),
    ],
)
def test_errors_are_classified_once(exc, status, transient):
    assert is_transient(exc, status) is transient


def test_one_loop_waits_retry_after_then_the_backoff_and_gives_up_with_the_last_problem():
    slept: list[float] = []
    answers = iter([TransientError("HTTP 429", status=429, retry_after=7.0), TransientError("HTTP 503")])

    def attempt() -> str:
        raise next(answers, TransientError("HTTP 502"))

    policy = RetryPolicy(max_attempts=3, backoff_base_s=2.0, sleep=slept.append, jitter=False)
    with pytest.raises(SourceError, match="3 attempts; last: HTTP 502"):
        retry_call(
            attempt,
            policy,
            name="demo",
            give_up=lambda exc, n: SourceError("demo", f"{n} attempts; last: {exc}"),
        )
    assert slept == [7.0, 4.0]


def test_a_final_error_is_not_retried():
    calls = []

    def attempt() -> None:
        calls.append(1)
        raise SourceError("demo", "HTTP 404")

    with pytest.raises(SourceError, match="HTTP 404"):
        retry_call(attempt, RetryPolicy(sleep=lambda s: None), name="demo", give_up=lambda exc, n: exc)
    assert len(calls) == 1
