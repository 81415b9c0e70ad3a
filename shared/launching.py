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

import json
import time
from collections.abc import Callable
from datetime import timedelta, timezone
from typing import Any, NamedTuple

from shared import log, profiles, queries, webhook_tokens
from shared.db import UNAVAILABLE, Database
from shared.images import CONTENT_TYPES, to_data_uri
from shared.profiles import StepImages
from shared.replicate_api import OutOfTime, Prediction, Rejected, ReplicateAPI, Transient
from shared.services import Services
from shared.settings import ConfigError, Settings
from shared.states import ErrorCode, LaunchOutcome, Status
from shared.storage import StorageError, Store
from shared.task import Task

# A look whose launch fails this many times with an error of ours (not Replicate's) is failed.
MAX_LAUNCH_FAILURES = 3
BROKEN_BACKOFF_S = 5.0
# Replicate stamps created_at a moment after we mark a create as sent; clocks differ a little.
ADOPT_WINDOW_SLACK_S = 60
ADOPT_MAX_PAGES = 3


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
    model_input = profiles.active(settings).to_input(StepImages(
        person=_reachable(settings, storage, human), garment=_reachable(settings, storage, garment.image),
        category=garment.category, description=garment.description, prompt_hints=task.prompt_hints))
    # Text that cannot be sent (a lone surrogate) fails here, before any create: quarantined.
    json.dumps(model_input, ensure_ascii=False).encode("utf-8")
    return model_input


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


class Launch(NamedTuple):
    outcome: LaunchOutcome
    prediction_id: str | None = None
    throttled: bool = False    # Replicate said 429: this run stops
    out_of_time: bool = False  # no time left in this run for a create: this run stops


class LaunchBroke(Exception):
    """Our own launch code failed (a bug, text that cannot be sent): not Replicate's trouble."""


def backoff_seconds(retry_after: float | None) -> float:
    return max(1.0, min(retry_after if retry_after is not None else 5.0, 300.0))


def create_prediction(settings: Settings, api: ReplicateAPI, storage: Store | None, task: Task,
                      claimed: float | None = None) -> Prediction | Exception:
    """The network half of a launch: the prediction, or the error it met. `claimed`
    (time.monotonic() when the claim was taken): the create must have ended, answered or
    abandoned, before the claim could go stale and be re-driven by another run."""
    claimed = time.monotonic() if claimed is None else claimed
    try:
        model_input = step_input(settings, storage, task)
        webhook = webhook_tokens.webhook_url(settings, task.id, task.current_step, task.attempt)
        return api.create(model_input, webhook=webhook, cancel_after_s=settings.step_timeout_s,
                          end_by=claimed + settings.claim_stale_s - 1.0)
    except (Transient, Rejected, StorageError) as error:
        return error
    except ConfigError:  # the operator's to fix (a 503), never the look's failure
        raise
    except Exception as error:  # a bug of ours must not kill the run: counted towards quarantine
        log.event("launch_broke", task_id=task.id, step=task.current_step, attempt=task.attempt,
                  error=type(error).__name__, trace=log.trace())
        return LaunchBroke(type(error).__name__)


