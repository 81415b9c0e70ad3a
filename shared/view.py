"""The status poll: the task as its owner sees it, with the actions it allows now and every step
(latest attempt). One prepared join per poll; `force_check` reconciles a running step inline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared import queries
from shared.db import Database
from shared.errors import TaskNotFound, WrongState
from shared.services import Services
from shared.states import WHEN_ALLOWED, Action, Status, allowed_actions
from shared.task import Task


@dataclass(frozen=True)
class TaskView:
    task: Task
    created_at: str | None  # UTC, as PostgreSQL's text
    updated_at: str | None
    steps: dict[int, dict[str, Any]]  # the latest attempt of each step that has one
    error_code: str | None = None
    error_detail: str | None = None


def load_owned(db: Database, task_id: str, user_id: str | None) -> TaskView:
    found = db.prepared("replicate_task_view", queries.TASK_VIEW, {"id": task_id})
    # Someone else's task looks exactly like a missing one: nothing leaks whether it exists.
    if not found or (user_id is not None and found[0]["user_id"] != user_id):
        raise TaskNotFound()
    latest = {row["step"]: row for row in found if row["step"] is not None}  # ordered by attempt
    first = found[0]
    task = Task.from_row({name: value for name, value in first.items() if name != "attempt"})  # a step's
    return TaskView(task, first["created_at"], first["updated_at"], latest, first["error_code"], first["error_detail"])


def status(services: Services, task_id: str, user: str | None, force_check: bool) -> dict[str, Any]:
    db = services.db
    seen = load_owned(db, task_id, user)
    if force_check and seen.task.status is Status.PROCESSING and seen.task.prediction_id:
        from shared import checking  # only this path talks to Replicate

        if checking.check_one(services, task_id).moved:
            seen = load_owned(db, task_id, user)
    answer = body(seen)
    running = seen.steps.get(seen.task.current_step)
    if seen.task.status is Status.PROCESSING and running and running["step_status"] == "processing":
        from shared import progress

        model = running["model"] or services.settings.replicate_model.split(":")[0]
        answer["progress"] = progress.progress(db, running["progress_percent"], running["step_elapsed_s"], model)
    return answer


def body(seen: TaskView) -> dict[str, Any]:
    """The status body: the task, its allowed actions, and every step (latest attempt)."""
    task = seen.task
    garments = task.garment_list()
    steps = []
    for number in range(1, task.total_steps + 1):
        attempt = seen.steps.get(number) or {}
        garment = garments[number - 1] if number <= len(garments) else None
        steps.append({
            "step": number,
            "status": attempt.get("step_status", "pending"),
            "attempt": attempt.get("attempt", 0),
            "garment": None if garment is None else {
                "image": None if garment.image.startswith("data:") else garment.image,
                "description": garment.description,
                "category": garment.category,
            },
            "image_url": attempt.get("image_url"),
            "prediction_id": attempt.get("step_prediction_id"),
            "error": attempt.get("error"),
            "error_code": attempt.get("step_error_code"),
            "started_at": _iso(attempt.get("started_at")),
            "completed_at": _iso(attempt.get("completed_at")),
        })
    return {
        "task_id": task.id,
        "status": task.status.value,
        "current_step": task.current_step,
        "total_steps": task.total_steps,
        "intermediate_result": task.intermediate_result,
        "result_url": task.result_url,
        "error_message": task.error_message,
        "error_code": seen.error_code,
        "error_detail": seen.error_detail,
        "created_at": _iso(seen.created_at),
        "updated_at": _iso(seen.updated_at),
        "actions": [action.value for action in allowed_actions(task.status, bool(task.intermediate_result))],
        "steps": steps,
    }


def wrong_state(task: Task, action: Action) -> WrongState:
    status = task.status.value
    return WrongState(f"This look is {status.replace('_', ' ')}. {WHEN_ALLOWED[action]}", status=status)


def _iso(utc_text: str | None) -> str | None:
    """PostgreSQL's text of a UTC timestamp ('2026-11-27 21:02:53.7447') as ISO 8601 with Z."""
    return None if utc_text is None else utc_text.replace(" ", "T") + "Z"
