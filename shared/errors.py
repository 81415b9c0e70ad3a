"""The domain's errors: each one carries a sentence a person (or a frontend) can act on and a
snake_case code. They know nothing of HTTP; `shared.http` maps each type to a status code in one
table (`ERRORS`)."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base of the errors a caller is told about; anything else is a bug, answered as a bare 500."""

    code = "internal_error"
    message = "Something went wrong on our side. Please try again in a minute."

    def __init__(self, message: str | None = None, *, code: str | None = None,
                 retry_after: float | None = None, **extra: Any):
        super().__init__(message or self.message)
        self.message = message or self.message
        if code:
            self.code = code
        self.retry_after = None if retry_after is None else max(1, int(retry_after))
        self.extra = extra  # more fields for the answer's body (a 409's current `status`)

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "code": self.code, **self.extra}


class InvalidInput(ServiceError):
    """The request's fields are missing or malformed; nothing was changed."""

    code = "bad_request"


class Unauthorized(ServiceError):
    code = "unauthorized"


class TaskNotFound(ServiceError):
    """No such task for this user (another user's task looks exactly the same)."""

    code = "task_not_found"
    message = "Task not found"


class WrongState(ServiceError):
    """The action does not apply to the task's current status; the body carries that status."""

    code = "wrong_state"


class LimitReached(ServiceError):
    """A cap or rate limit; `retry_after` says when trying again makes sense."""

    code = "limit_reached"


class Unavailable(ServiceError):
    """Something we depend on is down for now; `retry_after` says when to try again."""

    code = "unavailable"


class StorageError(Exception):
    """The store could not be reached or refused a write: transient, try again later. Here, not
    in shared.storage, so the HTTP wrapper can map it without importing storage on every call."""
