"""Reconciling running predictions (checker, webhooks, status?force_check): read the prediction,
keep a finished image in storage, then move the task in one conditional statement. The network
half (`observe`) runs in threads; the database half (`apply`) returns a typed `Outcome`."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from shared import costs, log, profiles, queries, step_end
from shared.db import Database
from shared.downloads import download
from shared.images import DownloadError
from shared.launching import cancel_quietly
from shared.output_hosts import OutputHosts
from shared.replicate_api import OutOfTime, Prediction, PredictionGone, Rejected, ReplicateAPI, Transient
from shared.services import Services
from shared.settings import Settings
from shared.states import ErrorCode, Outcome
from shared.storage import StorageError, Store, file_name, key_for
from shared.task import Task

MAX_OUTPUT_BYTES = 25 * 1024 * 1024
CANCEL_AFTER_SLACK_S = 3.0


class Observation:
    """What the network half of a check found: the prediction, and the stored image if it succeeded.
    A plain class (filled in as the check goes), not a dataclass: dataclasses imports inspect,
    ast, dis and tokenize, 8 ms of a checker's cold start."""

    def __init__(self, *, prediction: Prediction | None = None, image_url: str | None = None,
                 failure: str | None = None, failure_status: str = "failed", error_code: ErrorCode | None = None,
                 error_detail: str | None = None, transient: str | None = None, retry_after: float | None = None,
                 skipped: bool = False):
        self.prediction = prediction
        self.image_url = image_url
        self.failure = failure                # a permanent end of the step, written for the user
        self.failure_status = failure_status  # the step row's status: failed or canceled
        self.error_code = error_code          # with `failure`: why, for frontends to translate
        self.error_detail = error_detail      # with `failure`: the model's (or Replicate's) own words
        self.transient = transient            # try again on the next ping
        self.retry_after = retry_after
        self.skipped = skipped                # not looked at: this run ran out of time
        self.spend: dict[str, Any] = {}       # the step row's model, predict_time_s, cost_usd


def _past_deadline(settings: Settings, task: Task, slack_s: float = 0.0) -> bool:
    """Whether the step ran longer than STEP_TIMEOUT_S. `slack_s` lets an end that Replicate
    made at our Cancel-After (counted from its creation, a moment before we recorded it) count."""
    started = task.step_started_at
    if started is None:
        return False
    if started.tzinfo is None:
        started = started.replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - started).total_seconds() > settings.step_timeout_s - slack_s


def timeout_message(settings: Settings, step: int) -> str:
    minutes = settings.step_timeout_s / 60
    span = f"{minutes:g} minutes" if minutes >= 1 else f"{settings.step_timeout_s} seconds"
    return f"Step {step} took longer than {span} and was stopped. Press Retry to run it again."


def observe(settings: Settings, api: ReplicateAPI, storage: Store | None, task: Task,
            prediction: Prediction | None = None) -> Observation:
    """The network half of a check (safe in a thread): reads the prediction unless given, and
    copies a finished image into storage. Never raises for Replicate or storage trouble."""
    seen = _observe(settings, api, storage, task, prediction)
    seen.spend = costs.step_spend(profiles.active(settings), seen.prediction)
    return seen


