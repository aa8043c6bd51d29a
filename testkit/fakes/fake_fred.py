"""A fake FRED (and Yahoo Finance chart) server on loopback, that can be told to misbehave.

Routes, in the formats shared/EXTERNAL_APIS.md describes:

- ``GET /fred/series/observations`` — FRED's observations: ``api_key`` checked (400 with FRED's
  ``{"error_code", "error_message"}`` body when missing or unknown), ``series_id`` (400 for an
  unknown series), ``observation_start``/``observation_end`` filter, and real-time periods
  (``realtime_start``/``realtime_end``, default today): every vintage of an observation valid
  somewhere in the period is returned, its ``realtime_start``/``realtime_end`` clipped to the
  period, as FRED does (a revised value appears once per vintage). FRED's cap is ENFORCED: a
  period holding more than 2,000 of the series' vintage dates gets FRED's 400 ("... exceeds the
  maximum number of vintage dates allowed (2000)"). Values are strings, ``"."`` for missing.
- ``GET /fred/series/vintagedates`` — the series' vintage dates in the real-time period, paged
  with ``limit`` (at most 10,000) and ``offset``, with ``count``.
- ``GET /v8/finance/chart/<ticker>`` — Yahoo's chart answer for ``period1``/``period2`` (daily bars
  at 14:30 UTC, ``gmtoffset`` -18000); an unknown ticker gets Yahoo's 404 error envelope.

Faults are queued per route (``fred`` or ``yahoo``) with :meth:`FakeMacroServer.fail` and used one
per request: ``429`` (``Retry-After: 0``), ``500``, ``503``, ``400`` (FRED's error body),
``malformed`` (JSON cut in half).
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import Message
from urllib.parse import unquote

from testkit.fakes.loopback import LoopbackServer

API_KEY = "test-fred-key"
MAX_VINTAGE_DATES = 2000


class _Answer(Exception):
    """Raised with ``(status, body, headers)`` to answer a request early."""


@dataclass(frozen=True)
class Vintage:
    """One published value of an observation: what it was from ``realtime_start`` on."""

    observation_date: date
    value: str  # FRED sends strings; "." is missing
    realtime_start: date


class FakeMacroServer(LoopbackServer):
    """A threaded HTTP server standing in for FRED and Yahoo Finance's chart endpoint."""

    def __init__(self) -> None:
        super().__init__()
        self.fred: dict[str, list[Vintage]] = {}
        self.yahoo: dict[str, list[tuple[date, float | None]]] = {}
        self.faults: dict[str, deque[str]] = defaultdict(deque)
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()

    def respond(
        self, method: str, path: str, query: dict[str, str], headers: Message, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Record the request and route it to FRED or Yahoo (404 for anything else)."""
        self._record(path, query)
        try:
            if path == "/fred/series/observations":
                status, payload, extra = self._fred(query)
            elif path == "/fred/series/vintagedates":
                status, payload, extra = self._fred_vintage_dates(query)
            else:
                status, payload, extra = self._other(path, query)
        except _Answer as answer:
            status, payload, extra = answer.args
        return status, {"Content-Type": "application/json", **extra}, payload

    def _other(self, path: str, query: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        if path.startswith("/v8/finance/chart/"):
            return self._yahoo(unquote(path.rsplit("/", 1)[1]), query)
        return 404, b'{"error": "not found"}', {}

    # ---------------------------------------------------------------- set-up
    def add_fred(self, series_id: str, observation_date: date, value: str, realtime_start: date) -> None:
        """Publish a vintage of a FRED observation."""
        self.fred.setdefault(series_id, []).append(Vintage(observation_date, value, realtime_start))

    def add_daily_series(self, series_id: str, first: date, last: date, *, business_days: bool) -> None:
        """A daily rate as FRED holds it (DFF every day, DGS10 business days): each day's value
        published the next day, every tenth one revised a week later, so the series has a
        vintage date almost every day (about 2,000 in eight years)."""
        day = first
        while day <= last:
            if not business_days or day.weekday() < 5:
                value = 4.0 + (day.toordinal() % 97) / 100
                self.add_fred(series_id, day, f"{value:.2f}", day + timedelta(days=1))
                if day.toordinal() % 10 == 0:
                    self.add_fred(series_id, day, f"{value + 0.01:.2f}", day + timedelta(days=8))
            day += timedelta(days=1)

    def add_yahoo(self, ticker: str, day: date, close: float | None) -> None:
        """Publish a daily bar's close (None: Yahoo's null close)."""
        self.yahoo.setdefault(ticker, []).append((day, close))

    def fail(self, route: str, *faults: str) -> None:
        """Queue faults for ``route`` ('fred' or 'yahoo'), one per coming request."""
        self.faults[route].extend(faults)

    def _record(self, path: str, params: dict[str, str]) -> None:
        with self._lock:
            self.requests.append((path, params))

    def _fault(self, route: str) -> tuple[int, bytes, dict[str, str]] | None:
        with self._lock:
            if not self.faults[route]:
                return None
            fault = self.faults[route].popleft()
        if fault == "429":
            return 429, b'{"error_code": 429, "error_message": "Too Many Requests."}', {"Retry-After": "0"}
        if fault in ("500", "503"):
            return int(fault), b"<html>upstream error</html>", {}
        if fault == "400":
            return 400, json.dumps({"error_code": 400, "error_message": "Bad Request. Injected."}).encode(), {}
        if fault == "malformed":
            return 200, b'{"observations": [{"date": "2026-', {}
        raise ValueError(f"unknown fault {fault!r}")

    # ---------------------------------------------------------------- FRED
    def _fred_request(self, params: dict[str, str]) -> tuple[str, date, date, date]:
        """(series, real-time start, real-time end, today) of a valid request; else raise the
        answer it gets (an injected fault or FRED's 400)."""
        fault = self._fault("fred")
        if fault:
            raise _Answer(*fault)
        if params.get("api_key") != API_KEY:
            raise _Answer(*self._fred_error("Bad Request.  The value for variable api_key is not registered."))
        series_id = params.get("series_id", "")
        if series_id not in self.fred:
            raise _Answer(*self._fred_error("Bad Request.  The series does not exist."))
        today = datetime.now(UTC).date()
        try:
            first = date.fromisoformat(params.get("realtime_start", today.isoformat()))
            last = date.fromisoformat(params.get("realtime_end", today.isoformat()))
        except ValueError:
            raise _Answer(
                *self._fred_error("Bad Request.  Variable realtime_start or realtime_end is not a date.")
            ) from None
        if last < first:
            raise _Answer(*self._fred_error("Bad Request.  The real-time start is after the real-time end."))
        return series_id, first, last, today

    def vintage_dates(self, series_id: str, first: date, last: date, today: date) -> list[date]:
        """The series' vintage dates (days a value was published or revised) in [first, last]."""
        return sorted({v.realtime_start for v in self.fred[series_id] if first <= v.realtime_start <= min(last, today)})

    def _fred_vintage_dates(self, params: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        series_id, first, last, today = self._fred_request(params)
        limit = min(int(params.get("limit", 10000)), 10000)
        offset = int(params.get("offset", 0))
        dates = self.vintage_dates(series_id, first, last, today)
        body = {
            "realtime_start": first.isoformat(),
            "realtime_end": last.isoformat(),
            "order_by": "vintage_date",
            "sort_order": "asc",
            "count": len(dates),
            "offset": offset,
            "limit": limit,
            "vintage_dates": [d.isoformat() for d in dates[offset : offset + limit]],
        }
        return 200, json.dumps(body).encode(), {}

    def _fred(self, params: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        series_id, rt_first, rt_last, today = self._fred_request(params)
        held = len(self.vintage_dates(series_id, rt_first, rt_last, today))
        if held > MAX_VINTAGE_DATES:
            return self._fred_error(
                f"Bad Request.  There are {held} vintage dates in the specified real-time period. This exceeds "
                f"the maximum number of vintage dates allowed ({MAX_VINTAGE_DATES})."
            )
        first = date.fromisoformat(params.get("observation_start", "1776-07-04"))
        last = date.fromisoformat(params.get("observation_end", "9999-12-31"))
        by_date: dict[date, list[Vintage]] = defaultdict(list)
        for vintage in self.fred[series_id]:
            if first <= vintage.observation_date <= last and vintage.realtime_start <= today:
                by_date[vintage.observation_date].append(vintage)
        observations = []
        for observed in sorted(by_date):
            vintages = sorted(by_date[observed], key=lambda v: v.realtime_start)
            ends = [v.realtime_start - timedelta(days=1) for v in vintages[1:]] + [date(9999, 12, 31)]
            for vintage, end in zip(vintages, ends):
                valid_from, valid_to = max(vintage.realtime_start, rt_first), min(end, rt_last)
                if valid_from <= valid_to:
                    observations.append(
                        {
                            "realtime_start": valid_from.isoformat(),
                            "realtime_end": valid_to.isoformat(),
                            "date": observed.isoformat(),
                            "value": vintage.value,
                        }
                    )
        body = {
            "realtime_start": rt_first.isoformat(),
            "realtime_end": rt_last.isoformat(),
            "observation_start": first.isoformat(),
            "observation_end": last.isoformat(),
            "units": "lin",
            "output_type": 1,
            "file_type": "json",
            "order_by": "observation_date",
            "sort_order": "asc",
            "count": len(observations),
            "offset": 0,
            "limit": 100000,
            "observations": observations,
        }
        return 200, json.dumps(body).encode(), {}

    @staticmethod
    def _fred_error(message: str) -> tuple[int, bytes, dict[str, str]]:
        return 400, json.dumps({"error_code": 400, "error_message": message}).encode(), {}

    # ---------------------------------------------------------------- Yahoo
    def _yahoo(self, ticker: str, params: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        fault = self._fault("yahoo")
        if fault:
            return fault
        if ticker not in self.yahoo:
            body = {
                "chart": {
                    "result": None,
                    "error": {"code": "Not Found", "description": "No data found, symbol may be delisted"},
                }
            }
            return 404, json.dumps(body).encode(), {}
        period1, period2 = int(params.get("period1", 0)), int(params.get("period2", 2**31))
        bars = []
        for day, close in sorted(self.yahoo[ticker]):
            stamp = int(datetime(day.year, day.month, day.day, 14, 30, tzinfo=UTC).timestamp())
            if period1 <= stamp < period2:
                bars.append((stamp, close))
        body = {
            "chart": {
                "result": [
                    {
                        "meta": {
                            "currency": "USD",
                            "symbol": ticker,
                            "exchangeTimezoneName": "America/New_York",
                            "gmtoffset": -18000,
                            "dataGranularity": "1d",
                        },
                        "timestamp": [s for s, _ in bars],
                        "indicators": {
                            "quote": [{"close": [c for _, c in bars], "open": [c for _, c in bars]}],
                            "adjclose": [{"adjclose": [c for _, c in bars]}],
                        },
                    }
                ],
                "error": None,
            }
        }
        return 200, json.dumps(body).encode(), {}
