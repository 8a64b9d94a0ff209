"""What a service function raises when a request cannot be honoured; the app maps each to a status.

Services know nothing of HTTP, but every refusal they make is one a client can act on, so each
carries a `detail` written for that client. Anything else escaping a service is a bug (a 500).
"""

from __future__ import annotations


class ServiceError(Exception):
    status_code = 400

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    status_code = 409


class Invalid(ServiceError):
    status_code = 422


class TooLarge(ServiceError):
    status_code = 413


class Unavailable(ServiceError):
    status_code = 503
