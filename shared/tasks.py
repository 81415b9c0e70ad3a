"""Tasks as users see them: validating and starting one, the spending caps, and the status view.
The buttons (continue, finish, retry, cancel) are in `shared.actions`; Replicate in `shared.engine`.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared import log, queries
from shared.db import Database, rows
from shared.errors import BadRequest, Conflict, NotFound, TooManyRequests, Unauthorized
from shared.http import valid_user_id
from shared.images import ImageRef, InvalidImage, parse_image
from shared.settings import Settings
from shared.storage import key_for

CATEGORIES = ("upper_body", "lower_body", "dresses")
CATEGORY_WORDS = {"upper_body": "top", "lower_body": "bottoms", "dresses": "dress"}
MAX_DESCRIPTION = 300
MAX_PROMPT_HINTS = 500
DEFAULT_STEP_SECONDS = 45
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
ACTIONS = ("continue", "finish", "retry", "cancel")


@dataclass(frozen=True)
class GarmentInput:
    image: ImageRef
    description: str | None
    category: str


@dataclass(frozen=True)
class StartRequest:
    user_id: str
    person: ImageRef
    garments: tuple[GarmentInput, ...]
    prompt_hints: str | None

    def fingerprint(self) -> str:
        """Identifies the request for Idempotency-Key reuse checks (images by content hash)."""

        def image(ref: ImageRef) -> str:
            return ref.url if ref.url else "sha256:" + hashlib.sha256(ref.data).hexdigest()

        canonical = json.dumps({
            "person": image(self.person),
            "garments": [[image(g.image), g.description, g.category] for g in self.garments],
            "prompt_hints": self.prompt_hints,
        }, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


# --- parsing -------------------------------------------------------------------------------------

def require_user(header_user: str | None, body_user=None) -> str:
    """The header wins over the body; neither is a 401."""
    if header_user:
        return header_user
    if body_user is not None and body_user != "":
        return valid_user_id(body_user)
    raise Unauthorized("User ID required", code="user_required")


def _http_origins(settings: Settings) -> tuple[str, ...]:
    """Plain http is accepted only for this deployment's own file server (the devserver)."""
    if settings.public_files_url.startswith("http://"):
        parts = urlsplit(settings.public_files_url)
        return (f"http://{parts.hostname}" + (f":{parts.port}" if parts.port else ""),)
    return ()


def _image(value, field: str, settings: Settings) -> ImageRef:
    try:
        return parse_image(value, max_bytes=settings.max_image_bytes, http_origins=_http_origins(settings))
    except InvalidImage as error:
        raise BadRequest(f"{field} {error}.", code="invalid_image") from None


def _optional_text(value, field: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be text.", code="invalid_field")
    value = value.strip()
    if len(value) > limit:
        raise BadRequest(f"{field} must be at most {limit} characters.", code="invalid_field")
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in value):
        raise BadRequest(f"{field} must not contain control characters.", code="invalid_field")
    return value or None


def parse_start(body: dict, header_user: str | None, settings: Settings) -> StartRequest:
    user_id = require_user(header_user, body.get("user_id"))
    if "person_image" not in body or body["person_image"] in (None, ""):
        raise BadRequest("person_image is required", code="missing_field")
    person = _image(body["person_image"], "person_image", settings)
    garments_value = body.get("garments")
    if garments_value is None:
        raise BadRequest("garments is required", code="missing_field")
    if not isinstance(garments_value, list):
        raise BadRequest("garments must be a list of images or {image, description, category} objects.",
                         code="invalid_field")
    if not garments_value:
        raise BadRequest("garments must have at least one garment.", code="invalid_field")
    if len(garments_value) > settings.max_garments:
        raise BadRequest(f"At most {settings.max_garments} garments can be tried on in one look.",
                         code="too_many_garments")
    garments = tuple(_garment(item, i, settings) for i, item in enumerate(garments_value))
    prompt_hints = _optional_text(body.get("prompt_hints"), "prompt_hints", MAX_PROMPT_HINTS)
    return StartRequest(user_id, person, garments, prompt_hints)


def _garment(item, index: int, settings: Settings) -> GarmentInput:
    field = f"garments[{index}]"
    if isinstance(item, str):
        return GarmentInput(_image(item, field, settings), None, "upper_body")
    if not isinstance(item, dict):
        raise BadRequest(f"{field} must be an image or an object with an image.", code="invalid_field")
    if item.get("image") in (None, ""):
        raise BadRequest(f"{field}.image is required", code="missing_field")
    image = _image(item["image"], f"{field}.image", settings)
    description = _optional_text(item.get("description"), f"{field}.description", MAX_DESCRIPTION)
    category = item.get("category") or "upper_body"
    if category not in CATEGORIES:
        raise BadRequest(f"{field}.category must be one of {', '.join(CATEGORIES)}.", code="invalid_field")
    return GarmentInput(image, description, category)


