"""Checking what a caller sent, before anything is written or sent to Replicate: task ids,
actions, user ids, Idempotency-Keys and the text of a request body (the start request's fields:
shared/start_request.py). Each failure is an `InvalidInput` (or `Unauthorized`) with a sentence
and a code; none changes anything."""

from __future__ import annotations

import re
from typing import Any

from shared.errors import InvalidInput, TaskNotFound, Unauthorized
from shared.states import Action

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
USER_ID_RE = re.compile(r"^[A-Za-z0-9._:@+=\-]{1,128}$")


def check_text(value: Any, field: str = "the request") -> None:
    """Every string in a request body (keys too) must be text that can be stored and sent on:
    JSON may carry lone UTF-16 surrogates ("\\ud800"), which no UTF-8 writer accepts."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(f"{field} is not valid text: it contains a broken character (a lone UTF-16 "
                               "surrogate). Send it as UTF-8 text.", code="invalid_text") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            name = key if field == "the request" else f"{field}.{key}"
            check_text(key, "A field name")
            check_text(item, name)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_text(item, f"{field}[{index}]")


def valid_user_id(value: Any) -> str:
    if not isinstance(value, str) or not USER_ID_RE.match(value):
        raise InvalidInput(
            "The user id must be 1-128 letters, digits or . _ - : @ + = characters.",
            code="invalid_user_id",
        )
    return value


def require_user(header_user: str | None, body_user: Any = None) -> str:
    """The header wins over the body; neither is a 401."""
    if header_user:
        return header_user
    if body_user is not None and body_user != "":
        return valid_user_id(body_user)
    raise Unauthorized("User ID required", code="user_required")


def check_task_id(value: Any) -> str:
    """Our task ids are UUIDs; the seed's column is TEXT, so any other id is simply one we do not
    have: 404, answered without a query."""
    if value is None or value == "":
        raise InvalidInput("task_id is required", code="missing_field")
    if not isinstance(value, str) or not UUID_RE.match(value.strip().lower()):
        raise TaskNotFound()
    return value.strip().lower()


def check_idempotency_key(value: str | None) -> str | None:
    if value is None or value.strip() == "":
        return None
    if not IDEMPOTENCY_KEY_RE.match(value.strip()):
        raise InvalidInput("Idempotency-Key must be 1-255 visible ASCII characters.", code="invalid_idempotency_key")
    return value.strip()


def check_position(body: dict[str, Any]) -> dict[str, int | None]:
    """Continue's optional `step` and `attempt`: where the look was when its button was pressed."""
    seen: dict[str, int | None] = {}
    for name in ("step", "attempt"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1000):
            raise InvalidInput(f"{name} must be a whole number from 0 to 1000: the look's {name} as you saw it.",
                               code="invalid_field")
        seen[name] = value
    return seen


def check_action(value: Any) -> Action:
    if value is None or value == "":
        return Action.CONTINUE
    names = [action.value for action in Action]
    if not isinstance(value, str) or value.strip().lower() not in names:
        raise InvalidInput(f"action must be one of {', '.join(names)}.", code="invalid_action")
    return Action(value.strip().lower())
