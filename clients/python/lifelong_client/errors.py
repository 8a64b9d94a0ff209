"""Every refusal of the service as a `LifelongError` subclass, chosen by HTTP status.

Each carries the status and the server's own `detail`, so a notebook can catch `NotFound` or `Conflict`
by name and a person still reads the server's words; `ConnectionFailed` and `WaitTimeout` have no status.
"""

from __future__ import annotations

from typing import Any

import httpx


class LifelongError(Exception):
    """Anything the service refused or that kept a request from reaching it; `detail` is for people."""

    status_code: int | None = None

    def __init__(self, detail: Any, status_code: int | None = None):
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code
        super().__init__(describe(detail) if self.status_code is None else f"{self.status_code}: {describe(detail)}")

    @property
    def message(self) -> str:
        return describe(self.detail)


class BadRequest(LifelongError):
    status_code = 400


class Unauthorized(LifelongError):
    status_code = 401


class Forbidden(LifelongError):
    status_code = 403


class NotFound(LifelongError):
    status_code = 404


class Conflict(LifelongError):
    status_code = 409


class TooLarge(LifelongError):
    status_code = 413


class Invalid(LifelongError):
    status_code = 422


class ServerError(LifelongError):
    status_code = 500


class Unavailable(ServerError):
    status_code = 503


class ConnectionFailed(LifelongError):
    """The server could not be reached (or did not answer in time): no status code."""


class WaitTimeout(LifelongError, TimeoutError):
    """`Job.wait` ran out of time; the job itself goes on."""


_BY_STATUS: dict[int, type[LifelongError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 413: TooLarge,
    422: Invalid, 503: Unavailable,
}


def describe(detail: Any) -> str:
    """FastAPI's validation details are lists of {loc, msg}; everything else is said as it is."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict) and "msg" in item:
                loc = ".".join(str(p) for p in item.get("loc", ()))
                parts.append(f"{loc}: {item['msg']}" if loc else str(item["msg"]))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)


def error_for(response: httpx.Response) -> LifelongError:
    """The exception for a refused response: its status's class, with the server's `detail`."""
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        detail = response.text or response.reason_phrase
    kind = _BY_STATUS.get(response.status_code) or (ServerError if response.status_code >= 500 else LifelongError)
    return kind(detail, response.status_code)