def record_launch(db: Database, api: ReplicateAPI, task: Task, result: Prediction | Exception) -> Launch:
    """The database half of a launch: exactly one of LAUNCHED, LAUNCH_FAILED or LAUNCH_DEFERRED.
    If the database fails while a new prediction waits to be recorded, the prediction is
    canceled (in the time the run reserved for it) before the error goes on."""
    claim = {"id": task.id, "token": task.claim_token}
    step = {"step": task.current_step, "attempt": task.attempt}
    if isinstance(result, Prediction):
        try:
            row = db.one(queries.LAUNCHED, {**claim, "prediction_id": result.id})
            holder = None if row is not None else db.one(queries.TASK_BY_PREDICTION, {"prediction_id": result.id})
            # Adopted meanwhile (its start webhook came first): recorded all the same.
            adopted = holder is not None and holder["id"] == task.id and holder["status"] == Status.PROCESSING
        except UNAVAILABLE:
            log.event("orphan_prediction", task_id=task.id, **step, prediction_id=result.id, reason="database")
            cancel_quietly(api, result.id, reserved=True)
            raise
        if row is None and not adopted:
            # The task moved on without us (canceled, or our claim was re-driven): stop the orphan.
            log.event("orphan_prediction", task_id=task.id, **step, prediction_id=result.id)
            cancel_quietly(api, result.id, reserved=True)
            return Launch(LaunchOutcome.LOST, result.id)
        log.transition(task.id, Status.PROCESSING, Status.PROCESSING, **step, prediction_id=result.id,
                       note="prediction created")
        return Launch(LaunchOutcome.LAUNCHED, result.id)
    if isinstance(result, LaunchBroke) and task.launch_failures + 1 < MAX_LAUNCH_FAILURES:
        db.one(queries.LAUNCH_DEFERRED, {**claim, "delay_s": BROKEN_BACKOFF_S, "broke": 1})
        return Launch(LaunchOutcome.DEFERRED)
    if isinstance(result, (Rejected, LaunchBroke)):
        if isinstance(result, Rejected):
            error, code, detail = result.message, ErrorCode.REPLICATE_REJECTED, result.message
        else:
            error = (f"Step {task.current_step} could not be started: it failed {MAX_LAUNCH_FAILURES} times "
                     "on our side. Press Retry to try again, or start a new look.")
            code, detail = ErrorCode.LAUNCH_FAILED, str(result)
        # Replicate's words may quote a token or a password in a URL: stored and shown redacted.
        failure = {"error": log.scrub(error), "error_code": code.value, "error_detail": log.scrub(detail)}
        db.one(queries.LAUNCH_FAILED, {**claim, **failure})
        log.transition(task.id, Status.PROCESSING, Status.FAILED, **step, error=failure["error"],
                       error_code=failure["error_code"])
        return Launch(LaunchOutcome.FAILED)
    retry_after = getattr(result, "retry_after", None)
    # Out of time is not Replicate's trouble: give the claim back for the very next ping.
    delay = 0.0 if isinstance(result, OutOfTime) else backoff_seconds(retry_after)
    db.one(queries.LAUNCH_DEFERRED, {**claim, "delay_s": delay, "broke": 0})
    log.event("launch_deferred", task_id=task.id, **step, reason=str(result), delay_s=delay)
    return Launch(LaunchOutcome.DEFERRED,
                  throttled=getattr(result, "status", None) == 429, out_of_time=isinstance(result, OutOfTime))


