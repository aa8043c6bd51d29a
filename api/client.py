"""``CryptoDataClient``: the gateway as pandas DataFrames, in one line.

    from api.client import CryptoDataClient
    client = CryptoDataClient("http://127.0.0.1:8000", api_key=None)
    frame = client.features(["BTC", "ETH"], start="2026-01-01", end="2026-02-01")

Tables travel as Arrow IPC streams (decoded in place, without copies), cursors are followed until the range
is complete, and transient failures (connection errors, 429 with ``Retry-After``, 502/503/504) are
retried with backoff. Every frame has proper dtypes and a UTC ``DatetimeIndex`` named after its
time column (``window_start``, ``timestamp`` or ``observation_date``), with ``symbol`` a column.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import Any

import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as pa_ipc

from api import lake_files
from resources.retry_policy import RetryPolicy, TransientError, parse_retry_after, retry_call

log = logging.getLogger(__name__)

ARROW_STREAM = "application/vnd.apache.arrow.stream"
_RETRY_STATUSES = {429, 502, 503, 504}
_TIME_COLUMNS = ("window_start", "timestamp", "observation_date")
#: The time columns of a derivatives row besides ``window_start``.
_DERIVATIVE_TIMES = ("funding_time", "next_funding_time", "open_interest_at", "collected_at")


class CryptoApiError(RuntimeError):
    """The gateway refused a request (4xx) or stayed unavailable through every retry (status 0: unreachable).

    ``code`` and ``parameter`` are those of the gateway's error body (``ErrorResponse``), when it sent one.
    """

    def __init__(self, status: int, detail: str, url: str, *, code: str | None = None, parameter: str | None = None):
        super().__init__(f"{status} from {url}: {detail}")
        self.status = status
        self.detail = detail
        self.url = url
        self.code = code
        self.parameter = parameter


def _arrow_table(response: httpx.Response) -> pa.Table:
    """An Arrow IPC stream body as a table: the body's chunks as they arrive joined once, then
    decoded in place (the table's buffers are slices of the body: no copy per batch or column)."""
    body = b"".join(response.iter_raw())
    return pa_ipc.open_stream(pa.py_buffer(body)).read_all()


def _symbols(symbols: str | Sequence[str] | None) -> str | None:
    if symbols is None:
        return None
    return symbols if isinstance(symbols, str) else ",".join(symbols)


def _columns(columns: str | Sequence[str] | None) -> str | None:
    if columns is None:
        return None
    return columns if isinstance(columns, str) else ",".join(columns)


def _when(value: str | datetime | date | pd.Timestamp | None) -> str | None:
    """An ISO 8601 string the gateway accepts (naive values are UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()  # a date alone: as a range end, the gateway reads that whole day
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.isoformat()


def _day(value: str | datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.date().isoformat()
    return value.isoformat()


def _to_frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as a DataFrame with a UTC DatetimeIndex on its time column.

    A plain ``to_pandas``: with ``split_blocks=True`` the float columns become read-only views of
    the Arrow buffers (``frame.loc[...] = x`` raises), and it was no faster here (many chunks).
    """
    frame = table.to_pandas()
    for name in _TIME_COLUMNS:
        if name in frame.columns:
            index = pd.to_datetime(frame.pop(name), utc=True)
            frame.index = pd.DatetimeIndex(index, name=name)
            break
    return frame


def _records_frame(records: list[dict[str, Any]], time_columns: Iterable[str] = ()) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records)
    for name in time_columns:
        if name in frame.columns:
            frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601")
    return frame


