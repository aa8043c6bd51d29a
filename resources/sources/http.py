"""The one retrying HTTP client every external source goes through.

``HttpSource`` wraps an ``httpx.Client`` with: per-request timeouts, the retries of
:mod:`resources.retry_policy` on transient failures (connection errors, timeouts, 5xx, 429 with
``Retry-After``, a body its parser rejects), a client-side rate limit (minimum spacing between
calls), the circuit breaker shared by every client of the same source in the process, an optional
deadline (no retry or ``Retry-After`` wait that would end past it: a live run must not outlast its
window), and a :class:`SourceError` that names the source, the URL and what went wrong after the last try.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import httpx

from resources.retry_policy import (
    TRANSIENT_STATUS,
    CallStats,
    CircuitBreaker,
    RetryPolicy,
    SourceError,
    TransientError,
    circuit_breaker_for,
    parse_retry_after,
    retry_call,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
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


class MalformedPayload(ValueError):
    """A response body that cannot be parsed as what the endpoint promises (retried, then fatal)."""


def json_body(response: httpx.Response) -> Any:
    """The response's JSON; :class:`MalformedPayload` when it is not UTF-8 JSON (an HTML error
    page, a truncated body, bytes in another encoding)."""
    try:
        return json.loads(response.content)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        excerpt = _excerpt(response.content[:120].decode("utf-8", "replace"))
        raise MalformedPayload(f"not JSON ({exc.__class__.__name__}: {exc}); body starts {excerpt!r}") from exc


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
        self.name = name
        self.policy = RetryPolicy(
            max_attempts=max_attempts,
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
            max_retry_after_s=max_retry_after_s,
            deadline=deadline,
            sleep=sleep,
            clock=clock,
        )
        self.min_interval_s = min_interval_s
        self.breaker = breaker or circuit_breaker_for(name)
        self.stats = CallStats()
        self._sleep = sleep
        self._last_url: str | None = None
        self._last_call = 0.0
        self._client = httpx.Client(
            base_url=base_url,
            headers=dict(headers or {}),
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            follow_redirects=True,
        )

    @property
    def base_url(self) -> str:
        """The URL relative paths are sent to (without a trailing slash)."""
        return str(self._client.base_url).rstrip("/")

    def close(self) -> None:
        """Close the underlying connection pool."""
        self._client.close()

    def __enter__(self) -> HttpSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self.stats.slept_s += seconds
            self._sleep(seconds)

    def check_deadline(self, seconds: float, problem: str, url: str | None = None, status: int | None = None) -> None:
        """Raise :class:`DeadlineExceeded` (counted as a failed call) when a wait of ``seconds``
        for ``problem`` would end past the deadline; do nothing without a deadline."""
        error = self.policy.late(self.name, seconds, problem, url=url, status=status)
        if error is not None:
            self.breaker.record_failure(self.name)
            raise error

    def _throttle(self) -> None:
        if self.min_interval_s > 0:
            gap = time.monotonic() - self._last_call
            if gap < self.min_interval_s:
                self._wait(self.min_interval_s - gap)
        self._last_call = time.monotonic()

    def _send(
        self, method: str, path: str, parse: Callable[[httpx.Response], T], max_bytes: int | None, **kwargs: Any
    ) -> tuple[T, httpx.Response]:
        """One attempt: a 2xx response and its parsed body, a :class:`TransientError` or a final :class:`SourceError`."""
        self._throttle()
        self.stats.requests += 1
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:  # a connection error or a timeout
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        self.stats.answered += 1
        url = self._last_url = redact_url(response.request.url)
        response.read()
        status = response.status_code
        if response.is_redirect:  # only seen for a request sent with follow_redirects=False
            raise SourceError(
                self.name,
                f"HTTP {status} redirect to {response.headers.get('Location')!r} (not followed)",
                status=status,
                url=url,
            )
        if status in TRANSIENT_STATUS:
            retry_after = None
            if status == 429:
                self.stats.throttled += 1
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if retry_after is not None and retry_after > self.policy.max_retry_after_s:
                    raise SourceError(
                        self.name,
                        f"rate limited (HTTP 429) with Retry-After {retry_after:.0f}s, "
                        f"more than the {self.policy.max_retry_after_s:.0f}s this client waits",
                        status=429,
                        url=url,
                    )
            raise TransientError(f"HTTP {status}: {_excerpt(response.text)}", status=status, retry_after=retry_after)
        if not 200 <= status < 300:
            raise SourceError(self.name, f"HTTP {status}: {_excerpt(response.text)}", status=status, url=url)
        if max_bytes is not None and len(response.content) > max_bytes:
            raise SourceError(
                self.name, f"response of {len(response.content):,} bytes exceeds the {max_bytes:,}-byte limit", url=url
            )
        try:
            return parse(response), response
        except MalformedPayload as exc:
            raise TransientError(f"malformed {'JSON' if parse is json_body else 'payload'}: {exc}") from exc

    def fetch(
        self,
        method: str,
        path: str,
        parse: Callable[[httpx.Response], T],
        *,
        max_bytes: int | None = None,
        **kwargs: Any,
    ) -> tuple[T, httpx.Response]:
        """Send a request and parse its 2xx body with ``parse``, retrying transient failures (a
        body ``parse`` rejects with :class:`MalformedPayload` among them); a body over
        ``max_bytes`` fails at once. Raises :class:`SourceError` when the source fails."""

        self._last_url = None

        def give_up(exc: BaseException, attempts: int) -> BaseException:
            if isinstance(exc, SourceError):
                return exc
            problem = exc.problem if isinstance(exc, TransientError) else f"{type(exc).__name__}: {exc}"
            return SourceError(
                self.name, f"failed after {attempts} attempts; last error: {problem}", url=self._last_url or path
            )

        return retry_call(
            lambda: self._send(method, path, parse, max_bytes, **kwargs),
            self.policy,
            name=self.name,
            give_up=give_up,
            stats=self.stats,
            breaker=self.breaker,
            url=path,
            logger=log,
        )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request, retrying transient failures; return a 2xx response or raise SourceError."""
        return self.fetch(method, path, lambda r: None, **kwargs)[1]

    def get_json(self, path: str, params: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """GET and decode JSON; a truncated or non-JSON body is retried like a transient fault."""
        return self.fetch("GET", path, json_body, params=params, **kwargs)[0]


def _excerpt(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."
