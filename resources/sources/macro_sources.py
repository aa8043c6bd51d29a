"""Macro sources for ``macro_indicators``: FRED (with publication dates), Yahoo Finance, and a simulated source.

Rows: ``series_id, observation_date, value, realtime_start, source``. ``realtime_start`` is the
day the value was first published; the features use a value only from then on.

* FRED ``/fred/series/observations`` is asked for every vintage from the observation start on
  (a vintage before it cannot hold the observation) and each observation keeps its *first*
  release: the value as it was known on the day it came out, and that day. A later revision is
  ignored rather than moved back in time (using it from its own publication day would need a
  vintage per row; the key is one row an observation). FRED refuses a real-time period holding
  more than 2,000 vintage dates (HTTP 400), which a daily series such as DFF reaches within about
  eight years: the series' vintage dates since the observation start are listed first
  (``/fred/series/vintagedates``) and the real-time period is split into consecutive periods of at
  most 2,000 of them. An observation first released in one period reappears in the later ones
  with its real-time start clipped to theirs, so the earliest real-time start over the periods is
  still its first release. FRED's missing marker ``"."`` becomes a NULL value.
* Yahoo Finance has no official API: the chart endpoint
  (``/v8/finance/chart/{ticker}?period1=&period2=&interval=1d``) gives daily closes; a close is
  published on its trading day. Best effort: a failure skips the ticker with a warning.
* ``simulated``: deterministic series shaped like the real ones (business-day rates published the
  next day, a weekly dollar index, a monthly CPI published six weeks later, market closes), each
  value a pure function of (series, date), and only what would be published by ``today``.

Every network call goes through :class:`resources.sources.http.HttpSource`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from resources.config.settings import Settings
from resources.sources.http import HttpSource, SourceError
from resources.sources.simulated import hashed_normal

log = logging.getLogger(__name__)

FRED_BASE_URL = "https://api.stlouisfed.org"
YAHOO_BASE_URL = "https://query1.finance.yahoo.com"
#: Market series read from Yahoo Finance (daily closes).
YAHOO_TICKERS = ("^GSPC", "^VIX", "DX-Y.NYB", "GC=F")
MACRO_COLUMNS = ("series_id", "observation_date", "value", "realtime_start", "source")
#: FRED refuses a request whose real-time period holds more vintage dates than this.
FRED_MAX_VINTAGE_DATES = 2000
#: FRED's "no end" real-time date.
FRED_LATEST = "9999-12-31"
_FRED_VINTAGES_PAGE = 10000  # the vintagedates endpoint's largest ``limit``
_YAHOO_HEADERS = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) crypto-data-platform/0.1",
    "Accept": "application/json",
}


def empty_macro_frame() -> pd.DataFrame:
    """A ``macro_indicators`` frame with no rows."""
    return pd.DataFrame(
        {
            "series_id": pd.Series(dtype=object),
            "observation_date": pd.Series(dtype="datetime64[us]"),
            "value": pd.Series(dtype=float),
            "realtime_start": pd.Series(dtype="datetime64[us]"),
            "source": pd.Series(dtype=object),
        }
    )


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        return empty_macro_frame()
    frame = pd.DataFrame(rows, columns=list(MACRO_COLUMNS))
    frame["observation_date"] = pd.to_datetime(frame["observation_date"]).astype("datetime64[us]")
    frame["realtime_start"] = pd.to_datetime(frame["realtime_start"]).astype("datetime64[us]")
    frame["value"] = frame["value"].astype(float)
    return frame


# ------------------------------------------------------------------------------------------ FRED
class FredClient:
    """FRED series observations, first release of each with its publication date."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        http: HttpSource | None = None,
        deadline: datetime | None = None,
        max_vintage_dates: int = FRED_MAX_VINTAGE_DATES,
        **http_options: Any,
    ):
        """``base_url``: FRED's host when None; ``http_options`` override the client's retry settings."""
        if not api_key:
            raise ValueError("FRED needs an API key (FRED_API_KEY)")
        self.api_key = api_key
        self.max_vintage_dates = max_vintage_dates
        # FRED allows about 2 requests a second; 429s are retried with Retry-After by HttpSource.
        options = {"timeout_s": 20.0, "max_attempts": 5, "min_interval_s": 0.5, "deadline": deadline, **http_options}
        self.http = http or HttpSource("fred", base_url or FRED_BASE_URL, **options)

    def _get(self, series_id: str, path: str, params: dict[str, Any]) -> Any:
        try:
            return self.http.get_json(
                path, {"series_id": series_id, "api_key": self.api_key, "file_type": "json", **params}
            )
        except SourceError as exc:
            raise type(exc)("fred", f"{series_id}: {_fred_error(exc)}", status=exc.status, url=exc.url) from exc

    def vintage_dates(self, series_id: str, since: date) -> list[date]:
        """The days on which ``series_id`` was published or revised, from ``since`` on (paged)."""
        dates: list[date] = []
        while True:
            payload = self._get(
                series_id,
                "/fred/series/vintagedates",
                {
                    "realtime_start": since.isoformat(),
                    "realtime_end": FRED_LATEST,
                    "limit": _FRED_VINTAGES_PAGE,
                    "offset": len(dates),
                },
            )
            page = payload.get("vintage_dates") if isinstance(payload, dict) else None
            if not isinstance(page, list):
                raise SourceError("fred", f"{series_id}: vintagedates answer has no 'vintage_dates' list")
            try:
                dates.extend(date.fromisoformat(str(day)) for day in page)
            except ValueError as exc:
                raise SourceError("fred", f"{series_id}: malformed vintage date ({exc})") from None
            total = payload.get("count")
            if not page or not isinstance(total, int) or len(dates) >= total:
                return dates

    def realtime_periods(self, series_id: str, since: date) -> list[tuple[str, str]]:
        """Consecutive real-time periods from ``since`` on, each holding at most
        ``max_vintage_dates`` of the series' vintage dates (none when nothing was published since)."""
        vintages = sorted(set(self.vintage_dates(series_id, since)))
        periods = []
        for offset in range(0, len(vintages), self.max_vintage_dates):
            chunk = vintages[offset : offset + self.max_vintage_dates]
            first = since if offset == 0 else chunk[0]
            last = FRED_LATEST if offset + self.max_vintage_dates >= len(vintages) else chunk[-1].isoformat()
            periods.append((first.isoformat(), last))
        return periods

    def observations(self, series_id: str, start: date, end: date) -> pd.DataFrame:
        """Observations dated in [start, end): the first release of each, ``"."`` as NULL."""
        payloads = [
            self._get(
                series_id,
                "/fred/series/observations",
                {
                    "observation_start": start.isoformat(),
                    "observation_end": (end - timedelta(days=1)).isoformat(),
                    "realtime_start": first,
                    "realtime_end": last,
                },
            )
            for first, last in self.realtime_periods(series_id, start)
        ]
        return parse_fred_observations(series_id, payloads, start, end)

    def close(self) -> None:
        """Close the HTTP client."""
        self.http.close()


