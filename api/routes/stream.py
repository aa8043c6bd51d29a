"""``/v1/stream/prices``: a WebSocket that pushes the latest prices of each newly committed window."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, WebSocket
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect

from api.errors import ApiError
from api.formats import json_body
from api.gateway import Gateway
from api.reads import PRICES
from api.routes.datasets import latest_payload
from api.warehouse_check import MissingWarehouse

log = logging.getLogger(__name__)

router = APIRouter()


async def _until_disconnect(websocket: WebSocket) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


@router.websocket("/v1/stream/prices")
async def stream_prices(websocket: WebSocket, symbols: str | None = None, api_key: str | None = None) -> None:
    """Send the latest prices on connect, then again each time a new price window commits.

    Each message is the body of ``GET /v1/prices/latest`` plus ``"type": "prices"``. The key goes
    in ``X-API-Key`` / ``Authorization: Bearer`` or, for browsers, ``?api_key=``. Refusals close
    the socket with code 4401 (no key), 4403 (wrong key), 4400 (bad symbols) or 1011 (database down,
    or no warehouse).
    """
    gateway: Gateway = websocket.app.state.gateway
    client = websocket.client.host if websocket.client else "-"
    await websocket.accept()
    try:
        gateway.keys.check_headers(websocket.headers, client, query_key=api_key)
        reader = await run_in_threadpool(gateway.reader)
        state = await run_in_threadpool(reader.state)
        wanted = reader.resolve_symbols(symbols, state.price_symbols)
    except ApiError as exc:
        await websocket.close(code=4000 + exc.status, reason=exc.message[:120])
        return
    except MissingWarehouse:
        await websocket.close(code=1011, reason="the warehouse does not exist")
        return
    except Exception as exc:  # database unreachable
        log.warning("price stream refused: %s", exc)
        await websocket.close(code=1011, reason="the warehouse database is unreachable")
        return

    poll = gateway.settings.api_stream_poll_s
    gateway.metrics.stream_clients.inc()
    watcher = asyncio.create_task(_until_disconnect(websocket))
    sent_window = None
    try:
        while not watcher.done():
            try:
                state = await run_in_threadpool(reader.state, poll)
                window = state.latest.get(PRICES.asset)
                if window is not None and window != sent_window:
                    payload = await run_in_threadpool(latest_payload, reader, state, wanted)
                    await websocket.send_bytes(json_body({"type": "prices", **payload}))
                    sent_window = window
            except (WebSocketDisconnect, RuntimeError):
                break
            except Exception as exc:  # keep the stream open through a database hiccup
                log.warning("price stream poll failed: %s", exc)
            await asyncio.wait([watcher], timeout=poll)
    finally:
        watcher.cancel()
        gateway.metrics.stream_clients.dec()
