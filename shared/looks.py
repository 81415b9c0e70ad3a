"""A user's looks (status?mine=true) and read-only share links (continue share/unshare,
status?share=<token>)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime
from typing import Any

from shared import look_queries
from shared.errors import InvalidInput, TaskNotFound
from shared.services import Services
from shared.settings import origin_allowed
from shared.states import Action, Status, allowed_actions
from shared.view import body, iso_utc, load_owned

PAGE_SIZE = 20
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
# What a cursor carries: PostgreSQL's text of a TIMESTAMP, and a task id (printable ASCII), so a
# forged one cannot reach the driver with a NUL, a lone surrogate or a date PostgreSQL cannot read.
CURSOR_CREATED_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?$")
CURSOR_ID_RE = re.compile(r"^[\x21-\x7e]{1,128}$")


# --- my looks --------------------------------------------------------------------------------------

def mine(services: Services, user: str, cursor: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"user_id": user, "limit": PAGE_SIZE + 1}
    if cursor:
        created, task_id = _read_cursor(cursor)
        found = services.db.all(look_queries.MY_LOOKS_AFTER, {**params, "created": created, "id": task_id})
    else:
        found = services.db.all(look_queries.MY_LOOKS, params)
    page = found[:PAGE_SIZE]
    more = len(found) > PAGE_SIZE
    return {
        "looks": [{
            "task_id": row["id"],
            "status": row["status"],
            "current_step": row["current_step"],
            "total_steps": row["total_steps"],
            "thumbnail": row["result_url"] or row["intermediate_result"],
            "created_at": iso_utc(row["created_at"]),  # the list's order
            "updated_at": iso_utc(row["updated_at"]),
            "actions": [a.value for a in allowed_actions(Status(row["status"]), bool(row["intermediate_result"]))],
        } for row in page],
        "next": _cursor(page[-1]["created_key"], page[-1]["id"]) if more else None,
    }


def _cursor(created: str, task_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created, task_id]).encode()).decode().rstrip("=")


def _read_cursor(cursor: str) -> tuple[str, str]:
    try:
        if len(cursor) > 512:  # ours are at most ~230; a longer one could nest deeper than json.loads goes
            raise ValueError
        created, task_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (CURSOR_CREATED_RE.match(created) and CURSOR_ID_RE.match(task_id)):
            raise ValueError
        datetime.fromisoformat(created)  # a real date and time
    except (ValueError, TypeError, binascii.Error):
        raise InvalidInput("cursor is not one this endpoint gave out: start again without it.",
                           code="invalid_cursor") from None
    return created, task_id


# --- share links -----------------------------------------------------------------------------------

def _hash(token: str) -> str:
    # Imported here, as secrets below: status imports this module, and a poll of one look needs
    # neither (they load OpenSSL's hashes, 3 ms of a cold start).
    import hashlib

    # Only the hash is stored, and lookups are by hash: the table never holds a working link.
    return hashlib.sha256(token.encode()).hexdigest()


def share(services: Services, task_id: str, owner: str, action: Action, origin: str | None) -> dict[str, Any]:
    """Owner only: `share` makes a new read-only link (192 random bits); `unshare` revokes all."""
    db = services.db
    load_owned(db, task_id, owner)
    if action is Action.UNSHARE:
        revoked = db.all(look_queries.SHARE_REVOKE_ALL, {"id": task_id})
        return {"task_id": task_id, "revoked": len(revoked)}
    import secrets

    token = secrets.token_urlsafe(24)
    db.one(look_queries.SHARE_ADD, {"token_hash": _hash(token), "id": task_id})
    # The token too: a caller with no page URL to go by (a server: no Origin, no PUBLIC_PAGE_URL)
    # builds its own link from it.
    return {"share_url": share_link(_page_url(services, origin), token), "share_token": token}


def _page_url(services: Services, origin: str | None) -> str:
    """PUBLIC_PAGE_URL, else the page that asked (an allowed origin); else a link relative to it."""
    settings = services.settings
    if settings.public_page_url:
        return str(settings.public_page_url)
    if origin and re.match(r"^https?://[^/\s]+$", origin) and origin_allowed(settings.allowed_origins, origin):
        return origin.rstrip("/") + "/"
    return ""


def share_link(page_url: str, token: str) -> str:
    """`page_url` with `share=<token>` added to its query string; a fragment stays last."""
    base, hash_mark, fragment = page_url.partition("#")
    separator = "" if base.endswith(("?", "&")) else "&" if "?" in base else "?"
    return f"{base}{separator}share={token}{hash_mark}{fragment}"


def shared_view(services: Services, token: str) -> dict[str, Any]:
    """The read-only look behind a share link: images, step count and status; nothing that names
    the look, its user or what they wrote, and no actions. Unknown or revoked: 404."""
    if not TOKEN_RE.match(token or ""):
        raise TaskNotFound("This share link does not work (it may have been revoked).", code="share_not_found")
    found = services.db.one(look_queries.SHARED_TASK, {"token_hash": _hash(token)})
    if found is None:
        raise TaskNotFound("This share link does not work (it may have been revoked).", code="share_not_found")
    full = body(load_owned(services.db, found["task_id"], None))
    return {
        "status": full["status"],
        "current_step": full["current_step"],
        "total_steps": full["total_steps"],
        "intermediate_result": full["intermediate_result"],
        "result_url": full["result_url"],
        "updated_at": full["updated_at"],
        "steps": [{"step": s["step"], "status": s["status"], "image_url": s["image_url"]} for s in full["steps"]],
    }
