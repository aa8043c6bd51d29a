"""``/v1/derivatives`` and ``/v1/derivatives/latest`` over a small warehouse, on SQLite and on MariaDB
(httpx through FastAPI's TestClient), and ``CryptoDataClient.derivatives`` against a real uvicorn."""

from __future__ import annotations

import io

import pandas as pd
import pyarrow as pa
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from api.client import CryptoApiError, CryptoDataClient
from resources.storage.schema import PRICES
from resources.storage.warehouse import get_warehouse
from tests.integration.test_api_support import (
    N_WINDOWS,
    PRICE_END,
    T0,
    WINDOW,
    derivatives_frame,
    make_app,
    module_warehouse,
    price_frame,
    seed,
    serve,
)

RANGE = {"start": T0.isoformat(), "end": (PRICE_END + 4 * WINDOW).isoformat()}
#: Every committed derivatives row of the seeded warehouse: three coins, then BTC and ETH in the last window.
COMMITTED = 3 * N_WINDOWS + 2
VALUES = ["mark_close", "index_close", "premium", "funding_rate", "next_funding_rate", "open_interest_value"]


def _add_a_coin_without_a_perpetual(url: str) -> None:
    """USDT gets prices (a committed window before T0) and no derivatives rows: it is served, without a perpetual."""
    window = T0 - WINDOW
    get_warehouse(url).write_partition(
        PRICES.name, price_frame([window], symbols=("USDT",)), start=window, end=T0, run_id="run-usdt", code_version="1"
    )


@pytest.fixture(scope="module", params=["sqlite", "mysql"])
def seeded_url(request, tmp_path_factory):
    with module_warehouse(request.param, tmp_path_factory.mktemp(request.param)) as url:
        _add_a_coin_without_a_perpetual(url)
        yield url


@pytest.fixture
def client(seeded_url):
    with TestClient(make_app(seeded_url)) as c:
        yield c


def _expected(symbols=("BTC", "ETH", "SOL")) -> pd.DataFrame:
    """The committed rows the seed wrote, in the gateway's order."""
    frame = pd.concat(
        [
            derivatives_frame(T0, PRICE_END),
            derivatives_frame(PRICE_END, PRICE_END + WINDOW, symbols=("BTC", "ETH")),
        ]
    )
    frame = frame[frame["symbol"].isin(symbols)]
    return frame.sort_values(["symbol", "window_start"]).reset_index(drop=True)


def _utc(column: pd.Series) -> list[pd.Timestamp]:
    return list(pd.to_datetime(column, utc=True))


