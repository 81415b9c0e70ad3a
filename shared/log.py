"""One JSON line per invocation and per transition on stdout, for a platform's log search.

Never pass secrets, tokens or image data here; `redact` is the safety net, not the plan.
"""

from __future__ import annotations

import contextvars
import json
import re
import sys
import time
from collections.abc import Mapping
from json.encoder import encode_basestring_ascii
from types import MappingProxyType
from typing import Any

_invocation: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "invocation", default=MappingProxyType({}))


def bind(**fields: Any) -> None:
    """Fields added to every line of the current invocation (function, request id)."""
    _invocation.set({**_invocation.get(), **fields})


def reset(**fields: Any) -> None:
    """A new invocation: its lines carry `fields` (and what is bound later), nothing from the last one."""
    _invocation.set(fields)


# Replicate tokens, webhook secrets, data URIs' payloads, and passwords in URLs.
_SECRETS = re.compile(r"(r8_[A-Za-z0-9]{6,}|whsec_[A-Za-z0-9+/=]{8,}|;base64,[A-Za-z0-9+/=]{16,}|://[^/@\s:]+:[^/@\s]+@)")


def scrub(text: str | None) -> str | None:
    """`redact` for words we store and show that others wrote (a model's or Replicate's error, a
    receiver's answer): they may quote a token, a secret or a password in a URL."""
    return None if text is None else redact(text)


def redact(text: str) -> str:
    def hide(match: re.Match[str]) -> str:
        found: str = match.group(0)
        if found.startswith(";base64,"):
            return ";base64,…"
        if found.startswith("://"):
            return "://***@"
        return found[:found.index("_") + 1] + "***"

    return _SECRETS.sub(hide, text)


def event(name: str, **fields: Any) -> None:
    record = {"ts": round(time.time(), 3), "event": name, **_invocation.get(), **fields}
    sys.stdout.write(redact(json.dumps(record, default=str, ensure_ascii=False)) + "\n")
    sys.stdout.flush()


def transition(task_id: str, from_status: str | None, to_status: str, **fields: Any) -> None:
    """A task changed state: one line a log search can follow end to end by task_id."""
    event("transition", task_id=task_id, **{"from": from_status, "to": to_status}, **fields)


def invocation(status: int, duration_ms: float) -> None:
    """The line every invocation ends with. Its fields are ours (no free text), so it skips the
    general encoder and the redaction pass: this runs on every status poll."""
    bound = _invocation.get()
    sys.stdout.write(
        f'{{"ts": {time.time():.3f}, "event": "invocation", "function": {_json_text(bound.get("function"))}, '
        f'"request_id": {_json_text(bound.get("request_id"))}, "status": {status}, '
        f'"duration_ms": {duration_ms:.1f}}}\n')
    sys.stdout.flush()


def _json_text(value: str | None) -> str:
    return "null" if value is None else encode_basestring_ascii(value)


def trace(error: BaseException | None = None) -> str:
    """`error` (default: the exception being handled) as its last frames, for a log line;
    traceback is imported only when something broke."""
    import traceback

    if error is None:
        return traceback.format_exc(limit=6)[-2000:]
    return "".join(traceback.format_exception(error, limit=6))[-2000:]
