"""Starting a look: one pending task (or the one an Idempotency-Key already made), within the
caps. Data URIs go to storage first, so the task row holds URLs."""

from __future__ import annotations

import json
import uuid
from typing import Any

from shared import log, profiles, queries
from shared.db import Database, rows
from shared.errors import WrongState
from shared.images import ImageRef
from shared.limits import check_caps
from shared.services import Services
from shared.states import Status
from shared.storage import Store, key_for
from shared.validation import StartRequest


def start(services: Services, request: StartRequest, idempotency_key: str | None) -> dict[str, Any]:
    db, settings = services.db, services.settings
    profile = profiles.active(settings)  # a misconfigured model is a 503 before anything is stored
    fingerprint = request.fingerprint()
    if idempotency_key:
        existing = db.one(queries.TASK_BY_IDEMPOTENCY_KEY, {"user_id": request.user_id, "key": idempotency_key})
        if existing is not None:
            return _replayed(existing, fingerprint)
    check_caps(db, settings, request.user_id)

    task_id = str(uuid.uuid4())
    storage = services.storage
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
        assert existing is not None  # the row that won the conflict
        return _replayed(existing, fingerprint)
    log.transition(task_id, None, Status.PENDING, total_steps=len(garments), user_id=request.user_id)
    return {
        "task_id": task_id, "status": Status.PENDING.value, "current_step": 0, "total_steps": len(garments),
        "estimated_time_seconds": estimate_seconds(db, len(garments), profile.typical_step_s),
    }


def _replayed(row: dict[str, Any], fingerprint: str) -> dict[str, Any]:
    if row.get("request_hash") and row["request_hash"] != fingerprint:
        raise WrongState("This Idempotency-Key was already used for a different request. Use a new key for a new look.",
                       code="idempotency_key_reused", status=row["status"])
    return {
        "task_id": row["id"], "status": row["status"], "current_step": row["current_step"],
        "total_steps": row["total_steps"], "estimated_time_seconds": None, "replayed": True,
    }


def _keep(storage: Store | None, task_id: str, name: str, ref: ImageRef) -> str:
    """A data URI goes to storage when there is one; a URL stays as given."""
    if ref.url:
        return ref.url
    if storage is None:
        return ref.as_data_uri()
    content_type = ref.content_type or ""
    return storage.put(key_for(task_id, name, content_type), ref.data or b"", content_type)


def estimate_seconds(db: Database, steps: int, typical_step_s: int) -> int:
    """From the last steps' median; before there is any history, the profile's typical step."""
    median = db.scalar(queries.RECENT_STEP_SECONDS)
    per_step = float(median) if median else typical_step_s
    return round(per_step * steps) + 5
