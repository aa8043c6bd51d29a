"""``CryptoDataClient`` and the price WebSocket against a real uvicorn on a loopback port (SQLite)."""

from __future__ import annotations

import asyncio
import email.utils
import json
from datetime import UTC, datetime, timedelta

import httpx
import pandas as pd
import pytest
import websockets

from api.client import CryptoApiError, CryptoDataClient
from resources.storage.warehouse import get_warehouse
from tests.integration.test_api_support import (
    N_WINDOWS,
    PRICE_END,
    SYMBOLS,
    T0,
    WINDOW,
    feature_columns,
    free_port,
    price_frame,
    seed,
    serve,
)

END = PRICE_END + 4 * WINDOW


@pytest.fixture
def server(sqlite_url):
    seed(sqlite_url)
    # A tiny row limit, so that every tabular read is cut and the client must follow cursors.
    with serve(sqlite_url, CRYPTO_API_MAX_ROWS="7", CRYPTO_API_STREAM_POLL="0.2") as base:
        yield base, sqlite_url


def test_client_returns_typed_frames_and_follows_cursors(server):
    base, _ = server
    with CryptoDataClient(base) as client:
        prices = client.prices(["BTC", "ETH"], start=T0, end=END)
        assert len(prices) == 2 * N_WINDOWS + 2
        assert isinstance(prices.index, pd.DatetimeIndex) and str(prices.index.tz) == "UTC"
        assert prices.index.name == "window_start"
        assert prices["close"].dtype == "float64" and pd.api.types.is_string_dtype(prices["symbol"])
        assert str(prices["collected_at"].dtype).startswith("datetime64") and prices["collected_at"].dt.tz is not None
        assert client.last_as_of == pd.Timestamp(PRICE_END, tz="UTC")

        names = feature_columns()[:2]
        features = client.features("BTC", start=pd.Timestamp(T0, tz="UTC"), end=END, columns=names)
        assert list(features.columns) == ["symbol", *names] and len(features) == N_WINDOWS
        assert features.index.is_monotonic_increasing and features.index.name == "timestamp"

        latest = client.latest_prices()
        assert sorted(latest["symbol"]) == sorted(SYMBOLS) and str(latest.index.tz) == "UTC"
        assert set(client.symbols()["symbol"]) == set(SYMBOLS)
        assert len(client.sentiment(start=T0, end=END)) == 9
        assert len(client.sentiment_aggregates("BTC", start=T0, end=END)) == 3
        assert len(client.news("SOL", start=T0, end=END)) == 3
        macro = client.macro("DGS10", start="2026-01-01", end="2026-02-01")
        assert len(macro) == 5 and str(macro.index.tz) == "UTC"
        assert "price_data_real" in set(client.freshness()["asset"])


def test_client_raises_the_server_message_on_bad_input(server):
    base, _ = server
    with CryptoDataClient(base, max_retries=0) as client:
        with pytest.raises(CryptoApiError) as err:
            client.prices("NOPE")
        assert err.value.status == 400 and "unknown symbol" in err.value.detail
        assert err.value.code == "invalid_parameter" and err.value.parameter == "symbols"
        with pytest.raises(CryptoApiError) as err:
            client.prices("BTC", start="2026-13-01")
        assert err.value.status == 400 and err.value.parameter == "start" and "month 13" in err.value.detail


def test_client_names_the_gateway_it_cannot_reach():
    port = free_port()
    with CryptoDataClient(f"http://127.0.0.1:{port}/", max_retries=0) as client:
        with pytest.raises(CryptoApiError) as err:
            client.symbols()
    assert err.value.status == 0
    assert f"cannot reach the gateway at http://127.0.0.1:{port} " in str(err.value)
    assert "python -m api" in str(err.value) and "CRYPTO_API_URL" in str(err.value)


def test_a_date_alone_as_end_reads_that_whole_day(server):
    base, _ = server
    with CryptoDataClient(base) as client:
        day = client.prices("BTC", start=T0.date(), end=T0.date())
        assert len(day) == len(client.prices("BTC", start=T0, end=END)) == N_WINDOWS + 1


def test_client_retries_429_and_503_honouring_retry_after():
    calls = []
    waits = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "3"}, json={"detail": "slow down"})
        if len(calls) == 2:
            return httpx.Response(503, json={"detail": "database down"})
        return httpx.Response(200, json={"as_of": None, "count": 0, "data": []})

    client = CryptoDataClient(
        "http://api.test", transport=httpx.MockTransport(handler), sleep=waits.append, backoff_s=0.5
    )
    assert client.latest_prices().empty
    assert len(calls) == 3 and waits == [3.0, 1.0]
    failing = CryptoDataClient(
        "http://api.test",
        max_retries=1,
        sleep=waits.append,
        transport=httpx.MockTransport(lambda r: httpx.Response(503, json={"detail": "down"})),
    )
    with pytest.raises(CryptoApiError) as err:
        failing.symbols()
    assert err.value.status == 503


def test_client_honours_a_retry_after_given_as_an_http_date():
    waits = []
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    answers = iter(
        [
            httpx.Response(503, headers={"Retry-After": later}, json={"detail": "maintenance"}),
            httpx.Response(200, json={"as_of": None, "count": 0, "data": []}),
        ]
    )
    client = CryptoDataClient(
        "http://api.test",
        transport=httpx.MockTransport(lambda r: next(answers)),
        sleep=waits.append,
        backoff_s=0.5,
        max_wait_s=120,
    )
    assert client.latest_prices().empty
    assert len(waits) == 1 and 25 <= waits[0] <= 30  # the date, not the 0.5 s back-off


def test_websocket_pushes_each_newly_committed_window(server):
    base, url = server

    async def scenario() -> list[dict]:
        messages = []
        async with websockets.connect(base.replace("http", "ws") + "/v1/stream/prices?symbols=BTC,ETH") as ws:
            messages.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            new_window = PRICE_END + 2 * WINDOW
            await asyncio.to_thread(
                get_warehouse(url).write_partition,
                "price_data_real",
                price_frame([new_window], seed=7),
                start=new_window,
                end=new_window + WINDOW,
                run_id="run-live",
                code_version="1",
            )
            messages.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        return messages

    first, pushed = asyncio.run(scenario())
    assert first["type"] == "prices" and first["as_of"] == PRICE_END.isoformat() + "Z"
    assert {r["symbol"] for r in first["data"]} == {"BTC", "ETH"}
    assert pushed["as_of"] == (PRICE_END + 2 * WINDOW).isoformat() + "Z"
    assert all(r["window_start"] == pushed["as_of"] for r in pushed["data"])


def test_websocket_refuses_a_missing_key(sqlite_url):
    seed(sqlite_url)

    async def scenario(base: str, headers: dict) -> int:
        async with websockets.connect(
            base.replace("http", "ws") + "/v1/stream/prices", additional_headers=headers
        ) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            return closed.value.rcvd.code

    with serve(sqlite_url, CRYPTO_API_KEYS="sekret") as base:
        assert asyncio.run(scenario(base, {})) == 4401
        assert asyncio.run(scenario(base, {"X-API-Key": "wrong"})) == 4403
        with CryptoDataClient(base, api_key="sekret") as client:
            assert not client.latest_prices().empty
