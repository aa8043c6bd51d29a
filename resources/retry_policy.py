"""The one retry and circuit-breaker policy of every boundary: sources, warehouse, notebook client.

Errors are classified here, once (:func:`is_transient`): what a client raises as a
:class:`TransientError` (an answer with a status of :data:`TRANSIENT_STATUS`: 408, 425, 429, 5xx;
a connection error or a timeout; a body that could not be parsed); ccxt's ``NetworkError`` family
(``RequestTimeout``, ``ExchangeNotAvailable``, ``DDoSProtection``, ``RateLimitExceeded``) without
an answer or with a transient status; a deadlock, lock-wait timeout or lost connection of
MySQL/MariaDB, or SQLite's busy database. Anything else (another 4xx, ccxt's ``BadSymbol``,
``BadRequest``, ``AuthenticationError``, ...) is final. :mod:`resources.sources.exchange_errors`
adds what only an exchange has (a refusal, an error about one pair).

:func:`retry_call` is the only retry loop: tenacity runs it, waiting the answer's ``Retry-After``
or an exponential back-off with jitter, never past the run's deadline (:meth:`RetryPolicy.late`).
Each source has a process-wide :class:`CircuitBreaker` (:func:`circuit_breaker_for`).

Standard library and tenacity only: :mod:`api.client` ships to notebooks and imports it.
"""

from __future__ import annotations

import email.utils
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import tenacity

log = logging.getLogger(__name__)

T = TypeVar("T")

#: HTTP statuses worth another try: timeouts, too early, rate limits, server and CDN errors.
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 522, 524})
#: MySQL/MariaDB errors worth another try: lock wait timeout, deadlock, server gone, lost connection.
TRANSIENT_MYSQL = frozenset({1205, 1213, 2006, 2013})


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


