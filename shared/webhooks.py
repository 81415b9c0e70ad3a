"""Replicate's webhook (checker POST): the fast path for one prediction.

Signed (REPLICATE_WEBHOOK_SECRET set): the Standard Webhooks signature is verified and the body is
the prediction. Unsigned: the URL must carry our token (`shared.webhook_tokens`: the task, step and
attempt the prediction was created for, HMAC-signed), else the answer is a 401 before anything is
read, canceled or changed; with it, the body is only a hint of which prediction to look at and the
prediction is read again from Replicate's API, so a forged "succeeded" body moves nothing.
Redeliveries find the task already moved on and change nothing.

A prediction that no task records but whose URL names a claim still in progress for that very
step attempt is adopted as the step's prediction (its create's answer or record was lost);
one that no task can use is canceled.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from shared import checking, launching, log, queries, signatures, webhook_tokens
from shared.errors import InvalidInput, Unauthorized, Unavailable
from shared.replicate_api import Prediction, Rejected, Transient
from shared.services import Services
from shared.settings import ConfigError
from shared.states import Outcome, Status
from shared.task import Task

TOLERANCE_S = 300
PREDICTION_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def is_webhook(headers: Mapping[str, str], parse: Callable[[], Mapping[str, Any]]) -> bool:
    """A POST to the checker is a webhook when it says so (headers) or looks like a prediction."""
    if headers.get("webhook-id"):
        return True
    body = parse()
    return "id" in body or "status" in body


def verify(headers: Mapping[str, str], raw_body: str, secret: str) -> None:
    if not secret.startswith("whsec_"):
        raise ConfigError("REPLICATE_WEBHOOK_SECRET must look like whsec_...")
    try:
        signatures.verify(headers.get("webhook-id") or "", headers.get("webhook-timestamp") or "",
                          headers.get("webhook-signature") or "", raw_body, secret, tolerance_s=TOLERANCE_S)
    except signatures.BadSignature:
        raise Unauthorized("The webhook signature is missing or invalid.", code="bad_signature") from None
    except ValueError:  # the secret's key part is not base64
        raise ConfigError("REPLICATE_WEBHOOK_SECRET must look like whsec_<base64>") from None


def handle(services: Services, headers: Mapping[str, str], raw_body: str,
           parse: Callable[[], Mapping[str, Any]], query: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`headers` with lower-case names; `parse()` reads `raw_body` as JSON, after the signature;
    `query` is the webhook URL's query (our token and the claim it names)."""
    settings, db = services.settings, services.db
    signed = bool(settings.replicate_webhook_secret)
    claim = webhook_tokens.verified_claim(settings, query or {})
    if signed:
        verify(headers, raw_body, settings.replicate_webhook_secret)
    elif claim is None:
        # 401, not a harmless 202: Replicate retries only on network trouble, so nothing real is
        # lost, and an operator sees a misconfigured CHECKER_URL in the answers at once.
        raise Unauthorized("The webhook carries neither a valid signature nor a valid token.",
                           code="bad_webhook_token")
    body = parse()
    prediction_id = body.get("id")
    if (not isinstance(prediction_id, str) or not PREDICTION_ID.match(prediction_id)
            or (signed and not isinstance(body.get("status"), str))):
        raise InvalidInput("The webhook body is not a Replicate prediction.", code="invalid_webhook")
    log.bind(prediction_id=prediction_id, webhook_id=headers.get("webhook-id"))
    api = services.replicate
    try:
        prediction = Prediction.from_json(body) if signed else api.get(prediction_id)
    except Transient as error:
        raise Unavailable("Replicate could not be reached; the next check will pick this up.",
                          code="replicate_unavailable", retry_after=error.retry_after or 5) from None
    except Rejected:
        return {"message": "Unknown prediction; ignored", "outcome": "ignored"}

    found = db.one(queries.TASK_BY_PREDICTION, {"prediction_id": prediction_id})
    if found is None and claim is not None and prediction.status not in ("failed", "canceled", "aborted"):
        task_id, step, attempt = claim
        found = db.one(queries.ADOPT, {"id": task_id, "step": step, "attempt": attempt,
                                       "prediction_id": prediction_id})
        if found is not None:
            log.event("prediction_adopted", task_id=task_id, step=step, attempt=attempt, source="webhook")
        else:  # the worker may have recorded it a moment ago
            found = db.one(queries.TASK_BY_PREDICTION, {"prediction_id": prediction_id})
    if found is None or found["status"] != Status.PROCESSING:
        known = db.one(queries.STEP_BY_PREDICTION, {"prediction_id": prediction_id})
        if not prediction.terminal:
            # Not any task's current prediction (an orphan of a crash or a canceled step): stop it.
            launching.cancel_quietly(api, prediction_id)
        log.event("webhook_ignored", known=known is not None, status=prediction.status)
        return {"message": "Not a current prediction; nothing to do", "outcome": "ignored"}

    task = Task.from_row(found)
    seen = checking.observe(settings, api, services.storage, task, prediction)
    outcome = checking.apply(db, task, seen)
    if outcome is Outcome.ERROR:
        raise Unavailable("The step's image could not be saved yet; the next check will retry.",
                          code="storage_unavailable", retry_after=seen.retry_after or 5)
    return {"message": f"Prediction {prediction.status}", "outcome": outcome.value}