def _detail(exc: SourceError) -> str:
    """What went wrong, without the source's name and the URL that SourceError adds around it."""
    text = str(exc)
    prefix = f"{exc.source}: "
    if text.startswith(prefix):
        text = text[len(prefix) :]
    suffix = f" ({exc.url})" if exc.url else ""
    return text[: -len(suffix)] if suffix and text.endswith(suffix) else text


def _fred_error(exc: SourceError) -> str:
    """FRED's own error message where the body has one (``{"error_code", "error_message"}``)."""
    text = _detail(exc)
    marker = '"error_message":'
    if marker in text:
        return f"HTTP {exc.status}: {text.split(marker, 1)[1].split(chr(34))[1]}"
    return text


def parse_fred_observations(series_id: str, payloads: Any, start: date, end: date) -> pd.DataFrame:
    """Rows of FRED observations answers (one answer, or a list of them for consecutive real-time
    periods): one per date, its earliest vintage; ``"."`` -> NULL."""
    first: dict[date, tuple[date, float]] = {}
    for payload in payloads if isinstance(payloads, list) else [payloads]:
        if not isinstance(payload, dict) or not isinstance(payload.get("observations"), list):
            raise SourceError("fred", f"{series_id}: answer has no 'observations' list")
        for item in payload["observations"]:
            try:
                observed = date.fromisoformat(item["date"])
                published = date.fromisoformat(item["realtime_start"])
                raw = str(item["value"]).strip()
                value = math.nan if raw in (".", "") else float(raw)
            except (KeyError, TypeError, ValueError) as exc:
                raise SourceError("fred", f"{series_id}: malformed observation {item!r}") from exc
            if not start <= observed < end:
                continue
            known = first.get(observed)
            if known is None or published < known[0]:
                first[observed] = (published, value)
    rows = [
        {
            "series_id": series_id,
            "observation_date": observed,
            "value": value,
            "realtime_start": published,
            "source": "fred",
        }
        for observed, (published, value) in sorted(first.items())
    ]
    return _frame(rows)