def check_task_id(value) -> str:
    if value is None or value == "":
        raise BadRequest("task_id is required", code="missing_field")
    if not isinstance(value, str) or not UUID_RE.match(value.strip().lower()):
        raise BadRequest("task_id is not a valid task id.", code="invalid_task_id")
    return value.strip().lower()


def check_idempotency_key(value: str | None) -> str | None:
    if value is None or value.strip() == "":
        return None
    if not IDEMPOTENCY_KEY_RE.match(value.strip()):
        raise BadRequest("Idempotency-Key must be 1-255 visible ASCII characters.", code="invalid_idempotency_key")
    return value.strip()


# --- start ---------------------------------------------------------------------------------------

def start(db: Database, settings: Settings, storage, request: StartRequest, idempotency_key: str | None) -> dict:
    fingerprint = request.fingerprint()
    if idempotency_key:
        existing = db.one(queries.TASK_BY_IDEMPOTENCY_KEY, {"user_id": request.user_id, "key": idempotency_key})
        if existing is not None:
            return _replayed(existing, fingerprint)
    check_caps(db, settings, request.user_id)

    task_id = str(uuid.uuid4())
    person_image = _keep(storage, task_id, "person", request.person)
    garments = [
        {"image": _keep(storage, task_id, f"garment-{i + 1}", g.image), "description": g.description,
         "category": g.category}
        for i, g in enumerate(request.garments)
    ]
    with db.transaction() as cur:
        cur.execute(queries.LOCK_USER, {"user_id": request.user_id})
        check_caps(db, settings, request.user_id, cur)
        cur.execute(queries.INSERT_TASK, {
            "id": task_id, "user_id": request.user_id, "person_image": person_image,
            "garments": json.dumps(garments), "prompt_hints": request.prompt_hints,
            "total_steps": len(garments), "idempotency_key": idempotency_key, "request_hash": fingerprint,
        })
        row = next(iter(rows(cur)), None)
    if row is None:  # a concurrent request with the same Idempotency-Key won
        existing = db.one(queries.TASK_BY_IDEMPOTENCY_KEY, {"user_id": request.user_id, "key": idempotency_key})
        return _replayed(existing, fingerprint)
    log.transition(task_id, None, "pending", total_steps=len(garments), user_id=request.user_id)
    return {
        "task_id": task_id, "status": "pending", "current_step": 0, "total_steps": len(garments),
        "estimated_time_seconds": estimate_seconds(db, len(garments)),
    }


def _replayed(row: dict, fingerprint: str) -> dict:
    if row.get("request_hash") and row["request_hash"] != fingerprint:
        raise Conflict("This Idempotency-Key was already used for a different request. Use a new key for a new look.",
                       code="idempotency_key_reused", status=row["status"])
    return {
        "task_id": row["id"], "status": row["status"], "current_step": row["current_step"],
        "total_steps": row["total_steps"], "estimated_time_seconds": None, "replayed": True,
    }


def check_caps(db: Database, settings: Settings, user_id: str, cur=None) -> None:
    """Start's caps: the user's unfinished looks and hourly starts, then the site-wide ones."""
    def count(sql: str) -> dict:
        if cur is None:
            return db.one(sql, {"user_id": user_id})
        cur.execute(sql, {"user_id": user_id})
        return rows(cur)[0]

    active = count(queries.USER_ACTIVE_TASKS)["n"]
    if active >= settings.max_active_tasks_per_user:
        raise TooManyRequests(
            f"You already have {active} looks in progress. Finish or cancel one before starting another.",
            code="too_many_active_tasks", retry_after=60,
        )
    recent = count(queries.USER_RECENT_STARTS)
    if recent["n"] >= settings.start_rate_per_user:
        raise TooManyRequests(
            f"You have started {recent['n']} looks in the last hour, the most allowed. Please try again later.",
            code="start_rate_limited", retry_after=int(recent["retry_after"] or 60),
        )
    if count(queries.ALL_ACTIVE_TASKS)["n"] >= settings.max_active_tasks:
        raise TooManyRequests("The try-on service is very busy right now. Please try again in a few minutes.",
                              code="service_busy", retry_after=300)
    check_site_step_budget(count(queries.ALL_RECENT_STEPS)["n"], settings)


def check_step_budget(db: Database, settings: Settings, user_id: str) -> None:
    """Continue and Retry each start a paid prediction: at most START_RATE_PER_USER looks' worth
    of steps (x MAX_GARMENTS) an hour per user, and MAX_STEPS_PER_HOUR for the whole site, so a
    Retry loop cannot spend without bound."""
    limit = settings.start_rate_per_user * settings.max_garments
    if db.scalar(queries.USER_RECENT_STEPS, {"user_id": user_id}) >= limit:
        raise TooManyRequests(
            f"You have run {limit} try-on steps in the last hour, the most allowed. Please try again later.",
            code="step_rate_limited", retry_after=600,
        )
    check_site_step_budget(db.scalar(queries.ALL_RECENT_STEPS), settings)


