"""Creating a step's prediction exactly once (worker, continue, retry).

Exactly once: a step's prediction is created only by the holder of the task's `claim_token`,
taken in one conditional UPDATE, and recorded with another that still requires the token. Two
pings, a double click or a duplicate webhook can never both hold it.

What a crash can cost: if the process dies after Replicate created the prediction and before the
LAUNCHED update commits (milliseconds), or a create times out on our side after Replicate
accepted it, no task knows that prediction. The claim goes stale after CLAIM_STALE_S and the
step is created again: one extra prediction. Three rules keep it at one and keep live runs from
being doubled: a create may only start while its claim is younger than CLAIM_STALE_S minus
REPLICATE_TIMEOUT_S (so it ends before anyone may re-drive it); a worker sends one create at a
time and records it before the next; and a launch whose claim was taken over cancels what it made.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared import log, profiles, queries
from shared.db import Database
from shared.images import CONTENT_TYPES, to_data_uri
from shared.profiles import StepImages
from shared.replicate_api import OutOfTime, Prediction, Rejected, ReplicateAPI, Transient
from shared.services import Services
from shared.settings import Settings
from shared.states import ErrorCode, LaunchOutcome, Status
from shared.storage import StorageError, Store
from shared.task import Task


def step_input(settings: Settings, storage: Store | None, task: Task) -> dict[str, Any]:
    """The model input for the task's current step (the site's profile): the previous image dressed in garment k."""
    step = task.current_step
    garments = task.garment_list()
    if not 1 <= step <= len(garments):
        raise Rejected(f"Step {step} has no garment: this task's garment list cannot be read.")
    garment = garments[step - 1]
    human = task.person_image if step == 1 else task.intermediate_result
    if not human:
        raise Rejected("The image from the previous step is missing, so this step cannot run.")
    return profiles.active(settings).to_input(StepImages(
        person=_reachable(settings, storage, human), garment=_reachable(settings, storage, garment.image),
        category=garment.category, description=garment.description, prompt_hints=task.prompt_hints))


def _reachable(settings: Settings, storage: Store | None, url: str) -> str:
    """Replicate cannot fetch files from a local folder served on this machine: send the bytes."""
    if storage is None or storage.is_public() or _replicate_is_local(settings):
        return url
    key = storage.key_of(url)
    if key is None:
        return url
    extension = key.rsplit(".", 1)[1]
    content_type = next(kind for kind, ext in CONTENT_TYPES.items() if ext == extension)
    return to_data_uri(storage.get(key), content_type)


def _replicate_is_local(settings: Settings) -> bool:
    base: str = settings.replicate_base_url
    return base.startswith(("http://127.", "http://localhost"))


@dataclass(frozen=True)
class Launch:
    outcome: LaunchOutcome
    prediction_id: str | None = None
    throttled: bool = False


def backoff_seconds(retry_after: float | None) -> float:
    return max(1.0, min(retry_after if retry_after is not None else 5.0, 300.0))


def create_prediction(settings: Settings, api: ReplicateAPI, storage: Store | None, task: Task,
                      claimed: float | None = None) -> Prediction | Exception:
    """The network half of a launch: the prediction, or the error it met.
    `claimed` (time.monotonic() when the claim was taken): the create must start early enough to
    end, even by timing out, before the claim could go stale and be re-driven by another run."""
    claimed = time.monotonic() if claimed is None else claimed
    start_by = claimed + settings.claim_stale_s - settings.replicate_timeout_s - 1.0
    try:
        model_input = step_input(settings, storage, task)
        return api.create(model_input, webhook=settings.checker_url or None, cancel_after_s=settings.step_timeout_s,
                          start_by=start_by)
    except (Transient, Rejected, StorageError) as error:
        return error


def record_launch(db: Database, api: ReplicateAPI, task: Task, result: Prediction | Exception) -> Launch:
    """The database half of a launch: exactly one of LAUNCHED, LAUNCH_FAILED or LAUNCH_DEFERRED."""
    claim = {"id": task.id, "token": task.claim_token}
    step = {"step": task.current_step, "attempt": task.attempt}
    if isinstance(result, Prediction):
        row = db.one(queries.LAUNCHED, {**claim, "prediction_id": result.id})
        if row is None:
            # The task moved on without us (canceled, or our claim was re-driven): stop the orphan.
            log.event("orphan_prediction", task_id=task.id, **step, prediction_id=result.id)
            cancel_quietly(api, result.id)
            return Launch(LaunchOutcome.LOST, result.id)
        log.transition(task.id, Status.PROCESSING, Status.PROCESSING, **step, prediction_id=result.id,
                       note="prediction created")
        return Launch(LaunchOutcome.LAUNCHED, result.id)
    if isinstance(result, Rejected):
        rejected = {"error": result.message, "error_code": ErrorCode.REPLICATE_REJECTED.value,
                    "error_detail": result.message}
        db.one(queries.LAUNCH_FAILED, {**claim, **rejected})
        log.transition(task.id, Status.PROCESSING, Status.FAILED, **step, error=result.message)
        return Launch(LaunchOutcome.FAILED)
    retry_after = getattr(result, "retry_after", None)
    # Out of time is not Replicate's trouble: give the claim back for the very next ping.
    delay = 0.0 if isinstance(result, OutOfTime) else backoff_seconds(retry_after)
    db.one(queries.LAUNCH_DEFERRED, {**claim, "delay_s": delay})
    log.event("launch_deferred", task_id=task.id, **step, reason=str(result), delay_s=delay)
    return Launch(LaunchOutcome.DEFERRED, throttled=getattr(result, "status", None) == 429)


def launch(services: Services, task: Task) -> Launch:
    api = services.replicate
    return record_launch(services.db, api, task, create_prediction(services.settings, api, services.storage, task))


def cancel_quietly(api: ReplicateAPI, prediction_id: str) -> bool:
    try:
        api.cancel(prediction_id)
        return True
    except (Transient, Rejected) as error:
        log.event("cancel_failed", prediction_id=prediction_id, reason=str(error))
        return False


def run_worker(services: Services, remaining: Callable[[], float]) -> dict[str, Any]:
    """Starts due steps, oldest first, one after another within Replicate's create rate, until
    none are due, the budget runs out, or Replicate throttles us. `remaining()` is the time left
    to claim in, already short of what an in-flight create needs before the platform's limit.

    One create at a time, each recorded before the next is sent: if the instance is killed, at
    most one prediction exists that no task knows about (the contract's "a crash costs at most
    one extra prediction"); concurrent creates would orphan every one in flight."""
    db, settings = services.db, services.settings
    from shared import actions, completion

    idle_finished = actions.finish_idle(db, settings)
    counts = dict.fromkeys(LaunchOutcome, 0)
    throttled = False
    api = services.replicate
    api.deadline = time.monotonic() + max(remaining(), 0.0)
    while not throttled and remaining() > 0:
        found = db.one(queries.CLAIM_TO_LAUNCH, {"stale_s": settings.claim_stale_s, "limit": 1,
                                                 "token": secrets.token_hex(16)})
        claimed = time.monotonic()
        if found is None:
            break
        task = Task.from_row(found)
        log.transition(task.id, task.previous_status, Status.PROCESSING, step=task.current_step,
                       attempt=task.attempt, note="claimed")
        result = create_prediction(settings, api, services.storage, task, claimed)
        outcome = record_launch(db, api, task, result)
        counts[outcome.outcome] += 1
        throttled = outcome.throttled
    # Completion webhooks go after the launches: a step waiting for its prediction costs a user's time.
    webhooks = completion.deliver_due(services, remaining)
    started = counts[LaunchOutcome.LAUNCHED]
    return {"message": f"Started {started} tasks", "started": started, "failed": counts[LaunchOutcome.FAILED],
            "deferred": counts[LaunchOutcome.DEFERRED], "lost": counts[LaunchOutcome.LOST], "throttled": throttled,
            "idle_finished": idle_finished, "webhooks_delivered": webhooks["delivered"],
            "webhooks_failed": webhooks["failed"]}
