"""The completion webhook: every look that ends is POSTed to COMPLETION_WEBHOOK_URL, at least once.

The statement that ends a look also writes its `look_events` row (`look_queries.RECORD_END`), so no
end is lost and no rolled-back end is sent. Worker runs deliver due events: the body is fixed on
the first try and every retry sends it again under the same webhook-id, signed the Standard
Webhooks way (webhook-id, webhook-timestamp, webhook-signature `v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">` with the `whsec_` secret). A failed try is retried with a growing
back-off for GIVE_UP_AFTER_S; each POST has a wall-clock deadline.

COMPLETION_WEBHOOK_FORMAT=try-on-history sends the body the original site's try-on-history-api
expected instead (X-User-Id header; completed looks only): see docs/deploy.md.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from shared import log, look_queries
from shared.costs import look_cost_usd
from shared.db import Database, Row
from shared.services import Services
from shared.settings import Settings
from shared.signatures import sign
from shared.task import parse_garments
from shared.view import iso_utc

POST_DEADLINE_S = 10.0
GIVE_UP_AFTER_S = 24 * 3600
BATCH = 10
# Seconds before try n+1 (the last repeats until GIVE_UP_AFTER_S): about Standard Webhooks' schedule.
BACKOFF_S = (5, 30, 120, 600, 1800, 3600, 7200)


def backoff_s(attempts: int) -> int:
    return BACKOFF_S[min(max(attempts, 1), len(BACKOFF_S)) - 1]


def event_body(db: Database, event: Row) -> dict[str, Any]:
    task = db.one(look_queries.EVENT_TASK, {"id": event["task_id"]}) or {}
    garments = parse_garments(task.get("garments"))
    steps = []
    for row in db.all(look_queries.EVENT_STEPS, {"event_id": event["id"]}):
        garment = garments[row["step"] - 1] if row["step"] <= len(garments) else None
        steps.append({"step": row["step"], "attempt": row["attempt"], "status": row["status"],
                      "image_url": row["image_url"], "error": row["error"], "model": row["model"],
                      "garment": None if garment is None else garment.image})
    return {
        "type": event["type"],
        "task_id": event["task_id"],
        "user_id": task.get("user_id"),
        "result_url": task.get("result_url"),
        "steps": steps,
        "created_at": iso_utc(task.get("created_at")),
        "ended_at": iso_utc(event["ended_at"]),
        # Not in the standard body: the try-on-history format sends the look's inputs.
        "person_image": task.get("person_image"),
        "garments": [{"image": garment.image, "category": garment.category} for garment in garments],
        "cost": float(look_cost_usd(db, event["task_id"]) or 0),
    }


def request_for(settings: Settings, webhook_id: str, payload: str, now: float) -> tuple[dict[str, str], str] | None:
    """The headers and body to POST, or None when this format sends nothing for the event."""
    body = json.loads(payload)
    if settings.completion_webhook_format == "try-on-history":
        if body["type"] != "look.completed":
            return None
        # What the original checker sent (docs/deploy.md, "The history call the original checker made").
        text = json.dumps({"person_image": body["person_image"], "garments": body["garments"],
                           "result_image": body["result_url"], "model_used": "replicate", "cost": body["cost"]})
        headers = {"X-User-Id": body["user_id"]}
    else:
        for internal in ("person_image", "garments", "cost"):
            body.pop(internal, None)
        text = json.dumps(body)
        headers = {}
    timestamp = int(now)
    headers.update({"Content-Type": "application/json", "webhook-id": webhook_id,
                    "webhook-timestamp": str(timestamp)})
    if settings.completion_webhook_secret:
        headers["webhook-signature"] = sign(settings.completion_webhook_secret, webhook_id, timestamp, text)
    return headers, text


def post_within(url: str, headers: dict[str, str], body: str, deadline_s: float) -> str | None:
    """POSTs and returns None on a 2xx, else what went wrong. The whole call, slow answers
    included, ends within `deadline_s`: requests' own timeouts are per socket read, so the
    thread's join is the deadline (the thread itself ends at the read timeout)."""
    import requests  # only worker runs with events to send

    outcome: list[str | None] = []

    def send() -> None:
        try:
            with requests.post(url, data=body.encode(), headers=headers, timeout=(3.0, deadline_s + 1.0),
                               allow_redirects=False, stream=True) as response:
                outcome.append(None if 200 <= response.status_code < 300 else f"answered {response.status_code}")
        except requests.RequestException as error:
            outcome.append(f"could not be reached ({type(error).__name__})")

    thread = threading.Thread(target=send, name="completion-webhook", daemon=True)
    thread.start()
    thread.join(deadline_s)
    return outcome[0] if outcome else f"did not answer within {deadline_s:g} s"


def deliver_due(services: Services, remaining: Callable[[], float],
                clock: Callable[[], float] = time.time) -> dict[str, int]:
    """Sends the events that are due, within the run's time. Answers counts for the run's reply."""
    db, settings = services.db, services.settings
    counts = {"delivered": 0, "failed": 0}
    url = settings.completion_webhook_url
    if not url:
        return counts
    while remaining() > 1.0:
        events = db.all(look_queries.CLAIM_EVENTS, {"lease_s": POST_DEADLINE_S + 5, "give_up_s": GIVE_UP_AFTER_S,
                                              "limit": BATCH})
        if not events:
            break
        for event in events:
            if remaining() <= 1.0:
                # Not tried: hand it back for the next run, without counting it as a failure.
                db.one(look_queries.EVENT_RETRY_LATER, {"id": event["id"], "delay_s": 0, "error": None})
                continue
            counts["delivered" if deliver(db, settings, event, remaining, clock) else "failed"] += 1
    return counts


def deliver(db: Database, settings: Settings, event: Row, remaining: Callable[[], float],
            clock: Callable[[], float]) -> bool:
    payload = event["payload"] or db.scalar(look_queries.EVENT_PAYLOAD, {
        "id": event["id"], "payload": json.dumps(event_body(db, event))})
    request = request_for(settings, event["id"], payload, clock())
    if request is None:
        note = "not sent: this format sends completed looks only"
        db.one(look_queries.EVENT_DELIVERED, {"id": event["id"], "note": note})
        return True
    headers, body = request
    error = post_within(settings.completion_webhook_url, headers, body, min(POST_DEADLINE_S, remaining() - 0.5))
    if error is None:
        db.one(look_queries.EVENT_DELIVERED, {"id": event["id"], "note": None})
        log.event("webhook_delivered", task_id=event["task_id"], webhook_id=event["id"], attempt=event["attempts"])
        return True
    delay = backoff_s(event["attempts"])
    db.one(look_queries.EVENT_RETRY_LATER,
           {"id": event["id"], "delay_s": delay, "error": log.scrub(f"The receiver {error}.")})
    log.event("webhook_failed", task_id=event["task_id"], webhook_id=event["id"], attempt=event["attempts"],
              reason=error, retry_in_s=delay)
    return False
