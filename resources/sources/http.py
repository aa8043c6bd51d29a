"""The one retrying HTTP client every external source goes through.

``HttpSource`` wraps an ``httpx.Client`` with: per-request timeouts, exponential backoff with
full jitter on transient failures (connection errors, timeouts, 5xx, truncated bodies),
``Retry-After`` on 429, a client-side rate limit (minimum spacing between calls), a circuit
breaker shared by every client of the same source in the process, an optional deadline (no
retry or ``Retry-After`` wait that would end past it: a live run must not outlast its window),
and a :class:`SourceError` that names the source, the URL and what went wrong after the last try.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from resources.sources.retry_after import parse_retry_after

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 522, 524})
# Query parameters whose values are credentials (the Guardian's api-key, FRED's api_key, ...).
SECRET_QUERY_PARAMS = frozenset({"api-key", "api_key", "apikey", "key", "token", "access_token", "client_secret"})


def redact_url(url: httpx.URL | str) -> str:
    """``url`` with the values of credential query parameters replaced by ``REDACTED``."""
    parsed = httpx.URL(str(url))
    items = parsed.params.multi_items()
    if not any(k.lower() in SECRET_QUERY_PARAMS for k, _ in items):
        return str(parsed)
    return str(parsed.copy_with(params=[(k, "REDACTED" if k.lower() in SECRET_QUERY_PARAMS else v) for k, v in items]))


class _RedactRequestUrls(logging.Filter):
    """httpx logs every request's full URL at INFO: blank the credentials in it first."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(redact_url(a) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


logging.getLogger("httpx").addFilter(_RedactRequestUrls())


class SourceError(RuntimeError):
    """A source failed for good: after the last retry, or with a non-retryable answer."""

    def __init__(self, source: str, message: str, *, status: int | None = None, url: str | None = None):
        self.source = source
        self.status = status
        self.url = url
        where = f" ({url})" if url else ""
        super().__init__(f"{source}: {message}{where}")


class CircuitOpenError(SourceError):
    """Calls to a source are suspended: it failed repeatedly and is cooling down."""


class DeadlineExceeded(SourceError):
    """A retry (or its wait) would end past the run's deadline: the run fails now, and gap
    healing re-runs the window later."""


def utc_timestamp(value: datetime) -> float:
    """POSIX seconds of ``value`` (a naive value is UTC, as everywhere in the platform)."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def deadline_error(
    source: str,
    deadline: datetime | None,
    now: float,
    seconds: float,
    problem: str,
    *,
    url: str | None = None,
    status: int | None = None,
) -> DeadlineExceeded | None:
    """The error to raise when a wait of ``seconds`` (for ``problem``) starting at ``now`` (POSIX
    seconds) would end past ``deadline``; None when it fits or there is no deadline. Every client
    with its own retry loop (``HttpSource``, the ccxt exchanges) decides with this."""
    if deadline is None:
        return None
    left = utc_timestamp(deadline) - now
    if seconds <= left:
        return None
    when = (deadline.astimezone(UTC) if deadline.tzinfo else deadline).replace(tzinfo=None)
    return DeadlineExceeded(
        source,
        f"{problem}; giving up: retrying would wait {seconds:.0f} s past the run's deadline "
        f"({when.isoformat(sep=' ', timespec='seconds')} UTC, "
        f"{f'{left:.0f} s left' if left >= 0 else f'passed {-left:.0f} s ago'}); gap healing re-runs the window",
        status=status,
        url=url,
    )


@dataclass
class CircuitBreaker:
    """Stops calling a source after ``failure_threshold`` consecutive failed calls, for ``cooldown_s``.

    After the cool-down one trial call is let through (half-open): success closes the circuit,
    failure opens it for another cool-down.
    """

    failure_threshold: int = 5
    cooldown_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    consecutive_failures: int = 0
    opened_at: float | None = None
    times_opened: int = 0
    _trial_since: float | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half_open``."""
        if self.opened_at is None:
            return "closed"
        if self.clock() - self.opened_at >= self.cooldown_s:
            return "half_open"
        return "open"

    def before_call(self, source: str) -> None:
        """Raise :class:`CircuitOpenError` while the circuit is open."""
        with self._lock:
            state, now = self.state, self.clock()
            # Half-open lets one trial call through; the others wait for its outcome (a trial that
            # never reported back frees the slot after another cool-down).
            trial_busy = (
                state == "half_open" and self._trial_since is not None and now - self._trial_since < self.cooldown_s
            )
            if state == "open" or trial_busy:
                remaining = self.cooldown_s - (now - (self.opened_at or 0.0))
                raise CircuitOpenError(
                    source,
                    f"circuit open after {self.consecutive_failures} consecutive failures; "
                    + (
                        f"calls suspended for another {remaining:.0f}s"
                        if state == "open"
                        else "a trial call is in flight"
                    ),
                )
            if state == "half_open":
                self._trial_since = now

    def record_success(self) -> None:
        """Close the circuit."""
        with self._lock:
            self.consecutive_failures = 0
            self.opened_at = None
            self._trial_since = None

    def record_failure(self) -> bool:
        """Count a failed call; open (or re-open) the circuit at the threshold. True if it opened."""
        with self._lock:
            self.consecutive_failures += 1
            trial_failed = self._trial_since is not None
            # Calls already in flight when the circuit opened neither re-open nor extend it.
            if trial_failed or (self.opened_at is None and self.consecutive_failures >= self.failure_threshold):
                self._trial_since = None
                self.opened_at = self.clock()
                self.times_opened += 1
                return True
            return False

    def snapshot(self) -> dict[str, Any]:
        """State for run metadata and logs."""
        return {
            "state": self.state,
            "consecutive_failures": self.consecutive_failures,
            "times_opened": self.times_opened,
        }


