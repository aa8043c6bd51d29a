"""The gateway's refusals: one error type and one JSON shape for every 4xx and 5xx.

Every refusal, whether raised here, by request validation or by routing (an unknown path), answers
:func:`error_body`: ``{"status": 400, "code": "invalid_parameter", "parameter": "start",
"detail": "start: ..."}``. ``detail`` says what was wrong and what is expected, naming the parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: The ``code`` of each status the gateway answers with (``error`` for any other).
CODES: Mapping[int, str] = {
    400: "invalid_parameter",
    401: "missing_api_key",
    403: "invalid_api_key",
    404: "not_found",
    405: "method_not_allowed",
    410: "gone",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


def error_body(status: int, detail: str, parameter: str | None = None) -> dict[str, Any]:
    """The JSON body of a refusal (:class:`~api.schemas.ErrorResponse`)."""
    return {"status": status, "code": CODES.get(status, "error"), "parameter": parameter, "detail": detail}


class ApiError(Exception):
    """A request the gateway refuses: ``status``, a message, and the query parameter at fault if any."""

    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None, *, parameter: str | None = None
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.parameter = parameter

    def body(self) -> dict[str, Any]:
        """This refusal as :func:`error_body`."""
        return error_body(self.status, self.message, self.parameter)


def bad_request(message: str, parameter: str) -> ApiError:
    """A 400: the query ``parameter`` is wrong in a way the message explains."""
    return ApiError(400, message, parameter=parameter)


def validation_error(errors: Sequence[Mapping[str, Any]]) -> ApiError:
    """A 400 for the errors of FastAPI's request validation (pydantic's), naming the first parameter.

    Each error reads ``<parameter>: <what is wrong>``; the dates' own messages already quote the value.
    """
    parts: list[str] = []
    parameter = None
    for error in errors:
        loc = [str(part) for part in error.get("loc", ()) if part not in ("query", "header", "path", "body")]
        name = loc[-1] if loc else "request"
        parameter = parameter or name
        message = str(error.get("msg", "is not valid"))
        if error.get("type") == "missing":
            message = "is required"
        elif error.get("type") not in ("datetime_parsing", "date_parsing"):
            value = error.get("input")
            message = f"{str(value)[:64]!r} is not valid: {message[:1].lower()}{message[1:]}"
        parts.append(f"{name}: {message}")
    return bad_request("; ".join(parts) or "the request is not valid", parameter or "request")