def _observe(settings: Settings, api: ReplicateAPI, storage: Store | None, task: Task,
             prediction: Prediction | None) -> Observation:
    step = task.current_step
    try:
        if prediction is None:
            prediction = api.get(task.prediction_id or "")
    except OutOfTime as error:
        return Observation(transient=error.reason, skipped=True)
    except PredictionGone as error:
        return Observation(
            failure=f"Replicate no longer has the prediction for step {step}. Press Retry to run it again.",
            error_code=ErrorCode.PREDICTION_LOST, error_detail=error.message or None)
    except Transient as error:
        return Observation(transient=error.reason, retry_after=error.retry_after)
    except Rejected as error:
        # Not the prediction's own end (our credentials, say): keep waiting; the deadline still applies.
        if _past_deadline(settings, task):
            return Observation(failure=timeout_message(settings, step), failure_status="canceled",
                               error_code=ErrorCode.STEP_TIMEOUT, error_detail=error.message or None)
        return Observation(transient=error.message)

    seen = Observation(prediction=prediction)
    status = prediction.status
    if status == "succeeded":
        return _keep_output(settings, storage, task, prediction, api.seconds_left())
    if status == "failed":
        detail = (prediction.error or "").strip().splitlines()
        reason = f": {detail[0][:200]}" if detail else ""
        seen.failure = f"The try-on model could not finish step {step}{reason}. Press Retry to try again."
        seen.error_code = ErrorCode.MODEL_FAILED
    elif status in ("canceled", "aborted"):
        seen.failure_status = "canceled"
        if _past_deadline(settings, task, slack_s=CANCEL_AFTER_SLACK_S):
            seen.failure, seen.error_code = timeout_message(settings, step), ErrorCode.STEP_TIMEOUT
        elif status == "canceled":
            seen.failure = f"Step {step} was canceled at Replicate. Press Retry to run it again."
            seen.error_code = ErrorCode.CANCELED
        else:
            seen.failure = f"Replicate could not start step {step} in time. Press Retry to try again."
            seen.error_code = ErrorCode.STEP_TIMEOUT
    elif _past_deadline(settings, task):
        cancel_quietly(api, prediction.id)
        seen.failure_status = "canceled"
        seen.failure, seen.error_code = timeout_message(settings, step), ErrorCode.STEP_TIMEOUT
    if seen.failure:
        seen.error_detail = _detail(prediction.error)
    return seen


MAX_DETAIL_CHARS = 2000


def _detail(text: str | None) -> str | None:
    """The model's own words, as it wrote them (cut to a sane size), or None."""
    text = (text or "").strip()
    return text[:MAX_DETAIL_CHARS] or None


def _keep_output(settings: Settings, storage: Store | None, task: Task, prediction: Prediction,
                 seconds_left: float) -> Observation:
    step = task.current_step
    url = prediction.output_url
    if url is None:
        if prediction.data_removed:
            return Observation(prediction=prediction, error_code=ErrorCode.OUTPUT_REMOVED, failure=(
                f"Replicate deleted the image of step {step} before it could be saved. Press Retry to run it again."))
        return Observation(prediction=prediction, error_code=ErrorCode.NO_OUTPUT,
                           failure=f"The try-on model returned no image for step {step}. Press Retry to try again.")
    if storage is None:
        return Observation(prediction=prediction, image_url=url)
    try:
        # The download ends when this run's calls must have ended (a Replicate call's deadline).
        hosts = OutputHosts.of(settings.replicate_base_url, storage.public_url, settings.output_hosts)
        data, content_type = download(url, max_bytes=MAX_OUTPUT_BYTES, hosts=hosts, timeout=max(seconds_left, 0.1))
        name = file_name(f"step-{step}-{task.attempt}", prediction.id)
        key = key_for(task.file_prefix, task.id, name, content_type)
        return Observation(prediction=prediction, image_url=storage.put(key, data, content_type))
    except DownloadError as error:
        if error.transient:
            return Observation(prediction=prediction, transient=f"saving the image: {error}")
        failure = f"The image of step {step} could not be saved ({error}). Press Retry to run it again."
        return Observation(prediction=prediction, failure=failure, error_code=ErrorCode.OUTPUT_UNUSABLE,
                           error_detail=str(error))
    except StorageError as error:
        return Observation(prediction=prediction, transient=str(error))


def apply(db: Database, task: Task, seen: Observation) -> Outcome:
    """The database half of one check (a webhook, force_check)."""
    return step_end.apply_all(db, [(task, seen)])[0]


def check_one(services: Services, task_id: str) -> Outcome:
    """status?force_check: reconciles one running task inline, at most once per task every
    RECHECK_INTERVAL_S however often it is polled (RUNNING when it was checked too recently)."""
    found = services.db.one(queries.CLAIM_ONE_TO_CHECK,
                            {"id": task_id, "recheck_s": services.settings.recheck_interval_s})
    if found is None:
        return Outcome.RUNNING
    task = Task.from_row(found)
    seen = observe(services.settings, services.replicate, services.storage, task)
    return apply(services.db, task, seen)


# With this many predictions due, one page of Replicate's list endpoint (100 predictions with
# status and output) replaces up to 100 single reads.
LIST_WHEN_DUE = 8
MAX_LIST_PAGES = 100
LISTED_BATCH = 250
# Replicate stamps a prediction's created_at a moment before we record step_started_at.
LIST_WINDOW_SLACK_S = 120


