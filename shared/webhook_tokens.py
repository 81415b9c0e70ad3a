"""The token in a webhook URL: HMAC-SHA256 of the task id, step and attempt with a secret of
ours, so an unsigned delivery (no REPLICATE_WEBHOOK_SECRET) is authenticated by the URL it came
to, and a forged POST costs no Replicate call. The secret is WEBHOOK_TOKEN_SECRET, or derived
from REPLICATE_WEBHOOK_SECRET, else REPLICATE_API_TOKEN (both already secret, both on every
instance), so nothing new has to be set."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import urlencode

from shared.settings import Settings


def _key(settings: Settings) -> bytes | None:
    secret = (settings.webhook_token_secret or settings.replicate_webhook_secret
              or settings.replicate_api_token)
    if not secret:
        return None
    return hmac.new(secret.encode(), b"tryon webhook url token", hashlib.sha256).digest()


def token(settings: Settings, task_id: str, step: int, attempt: int) -> str | None:
    key = _key(settings)
    if key is None:
        return None
    return hmac.new(key, f"{task_id}:{step}:{attempt}".encode(), hashlib.sha256).hexdigest()[:40]


def webhook_url(settings: Settings, task_id: str, step: int, attempt: int) -> str | None:
    """CHECKER_URL with the task, step, attempt and their token in its query (Replicate keeps it)."""
    base = settings.checker_url
    if not base:
        return None
    query = {"task": task_id, "step": step, "attempt": attempt, "token": token(settings, task_id, step, attempt)}
    return base + ("&" if "?" in base else "?") + urlencode({k: v for k, v in query.items() if v is not None})


def verified_claim(settings: Settings, query: Mapping[str, str]) -> tuple[str, int, int] | None:
    """(task id, step, attempt) when the query carries a valid token for them, else None."""
    task_id, given = query.get("task", ""), query.get("token", "")
    if not (task_id.isascii() and given.isascii()):  # ours are; a lone surrogate would break encode()
        return None
    try:
        step, attempt = int(query.get("step", "")), int(query.get("attempt", ""))
    except ValueError:
        return None
    expected = token(settings, task_id, step, attempt) if task_id and given else None
    if expected is None or not hmac.compare_digest(expected.encode(), given.encode()):
        return None
    return task_id, step, attempt
