"""Replicate's webhook (checker POST): the fast path for one prediction.

Signed (REPLICATE_WEBHOOK_SECRET set): the Standard Webhooks signature is verified and the body is
the prediction. Unsigned: the body is only a hint of which prediction to look at; the prediction is
read again from Replicate's API, so a forged "succeeded" body moves nothing. Redeliveries find the
task already moved on and change nothing.
"""

from __future__ import annotations

import re

from replicate.webhook import WebhookSigningSecret, Webhooks

from shared import engine, log, queries
from shared.errors import BadRequest, ServiceUnavailable, Unauthorized
from shared.http import Request
from shared.replicate_api import Prediction, Rejected, ReplicateAPI, Transient
from shared.settings import ConfigError

TOLERANCE_S = 300
PREDICTION_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def is_webhook(request: Request) -> bool:
    if request.header("webhook-id"):
        return True
    body = request.json()
    return "id" in body or "status" in body


def verify(request: Request, secret: str) -> None:
    if not secret.startswith("whsec_"):
        raise ConfigError("REPLICATE_WEBHOOK_SECRET must look like whsec_...")
    headers = {name: request.header(name) or "" for name in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    try:
        Webhooks.validate(headers=headers, body=request.raw_body, secret=WebhookSigningSecret(key=secret),
                          tolerance=TOLERANCE_S)
    except ValueError:  # every WebhookValidationError, and malformed timestamps or base64
        raise Unauthorized("The webhook signature is missing or invalid.", code="bad_signature") from None


def handle(request: Request, api: ReplicateAPI, storage) -> dict:
    settings, db = request.settings, request.db
    signed = bool(settings.replicate_webhook_secret)
    if signed:
        verify(request, settings.replicate_webhook_secret)
    body = request.json()
    prediction_id = body.get("id")
    if (not isinstance(prediction_id, str) or not PREDICTION_ID.match(prediction_id)
            or (signed and not isinstance(body.get("status"), str))):
        raise BadRequest("The webhook body is not a Replicate prediction.", code="invalid_webhook")
    log.bind(prediction_id=prediction_id, webhook_id=request.header("webhook-id"))
    try:
        prediction = Prediction.from_json(body) if signed else api.get(prediction_id)
    except Transient as error:
        raise ServiceUnavailable("Replicate could not be reached; the next check will pick this up.",
                                 code="replicate_unavailable", retry_after=error.retry_after or 5) from None
    except Rejected:
        return {"message": "Unknown prediction; ignored", "outcome": "ignored"}

    task = db.one(queries.TASK_IN_FLIGHT_BY_PREDICTION, {"prediction_id": prediction_id})
    if task is None:
        known = db.one(queries.STEP_BY_PREDICTION, {"prediction_id": prediction_id})
        if not prediction.terminal:
            # Not any task's current prediction (an orphan of a crash or a canceled step): stop it.
            engine.cancel_quietly(api, prediction_id)
        log.event("webhook_ignored", known=known is not None, status=prediction.status)
        return {"message": "Not a current prediction; nothing to do", "outcome": "ignored"}

    seen = engine.observe(settings, api, storage, task, prediction)
    outcome = engine.apply(db, task, seen)
    if outcome == "error":
        raise ServiceUnavailable("The step's image could not be saved yet; the next check will retry.",
                                 code="storage_unavailable", retry_after=seen.retry_after or 5)
    return {"message": f"Prediction {prediction.status}", "outcome": outcome}
