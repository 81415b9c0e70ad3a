"""The status poll: the task as its owner sees it, with the actions it allows now and every step
(latest attempt). One prepared join per poll; `force_check` reconciles a running step inline."""

from __future__ import annotations

import functools
from typing import Any

from shared import log, queries
from shared.db import Database
from shared.errors import TaskNotFound, WrongState
from shared.lazy import once
from shared.services import Services
from shared.settings import ConfigError
from shared.states import WHEN_ALLOWED, Action, Status, allowed_actions
from shared.task import Task, parse_garments


class TaskView:
    def __init__(self, row: dict[str, Any], steps: dict[int, dict[str, Any]]):
        self.row = row  # the task's columns (the first joined row)
        self.steps = steps  # the latest attempt of each step that has one

    @once
    def task(self) -> Task:
        """Typed, for the buttons; a status poll reads the row itself (a poll's Python is most
        of its cost, and it needs a few columns)."""
        return Task.from_row({name: value for name, value in self.row.items() if name != "attempt"})  # a step's


def load_owned(db: Database, task_id: str, user_id: str | None) -> TaskView:
    found = db.prepared("replicate_task_view", queries.TASK_VIEW, {"id": task_id})
    # Someone else's task looks exactly like a missing one: nothing leaks whether it exists.
    if not found or (user_id is not None and found[0]["user_id"] != user_id):
        raise TaskNotFound()
    return TaskView(found[0], {row["step"]: row for row in found if row["step"] is not None})  # ordered by attempt


def status(services: Services, task_id: str, user: str | None, force_check: bool) -> dict[str, Any]:
    db = services.db
    seen = load_owned(db, task_id, user)
    if force_check and seen.row["status"] == Status.PROCESSING and seen.row["prediction_id"]:
        from shared import checking  # only this path talks to Replicate

        try:
            if checking.check_one(services, task_id).moved:
                seen = load_owned(db, task_id, user)
        except ConfigError as error:  # best effort: the look as it is, and the operator told
            log.event("config_error", error=str(error), during="force_check")
    answer = body(seen)
    running = seen.steps.get(seen.row["current_step"])
    if seen.row["status"] == Status.PROCESSING and running and running["step_status"] == "processing":
        from shared import progress

        model = running["model"] or services.settings.replicate_model.split(":")[0]
        answer["progress"] = progress.progress(db, running["progress_percent"], running["step_elapsed_s"], model)
    return answer


def body(seen: TaskView) -> dict[str, Any]:
    """The status body: the task, its allowed actions, and every step (latest attempt)."""
    task = seen.row
    garments = parse_garments(task["garments"])
    total_steps = task["total_steps"] or 0  # NULL in rows the original functions wrote
    steps = []
    for number in range(1, total_steps + 1):
        attempt = seen.steps.get(number) or _NO_ATTEMPT
        garment = garments[number - 1] if number <= len(garments) else None
        steps.append({
            "step": number,
            "status": attempt["step_status"],
            "attempt": attempt["attempt"],
            "garment": None if garment is None else {
                "image": None if garment.image.startswith("data:") else garment.image,
                "description": garment.description,
                "category": garment.category,
            },
            "image_url": attempt["image_url"],
            "prediction_id": attempt["step_prediction_id"],
            "error": attempt["error"],
            "error_code": attempt["step_error_code"],
            "started_at": iso_utc(attempt["started_at"]),
            "completed_at": iso_utc(attempt["completed_at"]),
        })
    return {
        "task_id": task["id"],
        "status": task["status"],
        "current_step": task["current_step"] or 0,
        "total_steps": total_steps,
        "intermediate_result": task["intermediate_result"],
        "result_url": task["result_url"],
        "error_message": task["error_message"],
        "error_code": task["error_code"],
        "error_detail": task["error_detail"],
        "created_at": iso_utc(task["created_at"]),
        "updated_at": iso_utc(task["updated_at"]),
        "actions": list(_actions(task["status"], bool(task["intermediate_result"]))),
        "steps": steps,
    }


# A step not started yet, as body() shows it.
_NO_ATTEMPT: dict[str, Any] = {"step_status": "pending", "attempt": 0, "image_url": None, "step_prediction_id": None,
                               "error": None, "step_error_code": None, "started_at": None, "completed_at": None}


@functools.lru_cache(maxsize=32)
def _actions(status: str, has_image: bool) -> tuple[str, ...]:
    return tuple(action.value for action in allowed_actions(Status(status), has_image))


# "This look is ..." for each status, as a person would say it.
_STATUS_WORDS = {
    Status.PENDING: "queued",
    Status.PROCESSING: "running a step",
    Status.WAITING_CONTINUE: "waiting for you to continue",
    Status.COMPLETED: "completed",
    Status.FAILED: "failed",
}


def wrong_state(task: Task, action: Action) -> WrongState:
    return WrongState(f"This look is {_STATUS_WORDS[task.status]}. {WHEN_ALLOWED[action]}", status=task.status.value)


def moved_on(task: Task) -> WrongState:
    status = task.status.value
    return WrongState(f"This look has moved on since the button was pressed: it is now at step {task.current_step} "
                      f"(attempt {task.attempt}) and {_STATUS_WORDS[task.status]}. Nothing was changed.", status=status)


def iso_utc(utc_text: str | None) -> str | None:
    """PostgreSQL's text of a UTC timestamp ('2026-11-27 21:02:53.7447') as ISO 8601 with Z."""
    return None if utc_text is None else utc_text.replace(" ", "T") + "Z"
