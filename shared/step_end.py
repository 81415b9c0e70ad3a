"""The step-end writes of reconciling (checker batches, webhooks, force_check): one statement for
every step that succeeded, one for every step that failed, one for the progress of those still
running, however many predictions a batch holds."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from shared import log
from shared.db import UNAVAILABLE, Database
from shared.look_queries import RECORD_END
from shared.progress import percent_from_logs
from shared.states import Outcome, Status
from shared.task import Task

if TYPE_CHECKING:
    from shared.checking import Observation


# The step-end writes of a checker batch (or of one webhook or force_check): one statement for
# every step that succeeded and one for every step that failed, each row moved only if its task
# is still processing that prediction (found by primary key).
# Returns the tasks that moved; a missing id lost a race and changed nothing.
STEPS_SUCCEEDED = """
WITH seen AS (
    SELECT * FROM unnest(%(ids)s::text[], %(prediction_ids)s::text[], %(image_urls)s::text[],
                         %(outputs)s::text[], %(predict_times)s::float8[], %(models)s::text[],
                         %(costs)s::numeric[])
        AS seen (id, prediction_id, image_url, output, predict_time_s, model, cost_usd)
), t AS (
    UPDATE replicate_tasks t
    SET status = CASE WHEN t.current_step >= t.total_steps THEN 'completed' ELSE 'waiting_continue' END,
        intermediate_result = seen.image_url,
        result_url = CASE WHEN t.current_step >= t.total_steps THEN seen.image_url ELSE t.result_url END,
        error_message = NULL, error_code = NULL, error_detail = NULL, updated_at = NOW()
    FROM seen
    WHERE t.prediction_id = seen.prediction_id AND t.status = 'processing' AND t.id = seen.id
    RETURNING t.id, t.status, t.prediction_id
), history AS (
    UPDATE replicate_task_steps s
    SET status = 'succeeded', image_url = seen.image_url, replicate_output = seen.output,
        error = NULL, error_code = NULL, error_detail = NULL, progress_percent = 100,
        predict_time_s = seen.predict_time_s, model = COALESCE(s.model, seen.model),
        cost_usd = seen.cost_usd, completed_at = NOW()
    FROM t JOIN seen ON seen.id = t.id
    WHERE s.prediction_id = t.prediction_id
), """ + RECORD_END + """
SELECT id, status FROM t
"""

STEPS_FAILED = """
WITH seen AS (
    SELECT * FROM unnest(%(ids)s::text[], %(prediction_ids)s::text[], %(step_statuses)s::text[],
                         %(errors)s::text[], %(error_codes)s::text[], %(error_details)s::text[],
                         %(predict_times)s::float8[], %(models)s::text[], %(costs)s::numeric[])
        AS seen (id, prediction_id, step_status, error, error_code, error_detail, predict_time_s, model, cost_usd)
), t AS (
    UPDATE replicate_tasks t
    SET status = 'failed', error_message = seen.error, error_code = seen.error_code,
        error_detail = seen.error_detail, updated_at = NOW()
    FROM seen
    WHERE t.prediction_id = seen.prediction_id AND t.status = 'processing' AND t.id = seen.id
    RETURNING t.id, t.status, t.prediction_id
), history AS (
    UPDATE replicate_task_steps s
    SET status = seen.step_status, error = seen.error, error_code = seen.error_code,
        error_detail = seen.error_detail, predict_time_s = seen.predict_time_s,
        model = COALESCE(s.model, seen.model), cost_usd = seen.cost_usd, completed_at = NOW()
    FROM t JOIN seen ON seen.id = t.id
    WHERE s.prediction_id = t.prediction_id
), """ + RECORD_END + """
SELECT id, status FROM t
"""

# How far running steps have got (from their predictions' logs), in one statement per batch.
STEPS_PROGRESS = """
UPDATE replicate_task_steps s SET progress_percent = seen.percent
FROM unnest(%(prediction_ids)s::text[], %(percents)s::smallint[]) AS seen (prediction_id, percent)
WHERE s.prediction_id = seen.prediction_id AND s.status = 'processing'
  AND s.progress_percent IS DISTINCT FROM seen.percent