def unrecorded_prediction(db: Database, settings: Settings, api: ReplicateAPI, storage: Store | None,
                          task: Task) -> Prediction | None:
    """A prediction an earlier create for this step attempt made but never recorded (the run
    died, the database failed, the answer was lost): found among the account's predictions
    since that create by its input. The newest usable one is returned for adoption; any other
    match still running is canceled. None when there is none; `Transient` when the list cannot
    be read (creating another now could double the step)."""
    if task.create_sent_at is None:
        return None
    sent = task.create_sent_at if task.create_sent_at.tzinfo else task.create_sent_at.replace(tzinfo=timezone.utc)
    after = (sent.astimezone(timezone.utc) - timedelta(seconds=ADOPT_WINDOW_SLACK_S)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    wanted = step_input(settings, storage, task)
    matches: list[Prediction] = []
    url: str | None = None
    for _ in range(ADOPT_MAX_PAGES):
        try:
            page, url = api.list_page(url, created_after=after)
        except Rejected as error:
            raise Transient(f"listing predictions: {error.message}") from None
        matches += [p for p in page if p.input == wanted
                    and p.status not in ("failed", "canceled", "aborted")
                    and db.one(queries.STEP_BY_PREDICTION, {"prediction_id": p.id}) is None]
        if not url:
            break
    for extra in matches[1:]:  # newest first: keep the newest, stop the others
        if not extra.terminal:
            log.event("orphan_prediction", task_id=task.id, prediction_id=extra.id, reason="duplicate")
            cancel_quietly(api, extra.id)
    return matches[0] if matches else None


def check_configured(services: Services) -> None:
    """ConfigError (a 503 `not_configured`) before anything is claimed: a step launched with a
    broken setting (MODEL_PROFILE, REPLICATE_BASE_URL, no token) would fail the look as if the
    model had, while every answer said 200. Reads every setting a launch reads."""
    settings = services.settings
    services.replicate  # noqa: B018 -- built here: it checks the token, the base URL and the rates
    services.storage  # noqa: B018
    profiles.active(settings)
    # Each is checked as it is read, and raises ConfigError when malformed.
    _ = (settings.step_timeout_s, settings.claim_stale_s, settings.replicate_timeout_s, settings.checker_url,
         settings.webhook_token_secret)


def launch(services: Services, task: Task, claimed: float | None = None) -> Launch:
    """Creates the claimed step's prediction and records it; adopts the prediction of an earlier
    create of the same attempt that was never recorded instead of making a second one."""
    db, settings, api = services.db, services.settings, services.replicate
    claimed = time.monotonic() if claimed is None else claimed
    try:
        earlier = unrecorded_prediction(db, settings, api, services.storage, task)
    except Transient as error:  # try later: a second create now could double the step
        return record_launch(db, api, task, error)
    except Exception as error:  # the same trouble the create would meet: counted there
        earlier = None
        log.event("unrecorded_scan_failed", task_id=task.id, reason=type(error).__name__)
    if earlier is not None:
        log.event("prediction_adopted", task_id=task.id, step=task.current_step, attempt=task.attempt,
                  prediction_id=earlier.id)
        return record_launch(db, api, task, earlier)
    if db.one(queries.CREATE_SENDING, {"id": task.id, "token": task.claim_token}) is None:
        return Launch(LaunchOutcome.LOST)  # the claim is no longer ours: nothing was sent
    try:
        created = create_prediction(settings, api, services.storage, task, claimed)
    except ConfigError:  # a setting check_configured did not read: the claim goes back, unpenalised
        db.one(queries.LAUNCH_DEFERRED, {"id": task.id, "token": task.claim_token, "delay_s": 0.0, "broke": 0})
        raise
    return record_launch(db, api, task, created)


def cancel_quietly(api: ReplicateAPI, prediction_id: str, *, reserved: bool = False) -> Prediction | None:
    """Cancels at Replicate; the prediction as the cancel answered it, or None when it failed."""
    try:
        return api.cancel(prediction_id, reserved=reserved)
    except (Transient, Rejected) as error:
        log.event("cancel_failed", prediction_id=prediction_id, reason=str(error))
        return None


def run_worker(services: Services, remaining: Callable[[], float]) -> dict[str, Any]:
    """Starts due steps, oldest first, one after another within Replicate's create rate, until
    none are due, the budget runs out, or Replicate throttles us. `remaining()` is the time left
    of the run; every call ends inside it, and CANCEL_RESERVE_S after it is kept for canceling a
    prediction made by a create whose recording failed.

    One create at a time, each recorded before the next is sent: if the instance is killed, at
    most one prediction exists that no task knows about (the contract's "a crash costs at most
    one extra prediction"), and the next claim of its step finds and adopts it.
    A launch that fails with an error of ours hands its look back with a back-off and the run
    goes on with the next look; the third such failure fails the look (`launch_failed`)."""
    db, settings = services.db, services.settings
    from shared import actions, completion

    idle_finished = actions.finish_idle(db, settings)  # needs no Replicate
    try:
        check_configured(services)
    except ConfigError:  # nothing is launched, but the site still hears of looks that ended
        completion.deliver_due(services, remaining)
        raise
    counts = dict.fromkeys(LaunchOutcome, 0)
    throttled = out_of_time = False
    api = services.replicate
    api.end_by = time.monotonic() + max(remaining(), 0.0)
    api.deadline = api.end_by - api.min_create_window
    while not (throttled or out_of_time) and remaining() > api.min_create_window:
        found = db.one(queries.CLAIM_TO_LAUNCH, {"stale_s": settings.claim_stale_s, "limit": 1,
                                                 "token": queries.new_claim_token()})
        claimed = time.monotonic()
        if found is None:
            break
        task = Task.from_row(found)
        log.transition(task.id, task.previous_status, Status.PROCESSING, step=task.current_step,
                       attempt=task.attempt, note="claimed")
        outcome = launch(services, task, claimed)
        counts[outcome.outcome] += 1
        throttled, out_of_time = outcome.throttled, outcome.out_of_time
    # Completion webhooks go after the launches: a step waiting for its prediction costs a user's time.
    webhooks = completion.deliver_due(services, remaining)
    started = counts[LaunchOutcome.LAUNCHED]
    return {"message": f"Started {started} tasks", "started": started, "failed": counts[LaunchOutcome.FAILED],
            "deferred": counts[LaunchOutcome.DEFERRED], "lost": counts[LaunchOutcome.LOST], "throttled": throttled,
            "idle_finished": idle_finished, "webhooks_delivered": webhooks["delivered"],
            "webhooks_failed": webhooks["failed"]}
