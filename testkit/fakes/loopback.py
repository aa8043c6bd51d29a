"""The HTTP-server scaffolding the fake upstreams share: a threaded server on ``127.0.0.1``.

A fake subclasses :class:`LoopbackServer` and implements :meth:`LoopbackServer.respond`; the base
binds a free port, serves each request on a daemon thread, reads the request body, writes the answer
with its ``Content-Length``, and ignores clients that hang up before it is written (timeout tests).
"""

from __future__ import annotations

import socket
import threading
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


def free_port() -> int:
    """A loopback TCP port free at the time of the call (for a server a test starts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LoopbackServer:
    """A threaded HTTP server on ``127.0.0.1:<free port>``; use as a context manager.

    Subclasses implement :meth:`respond`. ``protocol_version`` is what the server speaks
    (``HTTP/1.1`` keeps connections alive).
    """

    protocol_version = "HTTP/1.0"

    def __init__(self) -> None:
        handler = type("Handler", (_Handler,), {"fake": self, "protocol_version": self.protocol_version})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the server, without a trailing slash."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def respond(
        self, method: str, path: str, query: dict[str, str], headers: Message, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer one request: ``(status, headers, body)``.

        ``path`` is the URL path as sent (still percent-encoded), ``query`` the last value of each
        query parameter (blank values kept), ``headers`` the request's (case-insensitive) headers.
        Called on the request's own thread.
        """
        raise NotImplementedError


class _Handler(BaseHTTPRequestHandler):
    fake: LoopbackServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._answer("POST")

    def _answer(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, headers, payload = self.fake.respond(method, parts.path, query, self.headers, body)
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to do

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        pass
