"""A fake Slack-compatible webhook on loopback that records what it receives.

Like Slack's incoming webhooks it answers ``200 ok`` to a JSON POST. It can be told to fail:
a queue of faults is consumed one per request (``500``, ``503``, ``400``, ``timeout``), and
``down`` makes every request fail with 500 until it is cleared. Only requests it accepted are in
``messages``; every request, accepted or not, is in ``attempts``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeWebhook:
    """A threaded HTTP server standing in for a Slack incoming webhook."""

    path = "/services/T000/B000/XXXXXXXX"

    def __init__(self) -> None:
        self.faults: deque[str] = deque()
        self.down = False
        self.messages: list[dict[str, Any]] = []
        self.attempts: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                status, body = hook._handle(self.path, dict(self.headers), raw)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{self.path}"

    def __enter__(self) -> "FakeWebhook":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def texts(self) -> list[str]:
        """The ``text`` of each accepted message."""
        return [m["text"] for m in self.messages]

    def _handle(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, bytes]:
        with self._lock:
            fault = self.faults.popleft() if self.faults else ("500" if self.down else None)
            self.attempts.append({"path": path, "fault": fault})
        if path != self.path:
            return 404, b"no_service"
        if fault == "timeout":
            time.sleep(2.0)
            return 200, b"ok"
        if fault in ("500", "503"):
            return int(fault), b"internal_error"
        if fault == "400":
            return 400, b"invalid_payload"
        if headers.get("Content-Type", "").split(";")[0] != "application/json":
            return 400, b"invalid_payload"
        try:
            payload = json.loads(raw)
        except ValueError:
            return 400, b"invalid_payload"
        if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
            return 400, b"no_text"
        with self._lock:
            self.messages.append(payload)
        return 200, b"ok"