def recent_predictions(db: Database, settings: Settings, api: ReplicateAPI,
                       remaining: Callable[[], float]) -> dict[str, Prediction]:
    """The account's predictions since the oldest due step started, by id, when enough are due
    for listing to be cheaper than single reads; {} otherwise. Stops at the budget or on any
    trouble: whatever is not listed is read one by one."""
    due = db.one(queries.DUE_TO_CHECK, {"recheck_s": settings.recheck_interval_s})
    if due is None or due["n"] < LIST_WHEN_DUE or due["oldest"] is None:
        return {}
    oldest = due["oldest"] if due["oldest"].tzinfo else due["oldest"].replace(tzinfo=timezone.utc)
    after = (oldest.astimezone(timezone.utc) - timedelta(seconds=LIST_WINDOW_SLACK_S)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    listed: dict[str, Prediction] = {}
    url: str | None = None
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


class CheckerRun:
    def __init__(self) -> None:
        self.counts = {"checked": 0, "ready": 0, "completed": 0, "failed": 0, "running": 0, "errors": 0}
        self.skipped = 0

    def add(self, outcome: Outcome) -> None:
        if outcome is Outcome.SKIPPED:
            self.skipped += 1
            return
        if outcome is Outcome.ERROR:
            self.counts["errors"] += 1
            return
        self.counts["checked"] += 1
        if outcome.value in self.counts:
            self.counts[outcome.value] += 1


def observe_all(settings: Settings, api: ReplicateAPI, storage: Store | None, tasks: list[Task],
                listed: dict[str, Prediction], workers: int) -> list[tuple[Task, Observation | Exception]]:
    """Each task with its observation, or the exception observing it raised (a bug in one task
    must not stop the others). Several tasks are observed in up to `workers` threads; a lone one
    (a cron ping with one step running) in this thread, without loading concurrent.futures."""

    def guarded(task: Task) -> Observation | Exception:
        try:
            return observe(settings, api, storage, task, listed.get(task.prediction_id or ""))
        except Exception as error:
            return error

    if len(tasks) == 1:
        return [(tasks[0], guarded(tasks[0]))]
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
        return list(zip(tasks, pool.map(guarded, tasks)))


def run_checker(services: Services, remaining: Callable[[], float]) -> dict[str, Any]:
    """Reconciles in-flight predictions, least recently checked first, concurrently, until all
    were seen or the budget runs out. Many due: from Replicate's list endpoint, single reads only
    for what it did not show. One prediction's trouble never stops the others."""
    db, settings, api, storage = services.db, services.settings, services.replicate, services.storage
    # A 503 before anything is claimed: each step's end reads the profile (its cost), and a broken
    # one would be counted as every prediction's error while the answer said 200.
    profiles.active(settings)
    since = db.scalar(queries.DB_NOW)
    api.deadline = time.monotonic() + max(remaining(), 0.0)
    listed = recent_predictions(db, settings, api, remaining)
    run = CheckerRun()
    workers = settings.checker_concurrency
    # Listed predictions need no read of their own: claim them in big batches (few statements).
    batch = LISTED_BATCH if listed else workers
    while remaining() > 1.0:
        found = db.all(queries.CLAIM_TO_CHECK, {"recheck_s": settings.recheck_interval_s, "limit": batch,
                                                "run_started": since})
        if not found:
            break
        tasks = [Task.from_row(row) for row in found]
        checked = []
        for task, seen in observe_all(settings, api, storage, tasks, listed, workers):
            if isinstance(seen, Exception):
                log.event("check_error", task_id=task.id, error=type(seen).__name__, trace=log.trace(seen))
                run.add(Outcome.ERROR)
            else:
                checked.append((task, seen))
        for outcome in step_end.apply_isolated(db, checked):
            run.add(outcome)
    remaining_count = db.scalar(queries.IN_FLIGHT_NOT_CHECKED_SINCE, {"since": since}) + run.skipped
    return {"message": f"Checked {run.counts['checked']} predictions", **run.counts, "remaining": remaining_count,
            "listed": len(listed), "api_calls": api.calls}