def test_json_serves_committed_windows_only_with_the_written_values(client):
    response = client.get("/v1/derivatives", params=RANGE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == COMMITTED and not body["truncated"]
    assert body["as_of"] == response.headers["X-Data-As-Of"] == PRICE_END.isoformat() + "Z"
    frame = pd.DataFrame(body["data"])
    expected = _expected()
    assert list(frame.columns[:5]) == ["symbol", "window_start", "exchange", "contract", "settle"]
    assert frame["symbol"].tolist() == expected["symbol"].tolist()
    assert _utc(frame["window_start"]) == _utc(expected["window_start"])  # the uncommitted window is absent
    for name in VALUES:
        assert frame[name].tolist() == pytest.approx(expected[name].tolist(), nan_ok=True), name
    assert frame["next_funding_rate"].isna().sum() == 3 * 6
    assert _utc(frame["funding_time"]) == _utc(expected["funding_time"])
    assert (pd.to_datetime(frame["funding_time"]) < pd.to_datetime(frame["window_start"]) + WINDOW).all()


@pytest.mark.parametrize("fmt", ["csv", "parquet", "arrow"])
def test_every_format_equals_json(client, fmt):
    params = {**RANGE, "symbols": "btc,SOL", "columns": "funding_rate,next_funding_rate,open_interest_at"}
    expected = pd.DataFrame(client.get("/v1/derivatives", params=params).json()["data"])
    response = client.get("/v1/derivatives", params={**params, "format": fmt})
    assert response.status_code == 200, response.text
    assert response.headers["X-Data-As-Of"] == PRICE_END.isoformat() + "Z"
    if fmt == "csv":
        assert response.headers["content-type"].startswith("text/csv")
        frame = pd.read_csv(io.BytesIO(response.content))
    elif fmt == "parquet":
        assert response.headers["content-type"] == "application/vnd.apache.parquet"
        frame = pq.read_table(io.BytesIO(response.content)).to_pandas()
    else:
        table = pa_ipc.open_stream(response.content).read_all()
        assert table.schema.field("open_interest_at").type == pa.timestamp("us", tz="UTC")
        assert table.schema.field("funding_rate").type == pa.float64()
        frame = table.to_pandas()
    assert list(frame.columns) == ["symbol", "window_start", "funding_rate", "next_funding_rate", "open_interest_at"]
    assert len(frame) == len(expected) == 2 * N_WINDOWS + 1
    assert set(frame["symbol"]) == {"BTC", "SOL"}
    assert frame["funding_rate"].tolist() == pytest.approx(expected["funding_rate"].tolist())
    assert frame["next_funding_rate"].isna().sum() == expected["next_funding_rate"].isna().sum() == 2 * 6
    assert _utc(frame["open_interest_at"]) == _utc(expected["open_interest_at"])


def test_accept_header_chooses_the_format(client):
    arrow = client.get("/v1/derivatives", params=RANGE, headers={"Accept": "application/vnd.apache.arrow.stream"})
    assert arrow.headers["content-type"] == "application/vnd.apache.arrow.stream"
    assert pa_ipc.open_stream(arrow.content).read_all().num_rows == COMMITTED


def test_range_and_symbols_filter(client):
    start, end = T0 + 3 * WINDOW, T0 + 7 * WINDOW
    body = client.get(
        "/v1/derivatives", params={"symbols": "ETH", "start": start.isoformat(), "end": end.isoformat()}
    ).json()
    assert [r["symbol"] for r in body["data"]] == ["ETH"] * 4
    assert [r["window_start"] for r in body["data"]] == [(start + i * WINDOW).isoformat() + "Z" for i in range(4)]
    # A date alone as end covers that whole day.
    day = client.get("/v1/derivatives", params={"symbols": "BTC", "start": "2026-01-01", "end": "2026-01-01"}).json()
    assert day["count"] == N_WINDOWS + 1
    # A served symbol without a perpetual is an empty answer, not an error.
    none = client.get("/v1/derivatives", params={**RANGE, "symbols": "USDT"})
    assert none.status_code == 200 and none.json()["count"] == 0


def test_pages_follow_the_cursor(client):
    seen, cursor = [], None
    while True:
        body = client.get("/v1/derivatives", params={**RANGE, "limit": 20, **({"cursor": cursor} if cursor else {})})
        seen += [(r["symbol"], r["window_start"]) for r in body.json()["data"]]
        cursor = body.json()["next_cursor"]
        if cursor is None:
            break
        assert body.headers["X-Truncated"] == "true" and body.headers["X-Next-Cursor"] == cursor
    assert len(seen) == len(set(seen)) == COMMITTED and seen == sorted(seen)


def test_latest_is_each_coins_latest_committed_window(client):
    response = client.get("/v1/derivatives/latest")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["as_of"] == response.headers["X-Data-As-Of"] == PRICE_END.isoformat() + "Z"
    rows = {r["symbol"]: r for r in body["data"]}
    assert set(rows) == {"BTC", "ETH", "SOL"}  # USDT has no perpetual
    assert rows["BTC"]["window_start"] == PRICE_END.isoformat() + "Z"
    assert rows["SOL"]["window_start"] == (PRICE_END - WINDOW).isoformat() + "Z"  # absent from the latest
    assert rows["BTC"]["contract"] == "BTC/USDT:USDT" and rows["BTC"]["settle"] == "USDT"
    only = client.get("/v1/derivatives/latest", params={"symbols": "eth"}).json()
    assert [r["symbol"] for r in only["data"]] == ["ETH"]
    again = client.get("/v1/derivatives/latest", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def test_freshness_lists_derivatives(client):
    assets = {a["asset"]: a for a in client.get("/v1/freshness").json()["assets"]}
    derivatives = assets["derivatives_data"]
    assert derivatives["status"] == "materialized" and derivatives["last_run_id"] == "run-derivatives-2"
    assert derivatives["windows"] == N_WINDOWS + 1 and derivatives["rows"] == COMMITTED


def test_before_the_first_derivatives_window_the_answers_are_empty(sqlite_url):
    get_warehouse(sqlite_url).write_partition(
        PRICES.name, price_frame([T0]), start=T0, end=T0 + WINDOW, run_id="run-one", code_version="1"
    )
    with TestClient(make_app(sqlite_url)) as c:
        latest = c.get("/v1/derivatives/latest", params={"symbols": "BTC"})
        history = c.get("/v1/derivatives", params={"symbols": "BTC", "format": "arrow"})
    assert latest.status_code == 200 and latest.json() == {"as_of": None, "count": 0, "data": []}
    assert history.status_code == 200 and "X-Data-As-Of" not in history.headers
    table = pa_ipc.open_stream(history.content).read_all()
    assert table.num_rows == 0 and "funding_rate" in table.column_names


BAD_INPUT = [  # params, the parameter named, a fragment of the message
    ({"symbols": "BTC,NOPE"}, "symbols", "symbols: unknown symbol(s) 'NOPE'"),
    ({"symbols": ","}, "symbols", "symbols is empty"),
    ({"columns": "funding_rate,bogus"}, "columns", "columns: unknown derivatives column(s) 'bogus'"),
    ({"columns": ","}, "columns", "columns is empty"),
    ({"start": "2026-01-03", "end": "2026-01-01"}, "start", "must be before end"),
    ({"start": "2020-01-01", "end": "2026-01-01"}, "start", "maximum of 366"),
    ({"start": "2026-13-01"}, "start", "is not a valid datetime"),
    ({"end": "9999-12-31"}, "end", "out of range"),
    ({"limit": 0}, "limit", "greater than or equal to 1"),
    ({"limit": 10_001}, "limit", "above the maximum"),
    ({"cursor": "not a cursor!"}, "cursor", "cursor is malformed"),
    ({"cursor": "eyJkIjoicHJpY2VzIiwiayI6WyJhIiwiYiJdfQ"}, "cursor", "does not belong to /derivatives"),
    ({"format": "xml"}, "format", "format: 'xml' is not valid"),
]


@pytest.mark.parametrize("path", ["/v1/derivatives", "/v1/derivatives/latest"])
def test_bad_input_is_a_400_naming_the_parameter(client, path):
    for params, parameter, fragment in BAD_INPUT:
        if path.endswith("/latest") and parameter != "symbols":
            continue  # the latest rows take symbols only
        response = client.get(path, params=params)
        assert response.status_code == 400, (path, params, response.text)
        body = response.json()
        assert body["code"] == "invalid_parameter" and body["parameter"] == parameter, (params, body)
        assert fragment in body["detail"], (params, body["detail"])


def test_the_openapi_schema_documents_the_routes(client):
    spec = client.get("/openapi.json").json()
    route = spec["paths"]["/v1/derivatives"]["get"]
    assert {p["name"] for p in route["parameters"]} >= {"symbols", "start", "end", "columns", "limit", "cursor"}
    assert "application/vnd.apache.arrow.stream" in route["responses"]["200"]["content"]
    fields = spec["components"]["schemas"]["DerivativeRow"]["properties"]
    assert "fraction" in fields["funding_rate"]["description"]
    assert "contracts" in fields["open_interest"]["description"]
    assert "settle currency" in fields["open_interest_value"]["description"]
    assert "/v1/derivatives/latest" in spec["paths"]


def test_client_returns_the_served_values_with_proper_dtypes(sqlite_url):
    seed(sqlite_url)
    end = PRICE_END + 4 * WINDOW
    # A tiny row limit, so that the client must follow cursors.
    with serve(sqlite_url, CRYPTO_API_MAX_ROWS="7") as base, CryptoDataClient(base, max_retries=0) as api:
        frame = api.derivatives(["BTC", "ETH"], start=T0, end=end)
        latest = api.latest_derivatives()
        chosen = api.derivatives("SOL", start=T0, end=end, columns=["funding_rate", "open_interest"])
        with pytest.raises(CryptoApiError) as refused:
            api.derivatives(columns="nope")
    expected = _expected(("BTC", "ETH"))
    assert isinstance(frame.index, pd.DatetimeIndex) and str(frame.index.tz) == "UTC"
    assert frame.index.name == "window_start" and len(frame) == len(expected) == 2 * N_WINDOWS + 2
    assert list(frame.index) == _utc(expected["window_start"])
    assert frame["symbol"].tolist() == expected["symbol"].tolist()
    for name in VALUES:
        assert frame[name].dtype == "float64"
        assert frame[name].tolist() == pytest.approx(expected[name].tolist(), nan_ok=True), name
    for name in ("funding_time", "next_funding_time", "open_interest_at", "collected_at"):
        assert frame[name].dt.tz is not None and list(frame[name]) == _utc(expected[name]), name
    assert pd.api.types.is_string_dtype(frame["contract"])
    assert api.last_as_of == pd.Timestamp(PRICE_END, tz="UTC")
    assert sorted(latest["symbol"]) == ["BTC", "ETH", "SOL"] and isinstance(latest.index, pd.DatetimeIndex)
    assert str(latest.index.tz) == "UTC"
    assert latest["funding_time"].dt.tz is not None and latest["funding_rate"].dtype == "float64"
    assert list(chosen.columns) == ["symbol", "funding_rate", "open_interest"] and len(chosen) == N_WINDOWS
    assert refused.value.status == 400 and refused.value.parameter == "columns"
