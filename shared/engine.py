"""Running steps on Replicate: creating a step's prediction exactly once, and moving a task on
when its prediction ends. Used by worker, checker, continue and status?force_check alike.

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

import concurrent.futures
import json
import secrets
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from shared import log, queries
from shared.db import Database
from shared.images import CONTENT_TYPES, DownloadError, download, to_data_uri
from shared.replicate_api import NotFound, OutOfTime, Prediction, Rejected, ReplicateAPI, Transient
from shared.settings import Settings
from shared.storage import StorageError, key_for
from shared.tasks import CATEGORY_WORDS, garments_of

MAX_OUTPUT_BYTES = 25 * 1024 * 1024
CANCELED_BY_USER = "canceled by user"
CANCEL_AFTER_SLACK_S = 3.0


def step_input(settings: Settings, storage, task: dict) -> dict:
    """The model input for the task's current step: the previous image dressed in garment k."""
    step = task["current_step"]
    garments = garments_of(task)
    if not 1 <= step <= len(garments):
        raise Rejected(f"Step {step} has no garment: this task's garment list cannot be read.")
    garment = garments[step - 1]
    human = task["person_image"] if step == 1 else task["intermediate_result"]
    if not human:
        raise Rejected("The image from the previous step is missing, so this step cannot run.")
    hints = [text for text in (garment["description"], task.get("prompt_hints")) if text]
    return {
        "human_img": _reachable(settings, storage, human),
        "garm_img": _reachable(settings, storage, garment["image"]),
        "garment_des": ". ".join(hints) or CATEGORY_WORDS[garment["category"]],
        "category": garment["category"],
    }


def _reachable(settings: Settings, storage, url: str) -> str:
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
    base = settings.replicate_base_url
    return base.startswith("http://127.") or base.startswith("http://localhost")


# --- launching -----------------------------------------------------------------------------------

@dataclass
class Launch:
    outcome: str  # launched | failed | deferred | lost
    prediction_id: str | None = None
    throttled: bool = False


def backoff_seconds(retry_after: float | None) -> float:
    return max(1.0, min(retry_after if retry_after is not None else 5.0, 300.0))


def create_prediction(settings: Settings, api: ReplicateAPI, storage, task: dict,
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


def record_launch(db: Database, api: ReplicateAPI, task: dict, result: Prediction | Exception) -> Launch:
    """The database half of a launch: exactly one of LAUNCHED, LAUNCH_FAILED or LAUNCH_DEFERRED."""
    claim = {"id": task["id"], "token": task["claim_token"]}
    step = {"step": task["current_step"], "attempt": task["attempt"]}
    if isinstance(result, Prediction):
        row = db.one(queries.LAUNCHED, {**claim, "prediction_id": result.id})
        if row is None:
            # The task moved on without us (canceled, or our claim was re-driven): stop the orphan.
            log.event("orphan_prediction", task_id=task["id"], **step, prediction_id=result.id)
            cancel_quietly(api, result.id)
            return Launch("lost", result.id)
        log.transition(task["id"], "processing", "processing", **step, prediction_id=result.id,
                       note="prediction created")
        return Launch("launched", result.id)
    if isinstance(result, Rejected):
        db.one(queries.LAUNCH_FAILED, {**claim, "error": result.message})
        log.transition(task["id"], "processing", "failed", **step, error=result.message)
        return Launch("failed")
    retry_after = getattr(result, "retry_after", None)
    # Out of time is not Replicate's trouble: give the claim back for the very next ping.
    delay = 0.0 if isinstance(result, OutOfTime) else backoff_seconds(retry_after)
    db.one(queries.LAUNCH_DEFERRED, {**claim, "delay_s": delay})
    log.event("launch_deferred", task_id=task["id"], **step, reason=str(result), delay_s=delay)
    return Launch("deferred", throttled=getattr(result, "status", None) == 429)


def launch(db: Database, settings: Settings, api: ReplicateAPI, storage, task: dict) -> Launch:
    return record_launch(db, api, task, create_prediction(settings, api, storage, task))


def cancel_quietly(api: ReplicateAPI, prediction_id: str) -> bool:
    try:
        api.cancel(prediction_id)
        return True
    except (Transient, Rejected) as error:
        log.event("cancel_failed", prediction_id=prediction_id, reason=str(error))
        return False


def run_worker(db: Database, settings: Settings, api: ReplicateAPI, storage, remaining) -> dict:
    """Starts due steps, oldest first, one after another within Replicate's create rate, until
    none are due, the budget runs out, or Replicate throttles us. `remaining()` is the time left
    to claim in, already short of what an in-flight create needs before the platform's limit.

    One create at a time, each recorded before the next is sent: if the instance is killed, at
    most one prediction exists that no task knows about (the contract's "a crash costs at most
    one extra prediction"); concurrent creates would orphan every one in flight."""
    counts = {"launched": 0, "failed": 0, "deferred": 0, "lost": 0}
    throttled = False
    api.deadline = time.monotonic() + max(remaining(), 0.0)
    while not throttled and remaining() > 0:
        tasks = db.all(queries.CLAIM_TO_LAUNCH, {"stale_s": settings.claim_stale_s, "limit": 1,
                                                 "token": secrets.token_hex(16)})
        claimed = time.monotonic()
        if not tasks:
            break
        task = tasks[0]
        log.transition(task["id"], task["previous_status"], "processing", step=task["current_step"],
                       attempt=task["attempt"], note="claimed")
        outcome = record_launch(db, api, task, create_prediction(settings, api, storage, task, claimed))
        counts[outcome.outcome] += 1
        throttled = outcome.throttled
    started = counts["launched"]
    return {"message": f"Started {started} tasks", "started": started, "failed": counts["failed"],
            "deferred": counts["deferred"], "lost": counts["lost"], "throttled": throttled}


# --- reconciling ---------------------------------------------------------------------------------

@dataclass
class Observation:
    """What the network half of a check found: the prediction, and the stored image if it succeeded."""

    prediction: Prediction | None = None
    image_url: str | None = None
    failure: str | None = None          # a permanent end of the step, written for the user
    failure_status: str = "failed"      # the step row's status: failed or canceled
    transient: str | None = None        # try again on the next ping
    retry_after: float | None = None
    skipped: bool = False               # not looked at: this run ran out of time


def _past_deadline(settings: Settings, task: dict, slack_s: float = 0.0) -> bool:
    """Whether the step ran longer than STEP_TIMEOUT_S. `slack_s` lets an end that Replicate
    made at our Cancel-After (counted from its creation, a moment before we recorded it) count."""
    started = task.get("step_started_at")
    if started is None:
        return False
    if started.tzinfo is None:
        started = started.replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - started).total_seconds() > settings.step_timeout_s - slack_s


