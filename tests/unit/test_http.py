"""The shared HTTP client: retries, Retry-After, timeouts, malformed bodies, circuit breaker."""

import pytest

from resources.http import CircuitBreaker, CircuitOpenError, HttpSource, SourceError, parse_retry_after
from tests.fakes.price_servers import FakeCoinGecko


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