class TransientError(Exception):
    """An attempt's outcome worth another try (a 5xx or 429 answer, a truncated body): ``problem``
    says what happened, ``retry_after`` the seconds the answer asked to wait."""

    def __init__(self, problem: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(problem)
        self.problem = problem
        self.status = status
        self.retry_after = retry_after


def is_transient(exc: BaseException, status: int | None = None) -> bool:
    """Whether ``exc`` (raised by a call answered with ``status``; None: no answer or not known) is
    worth another try (see the module's docstring). ccxt's classes are told by name: the notebook
    client imports this module without ccxt."""
    if isinstance(exc, TransientError):
        return True
    if type(exc).__module__.startswith("ccxt."):
        network = any(cls.__name__ == "NetworkError" for cls in type(exc).__mro__)
        return network and (status is None or status in TRANSIENT_STATUS)
    orig = getattr(exc, "orig", None)  # a SQLAlchemy DBAPIError wraps the driver's error
    if isinstance(orig, sqlite3.OperationalError):
        return "locked" in str(orig).lower()
    code = next(iter(getattr(orig, "args", None) or ()), None)
    return code in TRANSIENT_MYSQL


def problem_of(exc: BaseException) -> str:
    """What went wrong, for messages: a :class:`TransientError`'s problem, else ``Type: message``."""
    return exc.problem if isinstance(exc, TransientError) else f"{type(exc).__name__}: {exc}"


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def utc_timestamp(value: datetime) -> float:
    """POSIX seconds of ``value`` (a naive value is UTC, as everywhere in the platform)."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


@dataclass
class CircuitBreaker:
    """Stops calling a source after ``failure_threshold`` consecutive failed calls, for ``cooldown_s``.

    After the cool-down one trial call is let through (half-open): success closes the circuit,
    failure opens it for another cool-down. Its ``clock`` is injectable (the soak test's simulated
    time), which pybreaker's is not.
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

    def record_failure(self, source: str) -> None:
        """Count a failed call; open (or re-open) the circuit at the threshold."""
        with self._lock:
            self.consecutive_failures += 1
            trial_failed = self._trial_since is not None
            # Calls already in flight when the circuit opened neither re-open nor extend it.
            if trial_failed or (self.opened_at is None and self.consecutive_failures >= self.failure_threshold):
                self._trial_since = None
                self.opened_at = self.clock()
                self.times_opened += 1
                log.warning(
                    "%s: circuit breaker opened after %d consecutive failed calls; calls suspended for %.0fs",
                    source,
                    self.consecutive_failures,
                    self.cooldown_s,
                )

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


@dataclass
class RetryPolicy:
    """How one client retries: at most ``max_attempts`` tries, waiting the answer's ``Retry-After``
    (at most ``max_retry_after_s``: a longer one fails the call) or ``backoff_base_s x 2^(n-1)``
    (at most ``backoff_max_s``; with ``jitter`` a random time between half that and that) before
    try n + 1, never past ``deadline`` (naive UTC or aware; None: no deadline). ``clock`` gives
    POSIX seconds; tests pass a fake one along with ``sleep``."""

    max_attempts: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 180.0
    deadline: datetime | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        share = 0.5 if self.jitter else 1.0
        self._backoff: tenacity.wait.wait_base = tenacity.wait_exponential(
            multiplier=self.backoff_base_s * share, max=self.backoff_max_s * share
        )
        if self.jitter:  # half the step fixed, half random: uniform(step / 2, step)
            self._backoff += tenacity.wait_random_exponential(
                multiplier=self.backoff_base_s / 2, max=self.backoff_max_s / 2
            )

    def wait_s(self, state: tenacity.RetryCallState) -> float:
        """Seconds to wait before the next try: the answer's ``Retry-After``, else the back-off."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return exc.retry_after
        return float(self._backoff(state))

    def late(
        self, source: str, seconds: float, problem: str, *, url: str | None = None, status: int | None = None
    ) -> DeadlineExceeded | None:
        """The error to raise when a wait of ``seconds`` (for ``problem``) from now would end past
        the deadline; None when it fits or there is no deadline."""
        if self.deadline is None:
            return None
        left = utc_timestamp(self.deadline) - self.clock()
        if seconds <= left:
            return None
        when = (self.deadline.astimezone(UTC) if self.deadline.tzinfo else self.deadline).replace(tzinfo=None)
        return DeadlineExceeded(
            source,
            f"{problem}; giving up: retrying would wait {seconds:.0f} s past the run's deadline "
            f"({when.isoformat(sep=' ', timespec='seconds')} UTC, "
            f"{f'{left:.0f} s left' if left >= 0 else f'passed {-left:.0f} s ago'}); gap healing re-runs the window",
            status=status,
            url=url,
        )


def retry_call(
    attempt: Callable[[], T],
    policy: RetryPolicy,
    *,
    name: str,
    give_up: Callable[[BaseException, int], BaseException],
    stats: CallStats | None = None,
    breaker: CircuitBreaker | None = None,
    url: str | None = None,
    logger: logging.Logger = log,
) -> T:
    """Run ``attempt`` until it returns, retrying transient errors under ``policy``: the one retry
    loop of the platform.

    A final error, or the last transient one, ends the call: ``give_up`` turns it and the number of
    attempts made into the error raised; a wait that would end past the deadline raises
    :class:`DeadlineExceeded` at once. ``breaker`` (when given) is asked before the call and told
    its outcome (an error with a true ``source_is_up`` counts as a success); ``stats`` counts the
    retries and the seconds waited; each retry is logged as a warning on ``logger``.
    """
    if breaker is not None:
        breaker.before_call(name)
    late: DeadlineExceeded | None = None

    def stop(state: tenacity.RetryCallState) -> bool:
        nonlocal late
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None:
            status = exc.status if isinstance(exc, TransientError) else None
            late = policy.late(name, state.upcoming_sleep, problem_of(exc), url=url, status=status)
        return late is not None or state.attempt_number >= policy.max_attempts

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        problem = problem_of(exc) if exc else "?"
        logger.warning(
            "%s: attempt %d/%d failed (%s); retrying in %.2fs",
            name,
            state.attempt_number,
            policy.max_attempts,
            problem,
            state.upcoming_sleep,
        )
        if stats is not None:
            stats.retries += 1
            stats.slept_s += state.upcoming_sleep

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        stop=stop,
        wait=policy.wait_s,
        sleep=lambda seconds: policy.sleep(seconds) if seconds > 0 else None,
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        result = retrying(attempt)
    except Exception as exc:
        error = late or give_up(exc, retrying.statistics.get("attempt_number", 1))
        if breaker is not None:
            breaker.record_success() if getattr(error, "source_is_up", False) else breaker.record_failure(name)
        if error is exc:
            raise
        raise error from exc
    if breaker is not None:
        breaker.record_success()
    return result
