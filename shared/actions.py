"""The user's buttons and the status poll, each one conditional transition plus its side effects."""

from __future__ import annotations

import secrets

from shared import engine, log, queries, storage, tasks
from shared.http import Request
from shared.replicate_api import ReplicateAPI


def status(request: Request, task_id: str, user: str | None, force_check: bool) -> dict:
    db, settings = request.db, request.settings
    row = tasks.load_owned(db, task_id, user)
    if force_check and row["status"] == "processing" and row["prediction_id"]:
        # At most one inline reconcile per task every RECHECK_INTERVAL_S, however often it is polled.
        claimed = db.one(queries.CLAIM_ONE_TO_CHECK, {"id": task_id, "recheck_s": settings.recheck_interval_s})
        if claimed is not None:
            outcome = engine.reconcile(db, settings, ReplicateAPI(settings), storage.from_settings(settings), claimed)
            if outcome not in ("running", "error"):
                row = tasks.load_owned(db, task_id, user)
    return tasks.view(row)


def perform(request: Request, task_id: str, user: str | None, action: str) -> dict:
    db, settings = request.db, request.settings
    row = tasks.load_owned(db, task_id, user)
    if action in ("continue", "retry"):
        if row["status"] == ("waiting_continue" if action == "continue" else "failed"):
            # Each step is a paid prediction: it counts against the user's hourly step budget.
            tasks.check_step_budget(db, settings, row["user_id"])
        sql = queries.CLAIM_CONTINUE if action == "continue" else queries.CLAIM_RETRY
        claimed = db.one(sql, {"id": task_id, "token": secrets.token_hex(16)})
        if claimed is None:
            raise tasks.wrong_state(tasks.load_owned(db, task_id, user), action)
        log.transition(task_id, row["status"], "processing", step=claimed["current_step"],
                       attempt=claimed["attempt"], action=action)
        # Start the step now, as the original did; if Replicate is busy the worker retries it.
        engine.launch(db, settings, ReplicateAPI(settings), storage.from_settings(settings), claimed)
    elif action == "finish":
        if db.one(queries.FINISH, {"id": task_id}) is None:
            raise tasks.wrong_state(tasks.load_owned(db, task_id, user), action)
        log.transition(task_id, row["status"], "completed", action=action)
    else:
        canceled = db.one(queries.CANCEL, {"id": task_id, "error": engine.CANCELED_BY_USER})
        if canceled is None:
            raise tasks.wrong_state(tasks.load_owned(db, task_id, user), action)
        log.transition(task_id, row["status"], "failed", step=canceled["current_step"], action=action)
        if canceled["prediction_id"]:
            engine.cancel_quietly(ReplicateAPI(settings), canceled["prediction_id"])
    return tasks.view(tasks.load_owned(db, task_id, user))
