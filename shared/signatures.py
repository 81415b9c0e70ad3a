"""Standard Webhooks signatures (https://www.standardwebhooks.com), which Replicate's webhooks
and our completion webhook both use: header webhook-signature is a space-separated list of
`v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">`, keyed by the base64 part
of a `whsec_` secret. `verify` gives the verdicts of the `replicate` package's
`Webhooks.validate` (tests/test_webhooks.py compares the two) without importing it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time


class BadSignature(ValueError):
    pass


def _key(secret: str) -> bytes:
    prefix, _, encoded = secret.partition("_")
    if prefix != "whsec" or not encoded or "_" in encoded:
        raise ValueError("a webhook signing secret looks like whsec_<base64>")
    return base64.b64decode(encoded)


def _digest(secret: str, webhook_id: str, timestamp: int | str, body: str) -> bytes:
    """HMAC-SHA256 of "{id}.{timestamp}.{body}"; UnicodeEncodeError for text that is not Unicode."""
    return hmac.new(_key(secret), f"{webhook_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()


def sign(secret: str, webhook_id: str, timestamp: int, body: str) -> str:
    """The webhook-signature header's value for `body`."""
    return "v1," + base64.b64encode(_digest(secret, webhook_id, timestamp, body)).decode()


def verify(webhook_id: str, timestamp: str, signature: str, body: str, secret: str, *,
           tolerance_s: int, now: float | None = None) -> None:
    """Raises BadSignature unless one of `signature`'s entries signs `body` with `secret` and
    `timestamp` is within `tolerance_s` of `now`."""
    if not (webhook_id and timestamp and signature and body):
        raise BadSignature("a webhook-id, webhook-timestamp, webhook-signature header or the body is missing")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise BadSignature("webhook-timestamp is not a number") from None
    if abs(int(time.time() if now is None else now) - sent_at) > tolerance_s:
        raise BadSignature("webhook-timestamp is outside the tolerance")
    try:
        expected = _digest(secret, webhook_id, timestamp, body)
    except UnicodeEncodeError:  # a lone surrogate from the event's JSON: no sender signed that
        raise BadSignature("the body or a webhook header is not Unicode text") from None
    for entry in signature.split():
        _, comma, encoded = entry.partition(",")
        if not comma:
            raise BadSignature("a webhook-signature entry has no comma")
        try:
            sent = base64.b64decode(encoded)
        except binascii.Error:
            raise BadSignature("a webhook-signature entry is not base64") from None
        if hmac.compare_digest(sent, expected):
            return
    raise BadSignature("no webhook-signature entry matches")
