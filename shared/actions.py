"""The user's buttons: continue, finish, retry and cancel. Whether an action applies comes from
`shared.states.TRANSITIONS`; each move is then one conditional statement, so a double click or
a race with the checker finds nothing left to move and answers 409."""

from __future__ import annotations

from typing import Any

from shared import log, look_queries, queries
from shared.db import Database, rows
from shared.limits import check_step_budget
from shared.services import Services
from shared.settings import ConfigError, Settings
from shared.states import Action, ErrorCode, Status, transition
from shared.task import Task
from shared.view import body, load_owned, moved_on, wrong_state

CANCELED_BY_USER = "canceled by user"
IDLE_FINISH_BATCH = 100

# The conditional statement that makes each move (its WHERE repeats the move's source status).
_CLAIMS = {Action.CONTINUE: queries.CLAIM_CONTINUE, Action.RETRY: queries.CLAIM_RETRY}


def perform(services: Services, task_id: str, user: str | None, action: Action,
            seen: dict[str, int | None]) -> dict[str, Any]:
    """`seen`: the look's `step` and `attempt` when the button was pressed (each may be None): an
    action meant for a look that has moved on since is a 409 and changes nothing."""
    db = services.db
    task = load_owned(db, task_id, user).task
    move = transition(task.status, action, has_image=bool(task.intermediate_result))
    if move is None:
        raise wrong_state(task, action)
    # Cancel costs nothing and is meant for whatever runs now (a queued look's step 0 becomes step
    # 1 when the worker takes it); the others are meant for the step the user was looking at.
    if action is not Action.CANCEL and _moved_on(task, seen):
        raise moved_on(task)
    if move.starts_step:
        from shared import launching  # only the buttons that start a step talk to Replicate

        launching.check_configured(services)  # a 503 now, not after the look has moved on
        # Each step is a paid prediction: it counts against the hourly step budgets, decided
        # under the spending locks, so concurrent buttons cannot both take the last step.
        with db.transaction() as cur:
            cur.execute(queries.LOCKED_STEP_BUDGET, {"user_id": task.user_id})
            check_step_budget(rows(cur)[0], services.settings)
            cur.execute(_CLAIMS[action], {"id": task_id, "token": queries.new_claim_token(), **seen})
            claimed = next(iter(rows(cur)), None)
        if claimed is None:
            now = load_owned(db, task_id, user).task
            raise moved_on(now) if _moved_on(now, seen) else wrong_state(now, action)
        step = Task.from_row(claimed)
        log.transition(task_id, task.status, Status.PROCESSING, step=step.current_step, attempt=step.attempt,
                       action=action)
        # Start the step now, as the original did; if Replicate is busy the worker retries it.
        launching.launch(services, step)
    elif action is Action.FINISH:
        if db.one(queries.FINISH, {"id": task_id}) is None:
            raise wrong_state(load_owned(db, task_id, user).task, action)
        log.transition(task_id, task.status, Status.COMPLETED, action=action)
    else:
        canceled = db.one(queries.CANCEL, {"id": task_id, "error": CANCELED_BY_USER,
                                             "error_code": ErrorCode.CANCELED_BY_USER.value})
        if canceled is None:
            raise wrong_state(load_owned(db, task_id, user).task, action)
        log.transition(task_id, task.status, Status.FAILED, step=canceled["current_step"], action=action)
        if canceled["prediction_id"]:
            _cancel_prediction(services, canceled["prediction_id"])
    return body(load_owned(db, task_id, user))


def _moved_on(task: Task, seen: dict[str, int | None]) -> bool:
    return (seen["step"] is not None and seen["step"] != task.current_step) or (
        seen["attempt"] is not None and seen["attempt"] != task.attempt)


def _cancel_prediction(services: Services, prediction_id: str) -> None:
    """Cancels the step's prediction at Replicate and records what it cost from the answer."""
    from shared import costs, launching, profiles

    try:
        api, profile = services.replicate, profiles.active(services.settings)
    except ConfigError as error:  # the cancel is saved: the step deadline stops the prediction
        log.event("cancel_failed", prediction_id=prediction_id, reason=f"not configured: {error}")
        return
    prediction = launching.cancel_quietly(api, prediction_id)
    if prediction is not None:
        costs.record_canceled_spend(services.db, profile, prediction)


def finish_idle(db: Database, settings: Settings) -> int:
    """Worker: looks left in waiting_continue for LOOK_IDLE_FINISH_S end as "Finish here" would, so
    an abandoned look never holds its user's place; a failed look left alone stays failed."""
    finished = db.all(look_queries.FINISH_IDLE, {"idle_s": settings.look_idle_finish_s, "limit": IDLE_FINISH_BATCH})
    for row in finished:
        log.transition(row["id"], Status.WAITING_CONTINUE, Status.COMPLETED, note="idle finish")
    return len(finished)
