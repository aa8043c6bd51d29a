"""The gateway's error type: every refusal carries a status code and a message that says what to fix."""

from __future__ import annotations


class ApiError(Exception):
    """A request the gateway refuses; rendered as ``{"detail": message}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def bad_request(message: str) -> ApiError:
    """A 400: the request's parameters are wrong in a way the message explains."""
    return ApiError(400, message)