def timeout_message(settings: Settings, step: int) -> str:
    minutes = settings.step_timeout_s / 60
    span = f"{minutes:g} minutes" if minutes >= 1 else f"{settings.step_timeout_s} seconds"
    return f"Step {step} took longer than {span} and was stopped. Press Retry to run it again."


def observe(settings: Settings, api: ReplicateAPI, storage, task: dict, prediction: Prediction | None = None) -> Observation:
    """The network half of a check (safe in a thread): reads the prediction unless given, and
    copies a finished image into storage. Never raises for Replicate or storage trouble."""
    step = task["current_step"]
    try:
        if prediction is None:
            prediction = api.get(task["prediction_id"])
    except OutOfTime as error:
        return Observation(transient=error.reason, skipped=True)
    except NotFound:
        return Observation(failure=f"Replicate no longer has the prediction for step {step}. Press Retry to run it again.")
    except Transient as error:
        return Observation(transient=error.reason, retry_after=error.retry_after)
    except Rejected as error:
        # Not the prediction's own end (our credentials, say): keep waiting; the deadline still applies.
        if _past_deadline(settings, task):
            return Observation(failure=timeout_message(settings, step), failure_status="canceled")
        return Observation(transient=error.message)

    seen = Observation(prediction=prediction)
    status = prediction.status
    if status == "succeeded":
        return _keep_output(settings, storage, task, prediction)
    if status == "failed":
        detail = (prediction.error or "").strip().splitlines()
        reason = f": {detail[0][:200]}" if detail else ""
        seen.failure = f"The try-on model could not finish step {step}{reason}. Press Retry to try again."
    elif status in ("canceled", "aborted"):
        seen.failure_status = "canceled"
        if _past_deadline(settings, task, slack_s=CANCEL_AFTER_SLACK_S):
            seen.failure = timeout_message(settings, step)
        elif status == "canceled":
            seen.failure = f"Step {step} was canceled at Replicate. Press Retry to run it again."
        else:
            seen.failure = f"Replicate could not start step {step} in time. Press Retry to try again."
    elif _past_deadline(settings, task):
        cancel_quietly(api, prediction.id)
        seen.failure_status = "canceled"
        seen.failure = timeout_message(settings, step)
    return seen


def _keep_output(settings: Settings, storage, task: dict, prediction: Prediction) -> Observation:
    step = task["current_step"]
    url = prediction.output_url
    if url is None:
        if prediction.data_removed:
            return Observation(prediction=prediction, failure=(
                f"Replicate deleted the image of step {step} before it could be saved. Press Retry to run it again."))
        return Observation(prediction=prediction, failure=f"The try-on model returned no image for step {step}. Press Retry to try again.")
    if storage is None:
        return Observation(prediction=prediction, image_url=url)
    try:
        data, content_type = download(url, max_bytes=MAX_OUTPUT_BYTES)
        key = key_for(task["id"], f"step-{step}-{task['attempt']}", content_type)
        return Observation(prediction=prediction, image_url=storage.put(key, data, content_type))
    except DownloadError as error:
        if error.transient:
            return Observation(prediction=prediction, transient=f"saving the image: {error}")
        return Observation(prediction=prediction, failure=(
            f"The image of step {step} could not be saved ({error}). Press Retry to run it again."))
    except StorageError as error:
        return Observation(prediction=prediction, transient=str(error))