# ------------------------------------------------------------------------------------------ Yahoo
class YahooClient:
    """Daily closes from Yahoo Finance's chart endpoint (unofficial: best effort)."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        http: HttpSource | None = None,
        deadline: datetime | None = None,
        **http_options: Any,
    ):
        """``base_url``: Yahoo Finance's host when None; ``http_options`` override the client's retry settings."""
        options = {"timeout_s": 15.0, "max_attempts": 3, "min_interval_s": 0.2, "deadline": deadline, **http_options}
        self.http = http or HttpSource("yahoo", base_url or YAHOO_BASE_URL, headers=_YAHOO_HEADERS, **options)

    def daily_closes(self, ticker: str, start: date, end: date) -> pd.DataFrame:
        """Closes of trading days in [start, end), each published on its own day."""
        period1 = int(datetime.combine(start, dtime(), UTC).timestamp())
        period2 = int(datetime.combine(end + timedelta(days=1), dtime(), UTC).timestamp())
        try:
            payload = self.http.get_json(
                f"/v8/finance/chart/{quote(ticker, safe='')}",
                {"period1": period1, "period2": period2, "interval": "1d", "events": "history"},
            )
        except SourceError as exc:
            raise SourceError("yahoo", f"{ticker}: {_detail(exc)}", status=exc.status, url=exc.url) from exc
        return parse_yahoo_chart(ticker, payload, start, end)

    def close(self) -> None:
        """Close the HTTP client."""
        self.http.close()


def parse_yahoo_chart(ticker: str, payload: Any, start: date, end: date) -> pd.DataFrame:
    """Rows from a chart answer: the exchange-local date of each bar, its close (null closes dropped)."""
    chart = payload.get("chart") if isinstance(payload, dict) else None
    if not isinstance(chart, dict):
        raise SourceError("yahoo", f"{ticker}: answer has no 'chart'")
    if chart.get("error"):
        error = chart["error"]
        raise SourceError(
            "yahoo",
            f"{ticker}: {error.get('code')}: {error.get('description')}"
            if isinstance(error, dict)
            else f"{ticker}: {error}",
        )
    results = chart.get("result") or []
    if not results:
        return empty_macro_frame()
    result = results[0]
    try:
        stamps = result.get("timestamp") or []
        closes = result["indicators"]["quote"][0].get("close") or []
        offset = int(result.get("meta", {}).get("gmtoffset") or 0)
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise SourceError("yahoo", f"{ticker}: malformed chart answer") from exc
    rows = []
    for stamp, close in zip(stamps, closes):
        if close is None or not math.isfinite(float(close)):
            continue
        local_day = datetime.fromtimestamp(int(stamp) + offset, UTC).date()
        if start <= local_day < end:
            rows.append(
                {
                    "series_id": ticker,
                    "observation_date": local_day,
                    "value": float(close),
                    "realtime_start": local_day,
                    "source": "yahoo",
                }
            )
    return _frame(sorted(rows, key=lambda r: r["observation_date"]))


# ------------------------------------------------------------------------------------------ simulated
@dataclass(frozen=True)
class _SimSeries:
    level: float
    daily_sd: float
    cadence: str  # 'business', 'daily', 'monthly'
    lag_days: int  # publication lag after the observation date
    relative: bool  # the walk is in log space (prices) rather than levels (rates)


_SIMULATED = {
    "DGS10": _SimSeries(4.2, 0.05, "business", 1, False),
    "DFF": _SimSeries(4.33, 0.01, "daily", 1, False),
    "DTWEXBGS": _SimSeries(121.0, 0.003, "business", 7, True),
    "CPIAUCSL": _SimSeries(315.0, 0.002, "monthly", 43, True),
    "^GSPC": _SimSeries(5800.0, 0.01, "business", 0, True),
    "^VIX": _SimSeries(16.0, 0.06, "business", 0, True),
    "DX-Y.NYB": _SimSeries(104.0, 0.004, "business", 0, True),
    "GC=F": _SimSeries(2600.0, 0.009, "business", 0, True),
}
_SIM_EPOCH = date(2020, 1, 1)


def _series_key(series_id: str) -> int:
    value = 1469598103934665603
    for byte in series_id.encode():
        value = ((value ^ byte) * 1099511628211) & 0x7FFFFFFFFFFFFFFF
    return value


def _simulated_path(series_id: str, days: int) -> np.ndarray:
    """Value on each day since the epoch: a mean-reverting walk, a pure function of (series, day)."""
    spec = _SIMULATED.get(series_id, _SimSeries(100.0, 0.005, "business", 1, True))
    shocks = hashed_normal(np.int64(_series_key(series_id)), np.arange(days + 1, dtype=np.int64))
    walk = np.empty(days + 1)
    state = 0.0
    for i, shock in enumerate(shocks):
        state = 0.995 * state + spec.daily_sd * float(shock)
        walk[i] = state
    return spec.level * np.exp(walk) if spec.relative else spec.level + walk


def simulated_macro_frame(series_ids: Iterable[str], start: date, end: date, today: date) -> pd.DataFrame:
    """Simulated observations dated in [start, end) that would be published by ``today``."""
    rows = []
    days = (end - _SIM_EPOCH).days
    if days <= 0:
        return empty_macro_frame()
    for series_id in series_ids:
        spec = _SIMULATED.get(series_id, _SimSeries(100.0, 0.005, "business", 1, True))
        path = _simulated_path(series_id, days)
        day = max(start, _SIM_EPOCH)
        while day < end:
            observed = (
                spec.cadence == "daily"
                or (spec.cadence == "business" and day.weekday() < 5)
                or (spec.cadence == "monthly" and day.day == 1)
            )
            published = day + timedelta(days=spec.lag_days)
            if observed and published <= today:
                rows.append(
                    {
                        "series_id": series_id,
                        "observation_date": day,
                        "value": round(float(path[(day - _SIM_EPOCH).days]), 4),
                        "realtime_start": published,
                        "source": "simulated",
                    }
                )
            day += timedelta(days=1)
    return _frame(rows)


# ------------------------------------------------------------------------------------------ fetch
@dataclass
class MacroFetch:
    """What one macro fetch got: the rows, the sources used, and what was skipped and why."""

    frame: pd.DataFrame
    sources: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    fred_requested: list[str] = field(default_factory=list)
    fred_failed: list[str] = field(default_factory=list)
    yahoo_failed: list[str] = field(default_factory=list)
    http: dict[str, dict[str, float | int]] = field(default_factory=dict)

    @property
    def fred_down(self) -> bool:
        """True when FRED series were requested and every one of them failed."""
        return bool(self.fred_requested) and set(self.fred_failed) >= set(self.fred_requested)


def fetch_macro(
    settings: Settings,
    start: date,
    end: date,
    *,
    fred_series: Sequence[str] | None = None,
    yahoo_tickers: Sequence[str] = YAHOO_TICKERS,
    fred_base_url: str | None = None,
    yahoo_base_url: str | None = None,
    today: date | None = None,
    deadline: datetime | None = None,
) -> MacroFetch:
    """Observations dated in [start, end) from the configured sources.

    ``settings.source == "simulated"``: the simulated series, offline. ``live``: FRED for
    ``fred_series`` (default ``settings.fred_series``; skipped with a warning without
    ``FRED_API_KEY``) and Yahoo Finance for ``yahoo_tickers`` (best effort). A series that fails
    is skipped and named in ``warnings`` and ``fred_failed``/``yahoo_failed``; the others are still returned.
    ``deadline``: no retry waits past it (see :class:`~resources.sources.http.HttpSource`). Base URLs:
    the arguments, else ``FRED_BASE_URL`` / ``YAHOO_BASE_URL``, else the providers' hosts.
    """
    series = list(fred_series if fred_series is not None else settings.fred_series)
    today = today or datetime.now(UTC).date()
    if settings.source == "simulated":
        frame = simulated_macro_frame([*series, *yahoo_tickers], start, end, today)
        return MacroFetch(frame, sources=["simulated"])
    frames: list[pd.DataFrame] = []
    result = MacroFetch(empty_macro_frame())
    if not settings.fred_api_key:
        result.warnings.append("FRED_API_KEY is not set: FRED series skipped")
    elif series:
        fred = FredClient(settings.fred_api_key, base_url=fred_base_url or settings.fred_base_url, deadline=deadline)
        result.fred_requested = list(series)
        try:
            for series_id in series:
                try:
                    frames.append(fred.observations(series_id, start, end))
                except SourceError as exc:
                    result.warnings.append(str(exc))
                    result.fred_failed.append(series_id)
            result.sources.append("fred")
            result.http["fred"] = fred.http.stats.as_metadata()
        finally:
            fred.close()
    if yahoo_tickers:
        yahoo = YahooClient(base_url=yahoo_base_url or settings.yahoo_base_url, deadline=deadline)
        try:
            for ticker in yahoo_tickers:
                try:
                    frames.append(yahoo.daily_closes(ticker, start, end))
                except SourceError as exc:
                    result.warnings.append(f"{exc} (skipped: Yahoo Finance is best effort)")
                    result.yahoo_failed.append(ticker)
            result.sources.append("yahoo")
            result.http["yahoo"] = yahoo.http.stats.as_metadata()
        finally:
            yahoo.close()
    frames = [f for f in frames if len(f)]
    result.frame = pd.concat(frames, ignore_index=True) if frames else empty_macro_frame()
    for warning in result.warnings:
        log.warning("macro: %s", warning)
    return result