_BREAKERS: dict[str, CircuitBreaker] = {}
_BREAKERS_LOCK = threading.Lock()


def circuit_breaker_for(source: str, **kwargs: Any) -> CircuitBreaker:
    """The process-wide circuit breaker of ``source`` (created on first use)."""
    with _BREAKERS_LOCK:
        breaker = _BREAKERS.get(source)
        if breaker is None:
            breaker = _BREAKERS[source] = CircuitBreaker(**kwargs)
        return breaker


def reset_circuit_breakers() -> None:
    """Forget every breaker's state (tests, or an operator after fixing a source)."""
    with _BREAKERS_LOCK:
        _BREAKERS.clear()


@dataclass
class CallStats:
    """What one client did: requests sent, those answered (any HTTP status), retries, throttling waits."""

    requests: int = 0
    answered: int = 0
    retries: int = 0
    throttled: int = 0
    slept_s: float = 0.0

    def as_metadata(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "answered": self.answered,
            "retries": self.retries,
            "throttled": self.throttled,
            "backoff_seconds": round(self.slept_s, 3),
        }


class HttpSource:
    """A retrying, rate-limited, circuit-broken JSON/text client for one external source."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 15.0,
        max_attempts: int = 5,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_retry_after_s: float = 180.0,
        min_interval_s: float = 0.0,
        breaker: CircuitBreaker | None = None,
        deadline: datetime | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ):
        """``deadline`` (naive UTC or aware): no retry is attempted, and no wait started, that
        would end after it; None: retries are bounded by ``max_attempts`` and
        ``max_retry_after_s`` only. ``clock`` gives POSIX seconds (tests pass a fake one along with
        ``sleep``). A request sent with ``follow_redirects=False`` fails on a 3xx answer, naming
        its ``Location``."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.name = name
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.max_retry_after_s = max_retry_after_s
        self.min_interval_s = min_interval_s
        self.breaker = breaker or circuit_breaker_for(name)
        self.stats = CallStats()
        self.deadline = deadline
        self._sleep = sleep
        self._clock = clock
        self._last_call = 0.0
        self._client = httpx.Client(
            base_url=base_url,
            headers=dict(headers or {}),
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            follow_redirects=True,
        )

    def close(self) -> None:
        """Close the underlying connection pool."""
        self._client.close()

    def __enter__(self) -> HttpSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _record_failure(self) -> None:
        if self.breaker.record_failure():
            log.warning(
                "%s: circuit breaker opened after %d consecutive failed calls; calls suspended for %.0fs",
                self.name,
                self.breaker.consecutive_failures,
                self.breaker.cooldown_s,
            )

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self.stats.slept_s += seconds
            self._sleep(seconds)

    def check_deadline(self, seconds: float, problem: str, url: str | None = None, status: int | None = None) -> None:
        """Raise :class:`DeadlineExceeded` (counted as a failed call) when a wait of ``seconds``
        for ``problem`` would end past the deadline; do nothing without a deadline."""
        error = deadline_error(self.name, self.deadline, self._clock(), seconds, problem, url=url, status=status)
        if error is not None:
            self._record_failure()
            raise error

    def wait_before_retry(self, seconds: float, problem: str, url: str | None = None) -> None:
        """Wait ``seconds`` before another try (counted as a retry), unless the wait would end past
        the deadline: then :class:`DeadlineExceeded` at once."""
        self.check_deadline(seconds, problem, url)
        self.stats.retries += 1
        self._wait(seconds)

    def _throttle(self) -> None:
        if self.min_interval_s > 0:
            gap = time.monotonic() - self._last_call
            if gap < self.min_interval_s:
                self._wait(self.min_interval_s - gap)
        self._last_call = time.monotonic()

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.backoff_max_s, self.backoff_base_s * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request, retrying transient failures; return a 2xx response or raise SourceError."""
        self.breaker.before_call(self.name)
        last_problem = "no attempt made"
        last_status: int | None = None
        url = path
        for attempt in range(1, self.max_attempts + 1):
            self._throttle()
            self.stats.requests += 1
            delay: float | None = None
            last_status = None
            try:
                response = self._client.request(method, path, **kwargs)
                self.stats.answered += 1
                url = str(response.request.url.copy_remove_param("api-key").copy_remove_param("api_key"))
                response.read()
            except (httpx.TimeoutException, httpx.TransportError, httpx.RemoteProtocolError) as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
            else:
                status = last_status = response.status_code
                if 200 <= status < 300:
                    self.breaker.record_success()
                    return response
                if response.is_redirect:  # only seen for a request sent with follow_redirects=False
                    self._record_failure()
                    raise SourceError(
                        self.name,
                        f"HTTP {status} redirect to {response.headers.get('Location')!r} (not followed)",
                        status=status,
                        url=url,
                    )
                if status not in RETRYABLE_STATUS:
                    self._record_failure()
                    raise SourceError(self.name, f"HTTP {status}: {_excerpt(response.text)}", status=status, url=url)
                last_problem = f"HTTP {status}: {_excerpt(response.text)}"
                if status == 429:
                    self.stats.throttled += 1
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    if retry_after is not None:
                        if retry_after > self.max_retry_after_s:
                            self._record_failure()
                            raise SourceError(
                                self.name,
                                f"rate limited (HTTP 429) with Retry-After {retry_after:.0f}s, "
                                f"more than the {self.max_retry_after_s:.0f}s this client waits",
                                status=429,
                                url=url,
                            )
                        delay = retry_after
            if attempt == self.max_attempts:
                break
            wait = delay if delay is not None else self._backoff(attempt)
            self.check_deadline(wait, last_problem, url, last_status)
            log.warning(
                "%s: attempt %d/%d failed (%s); retrying in %.2fs",
                self.name,
                attempt,
                self.max_attempts,
                last_problem,
                wait,
            )
            self.stats.retries += 1
            self._wait(wait)
        self._record_failure()
        raise SourceError(self.name, f"failed after {self.max_attempts} attempts; last error: {last_problem}", url=url)

    def get_json(self, path: str, params: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """GET and decode JSON; a truncated or non-JSON body is retried like a transient fault."""
        last_error = ""
        for attempt in range(1, self.max_attempts + 1):
            response = self.request("GET", path, params=params, **kwargs)
            try:
                return json.loads(response.content)
            except ValueError as exc:
                last_error = f"{exc} in body {_excerpt(response.text)!r}"
                if attempt < self.max_attempts:
                    self.wait_before_retry(self._backoff(attempt), f"malformed JSON: {last_error}", path)
        self._record_failure()
        raise SourceError(self.name, f"malformed JSON after {self.max_attempts} attempts: {last_error}", url=path)


def _excerpt(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."
