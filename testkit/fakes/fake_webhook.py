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
from email.message import Message
from typing import Any

from testkit.fakes.loopback import LoopbackServer


class FakeWebhook(LoopbackServer):
    """A threaded HTTP server standing in for a Slack incoming webhook."""

    path = "/services/T000/B000/XXXXXXXX"

    def __init__(self) -> None:
        super().__init__()
        self.faults: deque[str] = deque()
        self.down = False
        self.messages: list[dict[str, Any]] = []
        self.attempts: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The webhook's URL, its path included."""
        return f"{super().url}{self.path}"

    def texts(self) -> list[str]:
        """The ``text`` of each accepted message."""
        return [m["text"] for m in self.messages]

    def respond(
        self, method: str, path: str, query: dict[str, str], headers: Message, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Record the attempt and answer it as Slack would, or with the next queued fault."""
        plain = {"Content-Type": "text/plain"}
        with self._lock:
            fault = self.faults.popleft() if self.faults else ("500" if self.down else None)
            self.attempts.append({"path": path, "fault": fault})
        if path != self.path:
            return 404, plain, b"no_service"
        if fault == "timeout":
            time.sleep(2.0)
            return 200, plain, b"ok"
        if fault in ("500", "503"):
            return int(fault), plain, b"internal_error"
        if fault == "400":
            return 400, plain, b"invalid_payload"
        if headers.get("Content-Type", "").split(";")[0] != "application/json":
            return 400, plain, b"invalid_payload"
        try:
            payload = json.loads(body)
        except ValueError:
            return 400, plain, b"invalid_payload"
        if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
            return 400, plain, b"no_text"
        with self._lock:
            self.messages.append(payload)
        return 200, plain, b"ok"
