"""Starting a look: one pending task (or the one an Idempotency-Key already made), within the
caps, in four round trips: BEGIN, START_CHECKS, the spending locks and INSERT_TASK, COMMIT.
Uploaded images are written to storage once the checks passed, before the INSERT, so the task
row holds URLs; a start that is not saved after all deletes the files it wrote."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable
from typing import Any

from shared import log, profiles, start_queries
from shared.db import rows
from shared.errors import LimitReached, WrongState
from shared.images import ImageRef
from shared.limits import cap_limits, check_caps
from shared.services import Services
from shared.start_request import StartRequest
from shared.states import Status
from shared.storage import StorageError, Store, file_name, key_for, new_file_prefix, run_within

# Start's own time budget (its function timeout is 15 s): uploads end inside it, whatever S3 does.
BUDGET_S = 10.0
# Time kept after the uploads for the INSERT (which may wait the 5 s lock timeout for the site's
# lock), the COMMIT and the answer.
AFTER_UPLOADS_S = 5.5
# How long a start that failed waits for the files it wrote to be deleted.
DELETE_WAIT_S = 2.0


class _Refused(Exception):
    """INSERT_TASK found a cap full or the key taken after all: checked again without the race."""


def start(services: Services, request: StartRequest, idempotency_key: str | None,
          remaining: Callable[[], float]) -> dict[str, Any]:
    """`remaining()`: seconds left of the start's budget (BUDGET_S)."""
    try:
        return _start(services, request, idempotency_key, remaining)
    except _Refused:
        pass
    # A start that committed while this one waited for the user's lock: now it is visible.
    try:
        return _start(services, request, idempotency_key, remaining)
    except _Refused:
        raise LimitReached("Too many looks are starting at once. Please try again in a moment.",
                           code="service_busy", retry_after=5) from None


def _start(services: Services, request: StartRequest, idempotency_key: str | None,
           remaining: Callable[[], float]) -> dict[str, Any]:
    db, settings = services.db, services.settings
    profile = profiles.active(settings)  # a misconfigured model is a 503 before anything is stored
    fingerprint = request.fingerprint()
    file_prefix = new_file_prefix()
    storage = services.storage
    uploads: dict[str, ImageRef] = {}  # key -> image, written once the row is in

    def url(task_id: str, name: str, ref: ImageRef) -> str:
        if ref.url:
            return ref.url
        if storage is None:  # no store configured: the data URI stays in the row (the original)
            return ref.as_data_uri()
        key = key_for(file_prefix, task_id, name, ref.content_type or "")
        uploads[key] = ref
        return f"{storage.public_url}/{key}"

    written: list[str] = []
    inserted = False
    try:
        with db.transaction() as cur:
            cur.execute(start_queries.START_CHECKS, {"user_id": request.user_id, "key": idempotency_key})
            checks = rows(cur)[0]
            if checks["existing"] is not None:
                return _replayed(checks["existing"], fingerprint)
            check_caps(checks, settings)
            task_id = checks["new_task_id"]
            person_image = url(task_id, file_name("person"), request.person)
            garments = [{"image": url(task_id, file_name(f"garment-{i + 1}"), g.image), "description": g.description,
                         "category": g.category} for i, g in enumerate(request.garments)]
            # Stored before the INSERT: the site's lock it takes is then held for no upload.
            if uploads:  # all at once, ended inside the budget
                assert storage is not None
                written.extend(uploads)
                run_within(max(remaining() - AFTER_UPLOADS_S, 0.5), [
                    functools.partial(storage.put, key, ref.data or b"", ref.content_type or "")
                    for key, ref in uploads.items()])
            cur.execute(start_queries.LOCKED_INSERT_TASK, {
                "id": task_id, "user_id": request.user_id, "person_image": person_image,
                "garments": json.dumps(garments), "prompt_hints": request.prompt_hints,
                "total_steps": len(garments), "key": idempotency_key, "request_hash": fingerprint,
                "file_prefix": file_prefix, **cap_limits(settings),
            })
            if cur.fetchone() is None:
                raise _Refused()
            inserted = True
    except BaseException:
        # Not saved: neither are its files. Once inserted, only the COMMIT can have failed, and its
        # answer may be what was lost: the look may be saved, so its files stay (at worst unused).
        if not inserted:
            _delete_quietly(storage, written)
        raise
    log.transition(task_id, None, Status.PENDING, total_steps=len(garments), user_id=request.user_id)
    per_step = float(checks["step_seconds"] or profile.typical_step_s)
    return {
        "task_id": task_id, "status": Status.PENDING.value, "current_step": 0, "total_steps": len(garments),
        "estimated_time_seconds": estimate_seconds(per_step, len(garments)),
    }


def _replayed(row: dict[str, Any], fingerprint: str) -> dict[str, Any]:
    if row.get("request_hash") and row["request_hash"] != fingerprint:
        raise WrongState("This Idempotency-Key was already used for a different request. Use a new key for a new look.",
                       code="idempotency_key_reused", status=row["status"])
    return {
        "task_id": row["id"], "status": row["status"], "current_step": row["current_step"],
        "total_steps": row["total_steps"], "estimated_time_seconds": None, "replayed": True,
    }


def _delete_quietly(storage: Store | None, keys: list[str]) -> None:
    if storage is None or not keys:
        return
    with contextlib.suppress(StorageError):  # a file left behind is unreachable: no task names it
        run_within(DELETE_WAIT_S, [functools.partial(storage.delete, key) for key in keys])


def estimate_seconds(per_step: float, steps: int) -> int:
    """Seconds until the last step is ready: the median of recent steps (before there is any
    history, the profile's typical step) for each, plus the poke."""
    return round(per_step * steps) + 5