def apply(db: Database, task: dict, seen: Observation) -> str:
    """The database half of a check. Returns running | ready | completed | failed | stale | error."""
    step = {"step": task["current_step"], "attempt": task["attempt"], "prediction_id": task["prediction_id"]}
    if seen.skipped:
        return "skipped"
    if seen.transient:
        log.event("check_deferred", task_id=task["id"], **step, reason=seen.transient)
        return "error"
    params = {"id": task["id"], "prediction_id": task["prediction_id"]}
    if seen.failure:
        row = db.one(queries.STEP_FAILED, {**params, "error": seen.failure, "step_status": seen.failure_status})
        if row is None:
            return "stale"
        log.transition(task["id"], "processing", "failed", **step, error=seen.failure)
        return "failed"
    if seen.image_url:
        output = seen.prediction.output
        row = db.one(queries.STEP_SUCCEEDED, {**params, "image_url": seen.image_url,
                                              "output": output if isinstance(output, str) else json.dumps(output)})
        if row is None:
            return "stale"
        log.transition(task["id"], "processing", row["status"], **step, image_url=seen.image_url)
        return "completed" if row["status"] == "completed" else "ready"
    return "running"


def reconcile(db: Database, settings: Settings, api: ReplicateAPI, storage, task: dict,
              prediction: Prediction | None = None) -> str:
    return apply(db, task, observe(settings, api, storage, task, prediction))


# With this many predictions due, one page of Replicate's list endpoint (100 predictions with
# status and output) replaces up to 100 single reads.
LIST_WHEN_DUE = 8
MAX_LIST_PAGES = 100
# Replicate stamps a prediction's created_at a moment before we record step_started_at.
LIST_WINDOW_SLACK_S = 120


def recent_predictions(db: Database, settings: Settings, api: ReplicateAPI, remaining) -> dict[str, Prediction]:
    """The account's predictions since the oldest due step started, by id, when enough are due
    for listing to be cheaper than single reads; {} otherwise. Stops at the budget or on any
    trouble: whatever is not listed is read one by one."""
    due = db.one(queries.DUE_TO_CHECK, {"recheck_s": settings.recheck_interval_s})
    if due["n"] < LIST_WHEN_DUE or due["oldest"] is None:
        return {}
    oldest = due["oldest"] if due["oldest"].tzinfo else due["oldest"].replace(tzinfo=timezone.utc)
    after = (oldest.astimezone(timezone.utc) - timedelta(seconds=LIST_WINDOW_SLACK_S)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    listed: dict[str, Prediction] = {}
    url = None
    for _ in range(MAX_LIST_PAGES):
        if remaining() <= 1.0:
            break
        try:
            page, url = api.list_page(url, created_after=after)
        except (Transient, Rejected) as error:
            log.event("list_failed", reason=str(error))
            break
        listed.update((prediction.id, prediction) for prediction in page)
        if not url:
            break
    return listed


@dataclass
class CheckerRun:
    counts: dict = field(default_factory=lambda: {
        "checked": 0, "ready": 0, "completed": 0, "failed": 0, "running": 0, "errors": 0})
    skipped: int = 0

    def add(self, outcome: str) -> None:
        if outcome == "skipped":
            self.skipped += 1
            return
        if outcome == "error":
            self.counts["errors"] += 1
            return
        self.counts["checked"] += 1
        if outcome in self.counts:
            self.counts[outcome] += 1


def run_checker(db: Database, settings: Settings, api: ReplicateAPI, storage, remaining) -> dict:
    """Reconciles in-flight predictions, least recently checked first, concurrently, until all
    were seen or the budget runs out. Many due: from Replicate's list endpoint, single reads only
    for what it did not show. One prediction's trouble never stops the others."""
    since = db.scalar(queries.DB_NOW)
    api.deadline = time.monotonic() + max(remaining(), 0.0)
    listed = recent_predictions(db, settings, api, remaining)
    run = CheckerRun()
    workers = settings.checker_concurrency
    batch = workers * 4 if listed else workers
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        while remaining() > 1.0:
            tasks = db.all(queries.CLAIM_TO_CHECK, {"recheck_s": settings.recheck_interval_s, "limit": batch,
                                                    "run_started": since})
            if not tasks:
                break
            futures = {pool.submit(observe, settings, api, storage, task, listed.get(task["prediction_id"])): task
                       for task in tasks}
            for future in concurrent.futures.as_completed(futures):
                task = futures[future]
                try:
                    run.add(apply(db, task, future.result()))
                except Exception as error:  # a bug in one task must not stop the others
                    log.event("check_error", task_id=task["id"], error=type(error).__name__,
                              trace=traceback.format_exc(limit=6)[-2000:])
                    run.add("error")
    remaining_count = db.scalar(queries.IN_FLIGHT_NOT_CHECKED_SINCE, {"since": since}) + run.skipped
    return {"message": f"Checked {run.counts['checked']} predictions", **run.counts, "remaining": remaining_count,
            "listed": len(listed), "api_calls": api.calls}
