"""Typed errors: each one is a response a person (or a frontend) can act on."""

from __future__ import annotations


class HTTPError(Exception):
    status = 500
    code = "internal_error"
    message = "Something went wrong on our side. Please try again in a minute."

    def __init__(self, message: str | None = None, *, code: str | None = None, **extra):
        super().__init__(message or self.message)
        self.message = message or self.message
        if code:
            self.code = code
        self.extra = extra
        self.headers: dict[str, str] = {}

    def body(self) -> dict:
        return {"error": self.message, "code": self.code, **self.extra}


class BadRequest(HTTPError):
    status = 400
    code = "bad_request"


class Unauthorized(HTTPError):
    status = 401
    code = "unauthorized"


class NotFound(HTTPError):
    status = 404
    code = "not_found"


class MethodNotAllowed(HTTPError):
    status = 405
    code = "method_not_allowed"


class Conflict(HTTPError):
    """Wrong state for the action; the body carries the task's current status."""

    status = 409
    code = "wrong_state"


class PayloadTooLarge(HTTPError):
    status = 413
    code = "payload_too_large"


class _RetryLater(HTTPError):
    def __init__(self, message: str | None = None, *, retry_after: int, **kw):
        super().__init__(message, **kw)
        self.headers["Retry-After"] = str(max(1, int(retry_after)))


class TooManyRequests(_RetryLater):
    status = 429
    code = "limit_reached"


class ServiceUnavailable(_RetryLater):
    status = 503
    code = "unavailable"