"""

def apply_all(db: Database, checked: list[tuple[Task, Observation]]) -> list[Outcome]:
    """The database half of a batch of checks, in at most three statements (the steps that
    succeeded, those that failed, the progress of those still running): each check's Outcome."""
    outcomes: list[Outcome] = []
    succeeded, failed, running = [], [], []
    for task, seen in checked:
        if seen.skipped:
            outcomes.append(Outcome.SKIPPED)
        elif seen.transient:
            log.event("check_deferred", task_id=task.id, **step_of(task), reason=seen.transient)
            outcomes.append(Outcome.ERROR)
        elif seen.failure:
            failed.append((task, seen))
            outcomes.append(Outcome.FAILED)
        elif seen.image_url and seen.prediction is not None:
            succeeded.append((task, seen))
            outcomes.append(Outcome.READY)
        else:
            running.append(seen)
            outcomes.append(Outcome.RUNNING)
    moved = write_failed(db, failed) | write_succeeded(db, succeeded)
    write_progress(db, running)
    for index, (task, seen) in enumerate(checked):
        if outcomes[index] not in (Outcome.FAILED, Outcome.READY):
            continue
        status = moved.get(task.id)
        if status is None:
            outcomes[index] = Outcome.STALE
        elif status == Status.FAILED:
            log.transition(task.id, Status.PROCESSING, Status.FAILED, **step_of(task), error=seen.failure,
                           error_code=seen.error_code)
        else:
            log.transition(task.id, Status.PROCESSING, status, **step_of(task), image_url=seen.image_url)
            outcomes[index] = Outcome.COMPLETED if status == Status.COMPLETED else Outcome.READY
    return outcomes


def apply_isolated(db: Database, checked: list[tuple[Task, Observation]]) -> list[Outcome]:
    """The batch in one go; should it fail (a bug, a row the schema refuses), one by one, so that
    one prediction's trouble never holds back the others. Not when the database is down or timed
    out: each write would fail or wait the same, and the next ping applies them all."""
    try:
        return apply_all(db, checked)
    except UNAVAILABLE:
        raise
    except Exception as error:
        log.event("check_batch_error", size=len(checked), error=type(error).__name__)
    outcomes = []
    for task, seen in checked:
        try:
            outcomes.extend(apply_all(db, [(task, seen)]))
        except Exception as error:
            log.event("check_error", task_id=task.id, error=type(error).__name__,
                      trace=log.trace())
            outcomes.append(Outcome.ERROR)
    return outcomes


def step_of(task: Task) -> dict[str, Any]:
    return {"step": task.current_step, "attempt": task.attempt, "prediction_id": task.prediction_id}


def write_succeeded(db: Database, checked: list[tuple[Task, Observation]]) -> dict[str, str]:
    if not checked:
        return {}
    outputs = [None if seen.prediction is None else seen.prediction.output for _, seen in checked]
    rows = db.all(STEPS_SUCCEEDED, {
        "ids": [task.id for task, _ in checked],
        "prediction_ids": [task.prediction_id for task, _ in checked],
        "image_urls": [seen.image_url for _, seen in checked],
        "outputs": [output if isinstance(output, str) else json.dumps(output) for output in outputs],
        **_spend_columns(checked),
    })
    return {row["id"]: row["status"] for row in rows}


def write_failed(db: Database, checked: list[tuple[Task, Observation]]) -> dict[str, str]:
    if not checked:
        return {}
    rows = db.all(STEPS_FAILED, {
        "ids": [task.id for task, _ in checked],
        "prediction_ids": [task.prediction_id for task, _ in checked],
        "step_statuses": [seen.failure_status for _, seen in checked],
        "errors": [log.scrub(seen.failure) for _, seen in checked],
        "error_codes": [None if seen.error_code is None else seen.error_code.value for _, seen in checked],
        "error_details": [log.scrub(seen.error_detail) for _, seen in checked],
        **_spend_columns(checked),
    })
    return {row["id"]: row["status"] for row in rows}


def _spend_columns(checked: list[tuple[Task, Observation]]) -> dict[str, list[Any]]:
    """Each step's model, metrics.predict_time and cost (shared.costs.step_spend; None: unknown)."""
    spends = [seen.spend for _, seen in checked]
    return {
        "predict_times": [spend.get("predict_time_s") for spend in spends],
        "models": [spend.get("model") for spend in spends],
        "costs": [spend.get("cost_usd") for spend in spends],
    }


def write_progress(db: Database, running: list[Observation]) -> None:
    """Percent from the logs of the predictions just read (the list endpoint's may have none)."""
    read = [(seen.prediction.id, percent_from_logs(seen.prediction.logs))
            for seen in running if seen.prediction is not None]
    known = [(prediction_id, percent) for prediction_id, percent in read if percent is not None]
    if known:
        db.all(STEPS_PROGRESS, {"prediction_ids": [p for p, _ in known], "percents": [n for _, n in known]})