class CryptoDataClient:
    """A client of the crypto-data-platform API gateway.

    ``base_url`` defaults to the local gateway; ``api_key`` is sent as ``X-API-Key``.
    ``max_retries`` retries cover connection errors and 429/502/503/504 answers, waiting the
    server's ``Retry-After`` (at most ``max_wait_s``) or an exponential backoff.

    ``direct_lake``: :meth:`features` reads the lake's files itself where this process can reach
    the lake (the gateway's ``CRYPTO_LAKE_URI`` on this disk, or its bucket: ``lake_storage_options``
    as delta-rs and Polars take them, e.g. ``{"AWS_ENDPOINT_URL": ..., "AWS_REGION": ...}``, with
    credentials from them or from pyarrow's AWS chain; ``lake_root``: where this process sees the
    table, if elsewhere, e.g. a mount),
    asking the gateway only which files and ranges to read (``/v1/features/files``) and for the
    windows after the lake's newest; the rows equal ``/v1/features``' once the lake has copied the
    range's windows (seconds after they commit). Where the lake cannot be reached or read, the rows
    come through the gateway. False: always through the gateway (from the warehouse).
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        *,
        timeout: float = 300.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        max_wait_s: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        direct_lake: bool = True,
        lake_root: str | None = None,
        lake_storage_options: dict[str, str] | None = None,
    ):
        headers = {"User-Agent": "crypto-data-client/1.0"}
        if api_key:
            headers["X-API-Key"] = api_key
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
        )
        self.max_wait_s = max_wait_s
        self._policy = RetryPolicy(
            max_attempts=max_retries + 1, backoff_base_s=backoff_s, backoff_max_s=max_wait_s, sleep=sleep, jitter=False
        )
        self.direct_lake = direct_lake
        self.lake_root = lake_root
        self.lake_storage_options = dict(lake_storage_options or {})
        self.last_as_of: pd.Timestamp | None = None
        #: How the last :meth:`features` call was served: ``"lake files"`` (read here) or ``"gateway"``.
        self.last_features_path: str | None = None

    def close(self) -> None:
        """Close the underlying HTTP connections."""
        self._http.close()

    def __enter__(self) -> CryptoDataClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ transport
    def _call(self, path: str, params: dict[str, Any], accept: str, consume: Callable[[httpx.Response], Any]) -> Any:
        """GET ``path``, retrying transient failures, and hand the streamed response to ``consume``."""
        query = {k: v for k, v in params.items() if v is not None}

        def attempt() -> Any:
            try:
                with self._http.stream("GET", path, params=query, headers={"Accept": accept}) as response:
                    if response.status_code >= 400:
                        response.read()
                        refusal = _refusal(response)
                        if response.status_code not in _RETRY_STATUSES:
                            raise refusal
                        retry_after = parse_retry_after(response.headers.get("retry-after"))
                        wait = None if retry_after is None else min(self.max_wait_s, retry_after)
                        raise TransientError(str(refusal), status=response.status_code, retry_after=wait) from refusal
                    as_of = response.headers.get("x-data-as-of")
                    self.last_as_of = pd.Timestamp(as_of) if as_of else None
                    return consume(response)
            except (httpx.TransportError, pa.ArrowInvalid) as exc:
                raise TransientError(f"{type(exc).__name__}: {exc}") from exc

        def give_up(exc: BaseException, attempts: int) -> BaseException:
            cause = exc.__cause__ if isinstance(exc, TransientError) else exc
            if isinstance(cause, (httpx.TransportError, pa.ArrowInvalid)):
                return self._failure(path, cause)
            return cause or exc

        return retry_call(attempt, self._policy, name=f"gateway {path}", give_up=give_up, logger=log)

    def _failure(self, path: str, exc: Exception) -> CryptoApiError:
        """The error of a request that got no answer: which gateway could not be reached, and how to fix it."""
        base = str(self._http.base_url).rstrip("/")
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
            detail = (
                f"cannot reach the gateway at {base} ({type(exc).__name__}: {exc}): is it running "
                "(.venv/bin/python -m api)? Otherwise pass its address as CryptoDataClient(base_url) "
                "(the quickstart notebook reads it from CRYPTO_API_URL)"
            )
        else:
            detail = f"{type(exc).__name__} from the gateway at {base}: {exc}"
        return CryptoApiError(0, detail, base + path)

    def _json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._call(path, params or {}, "application/json", lambda r: (r.read(), r.json())[1])

    def _table(self, path: str, params: dict[str, Any]) -> pa.Table:
        """Every row of a tabular route as one Arrow table, following cursors."""
        tables: list[pa.Table] = []
        cursor: str | None = None
        while True:

            def consume(response: httpx.Response) -> tuple[pa.Table, str | None]:
                return _arrow_table(response), response.headers.get("x-next-cursor")

            table, cursor = self._call(path, {**params, "format": "arrow", "cursor": cursor}, ARROW_STREAM, consume)
            tables.append(table)
            if not cursor:
                break
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables)

    # ------------------------------------------------------------------ routes
    def symbols(self) -> pd.DataFrame:
        """Served symbols with their CoinGecko ids."""
        return _records_frame(self._json("/v1/symbols")["data"])

    def _latest(self, path: str, symbols: str | Sequence[str] | None, time_columns: Sequence[str]) -> pd.DataFrame:
        """A ``/latest`` route's rows, ``time_columns`` parsed as UTC times (index: ``window_start``)."""
        body = self._json(path, {"symbols": _symbols(symbols)})
        frame = _records_frame(body["data"], ("window_start", *time_columns))
        if frame.empty:
            return frame
        return frame.set_index(pd.DatetimeIndex(frame.pop("window_start"), name="window_start"))

    def latest_prices(self, symbols: str | Sequence[str] | None = None) -> pd.DataFrame:
        """Per symbol, the price row of its latest committed window (index: ``window_start``, UTC)."""
        return self._latest("/v1/prices/latest", symbols, ("collected_at",))

    def latest_derivatives(self, symbols: str | Sequence[str] | None = None) -> pd.DataFrame:
        """Per symbol with a perpetual swap, the derivatives row of its latest committed window
        (index: ``window_start``, UTC)."""
        return self._latest("/v1/derivatives/latest", symbols, _DERIVATIVE_TIMES)

    def prices(
        self,
        symbols: str | Sequence[str] | None = None,
        start: Any = None,
        end: Any = None,
        columns: str | Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """5-minute price rows for ``symbols`` in [start, end)."""
        return _to_frame(
            self._table(
                "/v1/prices",
                {"symbols": _symbols(symbols), "start": _when(start), "end": _when(end), "columns": _columns(columns)},
            )
        )

    def derivatives(
        self,
        symbols: str | Sequence[str] | None = None,
        start: Any = None,
        end: Any = None,
        columns: str | Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """5-minute perpetual-swap rows (mark and index bars, premium, funding, open interest) for
        ``symbols`` in [start, end), each as known at its window's end (index: ``window_start``)."""
        return _to_frame(
            self._table(
                "/v1/derivatives",
                {"symbols": _symbols(symbols), "start": _when(start), "end": _when(end), "columns": _columns(columns)},
            )
        )

    def features(
        self,
        symbols: str | Sequence[str] | None = None,
        start: Any = None,
        end: Any = None,
        columns: str | Sequence[str] | None = None,
        as_of: Any = None,
    ) -> pd.DataFrame:
        """Feature rows for ``symbols`` in [start, end), optionally only ``columns`` (index: ``timestamp``).

        ``as_of`` (a time, UTC if naive): the rows as the platform served them then, from the lake's
        time travel (what a live model saw before a gap was healed or late news arrived).
        With ``direct_lake`` the lake's windows are read from its files here (see the class).
        """
        params = {
            "symbols": _symbols(symbols),
            "start": _when(start),
            "end": _when(end),
            "columns": _columns(columns),
            "as_of": _when(as_of),
        }
        if self.direct_lake:
            table = self._features_from_files(params)
            if table is not None:
                self.last_features_path = "lake files"
                return _to_frame(table)
        self.last_features_path = "gateway"
        return _to_frame(self._table("/v1/features", params))

    def _features_from_files(self, params: dict[str, Any]) -> pa.Table | None:
        """The features of ``params`` with the lake's windows read from its files here, or None
        where they cannot be (the gateway says so, or this process cannot open or read them)."""
        try:
            listing = self._json("/v1/features/files", params)
        except CryptoApiError as exc:
            if exc.status != 404:  # 404: a gateway without the route, or no lake: /v1/features says which
                raise
            return None
        if not listing["direct"]:
            return None
        opened = lake_files.open_lake(listing["table_uri"], self.lake_root, self.lake_storage_options)
        if opened is None:
            return None
        try:
            lake_part = lake_files.read_files(listing, *opened)
        except (OSError, pa.ArrowException) as exc:
            log.warning("the lake's files cannot be read here (%s): reading through the gateway", exc)
            return None
        rest = [
            self._table("/v1/features", {**params, "as_of": None, "start": r["start"], "end": r["end"]})
            for r in listing["rest_ranges"]
        ]
        self.last_as_of = pd.Timestamp(listing["as_of"]) if listing["as_of"] else None
        return lake_files.merged(lake_files.arrow_schema(listing), [lake_part, *rest])

    def feature_catalog(self) -> pd.DataFrame:
        """The feature catalog, one row a feature."""
        return _records_frame(self._json("/v1/features/catalog")["features"])

    def sentiment(
        self, symbols: str | Sequence[str] | None = None, start: Any = None, end: Any = None, model: str | None = None
    ) -> pd.DataFrame:
        """Per (item, symbol, model) sentiment scores in [start, end)."""
        return _to_frame(
            self._table(
                "/v1/sentiment",
                {"symbols": _symbols(symbols), "start": _when(start), "end": _when(end), "model": model},
            )
        )

    def sentiment_aggregates(
        self, symbols: str | Sequence[str] | None = None, start: Any = None, end: Any = None, model: str | None = None
    ) -> pd.DataFrame:
        """Per (symbol, window) sentiment aggregates in [start, end)."""
        return _to_frame(
            self._table(
                "/v1/sentiment/aggregates",
                {"symbols": _symbols(symbols), "start": _when(start), "end": _when(end), "model": model},
            )
        )

    def news(
        self, symbols: str | Sequence[str] | None = None, start: Any = None, end: Any = None, source: str | None = None
    ) -> pd.DataFrame:
        """News items published in [start, end), optionally only those mentioning ``symbols``."""
        return _to_frame(
            self._table(
                "/v1/news", {"symbols": _symbols(symbols), "start": _when(start), "end": _when(end), "source": source}
            )
        )

    def macro(self, series: str | Sequence[str] | None = None, start: Any = None, end: Any = None) -> pd.DataFrame:
        """Daily macro observations (index: ``observation_date``, UTC midnight)."""
        return _to_frame(self._table("/v1/macro", {"series": _symbols(series), "start": _day(start), "end": _day(end)}))

    def freshness(self) -> pd.DataFrame:
        """Per asset: last committed window, its rows, run id, totals and age."""
        body = self._json("/v1/freshness")
        return _records_frame(body["assets"], ("last_window_start", "last_committed_at"))


def _refusal(response: httpx.Response) -> CryptoApiError:
    """The error of a 4xx/5xx answer, from the gateway's error body (or the raw text of another server's)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return CryptoApiError(response.status_code, response.text[:500], str(response.url))
    detail = body.get("detail")
    return CryptoApiError(
        response.status_code,
        detail if isinstance(detail, str) else str(detail)[:500],
        str(response.url),
        code=body.get("code"),
        parameter=body.get("parameter"),
    )
