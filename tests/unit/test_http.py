"""The shared HTTP client: retries, Retry-After, timeouts, malformed bodies, circuit breaker."""

from datetime import datetime, timedelta

import pytest

from crypto_assets.common import live_run_deadline
from resources.retry_policy import (
    CircuitBreaker,
    CircuitOpenError,
    DeadlineExceeded,
    SourceError,
    parse_retry_after,
    utc_timestamp,
)
from resources.sources.http import HttpSource
from resources.sources.price_sources import PriceSourceResource
from testkit.fakes.price_servers import FakeCoinGecko


def _client(server, **kwargs) -> HttpSource:
    kwargs.setdefault("backoff_base_s", 0.01)
    kwargs.setdefault("timeout_s", 0.5)
    return HttpSource("coingecko", server.url, **kwargs)


def test_retries_transient_faults_then_succeeds():
    with FakeCoinGecko() as server:
        server.faults.extend(["500", "429", "truncated", "timeout"])
        with _client(server, max_attempts=5) as http:
            payload = http.get_json("/coins/markets", {"ids": "bitcoin"})
        assert payload[0]["id"] == "bitcoin"
        assert http.stats.retries == 4
        assert http.stats.throttled == 1


def test_gives_up_with_a_clear_error_after_the_last_try():
    with FakeCoinGecko() as server:
        server.faults.extend(["500"] * 3)
        with _client(server, max_attempts=3) as http, pytest.raises(SourceError) as err:
            http.get_json("/coins/markets", {"ids": "bitcoin"})
    assert "coingecko" in str(err.value) and "after 3 attempts" in str(err.value) and "HTTP 500" in str(err.value)


def test_honours_retry_after_and_refuses_waits_beyond_its_limit():
    slept: list[float] = []
    with FakeCoinGecko() as server:
        server.faults.extend(["429-long"])
        with _client(server, max_retry_after_s=60, sleep=slept.append) as http, pytest.raises(SourceError) as err:
            http.get_json("/coins/markets", {"ids": "bitcoin"})
    assert "Retry-After 119s" in str(err.value)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_non_retryable_status_fails_at_once():
    with FakeCoinGecko() as server:
        with _client(server) as http, pytest.raises(SourceError) as err:
            http.get_json("/nope")
        assert len(server.requests) == 1
    assert err.value.status == 404


def test_circuit_breaker_opens_after_repeated_failures_and_half_opens_after_cooldown():
    clock = [0.0]
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=30, clock=lambda: clock[0])
    with FakeCoinGecko() as server:
        server.faults.extend(["500"] * 4)
        with _client(server, max_attempts=2, breaker=breaker) as http:
            for _ in range(2):
                with pytest.raises(SourceError):
                    http.get_json("/coins/markets", {"ids": "bitcoin"})
            sent = len(server.requests)
            with pytest.raises(CircuitOpenError):
                http.get_json("/coins/markets", {"ids": "bitcoin"})
            assert len(server.requests) == sent  # no call while open
            assert breaker.snapshot()["state"] == "open"
            clock[0] = 31.0
            assert breaker.state == "half_open"
            assert http.get_json("/coins/markets", {"ids": "bitcoin"})[0]["id"] == "bitcoin"
            assert breaker.state == "closed"


class FakeClock:
    """POSIX time that moves only when the client sleeps."""

    def __init__(self, now: float):
        self.now = now
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


WINDOW_END = datetime(2026, 11, 20, 12, 5)


def _persistent_429(server: FakeCoinGecko) -> None:
    server.faults.extend(["429-long"] * 20)  # Retry-After: 119, on every request


def _shipped(server: FakeCoinGecko, clock: FakeClock, deadline: datetime | None) -> HttpSource:
    """CoinGecko's client with the settings PriceSourceResource ships."""
    shipped = PriceSourceResource()
    return HttpSource(
        "coingecko",
        server.url,
        timeout_s=shipped.timeout_s,
        max_attempts=shipped.max_attempts,
        backoff_base_s=shipped.backoff_base_s,
        max_retry_after_s=shipped.max_retry_after_s,
        deadline=deadline,
        sleep=clock.sleep,
        clock=clock.time,
    )


