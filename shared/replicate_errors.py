"""The two kinds of Replicate failure (split from replicate_api, which re-exports them): `Transient`
(try again later; the task stays as it is) and `Rejected` (permanent: the step fails with a
sentence a person understands), and the Retry-After a throttled answer carries."""

from __future__ import annotations

import email.utils
import time


class Transient(Exception):
    def __init__(self, reason: str, *, retry_after: float | None = None, status: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.status = status


class Rejected(Exception):
    """Replicate refused for good; `message` is written for the person who owns the task."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status


class PredictionGone(Rejected):
    """Replicate does not know the prediction (404): it was deleted, or never existed."""


class OutOfTime(Transient):
    """The call could not start inside this run's time: left for the next ping, not an error."""



def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # isdigit alone takes "\u00b2", which float() does not
        return min(float(value), 300.0)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(when.timestamp() - time.time(), 300.0))