def check_site_step_budget(steps_last_hour: int, settings: Settings) -> None:
    if steps_last_hour >= settings.max_steps_per_hour:
        raise TooManyRequests("The try-on service has reached its hourly limit. Please try again later.",
                              code="service_busy", retry_after=600)


def _keep(storage, task_id: str, name: str, ref: ImageRef) -> str:
    """A data URI goes to storage when there is one; a URL stays as given."""
    if ref.url:
        return ref.url
    if storage is None:
        return ref.as_data_uri()
    return storage.put(key_for(task_id, name, ref.content_type), ref.data, ref.content_type)


def estimate_seconds(db: Database, steps: int) -> int:
    median = db.scalar(queries.RECENT_STEP_SECONDS)
    per_step = float(median) if median else DEFAULT_STEP_SECONDS
    return int(round(per_step * steps)) + 5


# --- reading -------------------------------------------------------------------------------------

def garments_of(row: dict) -> list[dict]:
    """The task's garments; rows written by the original functions may hold plain URLs."""
    try:
        items = json.loads(row["garments"])
    except (TypeError, ValueError):
        return []
    garments = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, str):
            item = {"image": item}
        if isinstance(item, dict) and isinstance(item.get("image"), str):
            garments.append({
                "image": item["image"],
                "description": item.get("description"),
                "category": item.get("category") if item.get("category") in CATEGORIES else "upper_body",
            })
    return garments


def load_owned(db: Database, task_id: str, user_id: str | None) -> dict:
    """The task with `steps`, the latest attempt of each step, for the status view."""
    found = db.prepared("replicate_task_view", queries.TASK_VIEW, {"id": task_id})
    # Someone else's task looks exactly like a missing one: nothing leaks whether it exists.
    if not found or (user_id is not None and found[0]["user_id"] != user_id):
        raise NotFound("Task not found", code="task_not_found")
    latest = {row["step"]: row for row in found if row["step"] is not None}  # ordered by attempt
    return {**found[0], "steps": [latest[step] for step in sorted(latest)]}


def view(row: dict) -> dict:
    """The status body: the task, its allowed actions, and every step (latest attempt)."""
    total = row["total_steps"] or 0
    attempts = {s["step"]: s for s in row["steps"]}
    garments = garments_of(row)
    steps = []
    for number in range(1, total + 1):
        attempt = attempts.get(number) or {}
        garment = garments[number - 1] if number <= len(garments) else None
        steps.append({
            "step": number,
            "status": attempt.get("step_status", "pending"),
            "attempt": attempt.get("attempt", 0),
            "garment": None if garment is None else {
                "image": None if garment["image"].startswith("data:") else garment["image"],
                "description": garment["description"],
                "category": garment["category"],
            },
            "image_url": attempt.get("image_url"),
            "prediction_id": attempt.get("step_prediction_id"),
            "error": attempt.get("error"),
            "started_at": _iso(attempt.get("started_at")),
            "completed_at": _iso(attempt.get("completed_at")),
        })
    return {
        "task_id": row["id"],
        "status": row["status"],
        "current_step": row["current_step"] or 0,
        "total_steps": total,
        "intermediate_result": row["intermediate_result"],
        "result_url": row["result_url"],
        "error_message": row["error_message"],
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "actions": allowed_actions(row),
        "steps": steps,
    }


def _iso(utc_text: str | None) -> str | None:
    """PostgreSQL's text of a UTC timestamp ('2026-11-27 21:02:53.7447') as ISO 8601 with Z."""
    return None if utc_text is None else utc_text.replace(" ", "T") + "Z"


def allowed_actions(row: dict) -> list[str]:
    status = row["status"]
    if status == "waiting_continue":
        return ["continue", "finish"]
    if status in ("pending", "processing"):
        return ["cancel"]
    if status == "failed":
        return ["retry", "finish"] if row["intermediate_result"] else ["retry"]
    return []


def wrong_state(row: dict, action: str) -> Conflict:
    status = row["status"]
    hints = {
        "continue": "Continue works when a step is ready and waiting for you.",
        "finish": "Finish works when a step is ready, or after a failure once at least one step succeeded.",
        "retry": "Retry works after a step failed.",
        "cancel": "Cancel works while the look is queued or a step is running.",
    }
    return Conflict(f"This look is {status.replace('_', ' ')}. {hints[action]}", status=status)


def check_action(value) -> str:
    if value is None or value == "":
        return "continue"
    if not isinstance(value, str) or value.strip().lower() not in ACTIONS:
        raise BadRequest(f"action must be one of {', '.join(ACTIONS)}.", code="invalid_action")
    return value.strip().lower()