def test_without_a_deadline_a_persistent_429_is_waited_out_for_476_s():
    clock = FakeClock(utc_timestamp(WINDOW_END + timedelta(minutes=1)))
    with FakeCoinGecko() as server:
        _persistent_429(server)
        with _shipped(server, clock, None) as http, pytest.raises(SourceError, match="after 5 attempts"):
            http.get_json("/coins/markets", {"ids": "bitcoin"})
    assert clock.slept == [119.0] * 4 and sum(clock.slept) == 476


def test_a_live_runs_deadline_stops_the_wait_before_it_passes_the_window():
    """The scheduled run starts a minute after its window closed; its deadline is 5 minutes after."""
    started = WINDOW_END + timedelta(minutes=1)
    deadline = WINDOW_END + timedelta(minutes=5)
    clock = FakeClock(utc_timestamp(started))
    with FakeCoinGecko() as server:
        _persistent_429(server)
        with _shipped(server, clock, deadline) as http, pytest.raises(DeadlineExceeded) as err:
            http.get_json("/coins/markets", {"ids": "bitcoin"})
        assert len(server.requests) == 3
    assert clock.slept == [119.0, 119.0], "two waits fit in the 240 s left; the third would not"
    assert clock.now <= utc_timestamp(deadline)
    message = str(err.value)
    assert message.startswith("coingecko: HTTP 429")
    assert "would wait 119 s past the run's deadline (2026-11-20 12:10:00 UTC, 2 s left)" in message
    assert "gap healing re-runs the window" in message
    assert err.value.status == 429 and http.stats.retries == 2


def test_no_retry_is_attempted_once_the_deadline_has_passed():
    clock = FakeClock(utc_timestamp(WINDOW_END + timedelta(minutes=6)))
    with FakeCoinGecko() as server:
        server.faults.extend(["500"])
        with _client(server, deadline=WINDOW_END + timedelta(minutes=5), sleep=clock.sleep, clock=clock.time) as http:
            with pytest.raises(
                DeadlineExceeded,
                match=r"HTTP 500.*past the run's deadline \(2026-11-20 12:10:00 "
                r"UTC, passed 60 s ago\)",
            ):
                http.get_json("/coins/markets", {"ids": "bitcoin"})
            assert len(server.requests) == 1 and clock.slept == []
            # a new request still gets its first attempt (it waits on nothing)
            assert http.get_json("/coins/markets", {"ids": "bitcoin"})[0]["id"] == "bitcoin"


def test_a_deadline_with_time_left_lets_transient_faults_be_retried():
    clock = FakeClock(utc_timestamp(WINDOW_END))
    with FakeCoinGecko() as server:
        server.faults.extend(["500", "429", "truncated"])
        with _client(server, deadline=WINDOW_END + timedelta(minutes=5), sleep=clock.sleep, clock=clock.time) as http:
            assert http.get_json("/coins/markets", {"ids": "bitcoin"})[0]["id"] == "bitcoin"
    assert http.stats.retries == 3


@pytest.mark.parametrize(
    ("windows", "created_after_end", "expected"),
    [
        (1, timedelta(minutes=1), WINDOW_END + timedelta(minutes=5)),  # the scheduled run of the window just closed
        (1, timedelta(minutes=7), WINDOW_END + timedelta(minutes=5)),  # an early re-run keeps the window's deadline
        (1, timedelta(hours=2), None),  # gap healing of an older window may wait
        (288, timedelta(minutes=1), None),  # a day's backfill may wait
    ],
)
def test_only_live_runs_get_a_deadline(windows, created_after_end, expected):
    deadline = live_run_deadline(WINDOW_END, windows, WINDOW_END + created_after_end, timedelta(minutes=5))
    assert deadline == expected
