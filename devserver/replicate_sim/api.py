"""The API calls as Replicate answers them: create, get, cancel, list (a mixin of `Simulator`,
which holds the state they read and change)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from devserver.replicate_sim.schemas import input_error, resolve, validate_input
from devserver.replicate_sim.state import (
    PAGE_SIZE,
    TERMINAL,
    Faults,
    SimError,
    SimPrediction,
    injected,
    new_id,
    parse_duration,
    parse_time,
    prefer_wait,
)


class PredictionsApi:
    # What `Simulator` holds and does, declared so the calls below type-check.
    url: str
    token: str | None
    duration_s: float
    faults: Faults
    stats: Counter[str]
    predictions: dict[str, SimPrediction]
    _order: list[str]
    _lock: threading.RLock
    _changed: threading.Condition
    _rng: random.Random

    if TYPE_CHECKING:
        def _at(self, when: float, event: str, prediction_id: str) -> None: ...
        def _end(self, p: SimPrediction, status: str, now: float, *, error: str | None = None,
                 output: object = None) -> None: ...
        def _send_webhook(self, p: SimPrediction, event: str) -> None: ...

    def authorize(self, header: str | None) -> None:
        scheme, _, token = (header or "").partition(" ")
        if scheme not in ("Bearer", "Token") or not token or (self.token is not None and token != self.token):
            raise SimError(401, "Unauthenticated", "You did not pass a valid authentication token")

    def create(self, body: dict, *, model: str | None = None, headers: dict) -> dict:
        self.stats["create_calls"] += 1
        with self._lock:
            if self.faults.create_failures:
                raise injected(self.faults.create_failures.pop(0))
        if not isinstance(body, dict):
            raise SimError(400, "Bad request", "The request body must be a JSON object")
        model, version, profile = resolve(body, model)
        model_input = body.get("input")
        if not isinstance(model_input, dict):
            raise SimError(422, "Input validation failed", "- input: input is required\n",
                           invalid_fields=[{"type": "required", "field": "input", "description": "input is required"}])
        invalid = validate_input(profile, model_input)
        if invalid:
            raise input_error(invalid)
        webhook = body.get("webhook")
        if webhook is not None and (not isinstance(webhook, str) or urlsplit(webhook).scheme not in ("http", "https")):
            raise SimError(422, "Invalid webhook", "webhook must be an HTTP or HTTPS URL")
        events_filter = body.get("webhook_events_filter")
        cancel_after = None
        if headers.get("cancel-after"):
            cancel_after = parse_duration(headers["cancel-after"])
            if cancel_after is None or cancel_after < 5:
                raise SimError(422, "Invalid Cancel-After", "Cancel-After must be a duration of at least 5 seconds")
        now = round(time.time(), 6)  # the precision timestamps are rendered with
        with self._lock:
            duration = self.faults.duration_s if self.faults.duration_s is not None else self.duration_s
            outcome = self.faults.outcomes.pop(0) if self.faults.outcomes else self.faults.default_outcome
            prediction = SimPrediction(
                id=new_id(self._rng), model=model, version=version, input=model_input, created_at=now,
                start_at=now + duration * 0.15, end_at=now + duration, outcome=outcome, webhook=webhook,
                events_filter=events_filter if isinstance(events_filter, list) else None,
                cancel_deadline=now + cancel_after if cancel_after else None, profile=profile,
            )
            self.predictions[prediction.id] = prediction
            self._order.append(prediction.id)
            self.stats["predictions_created"] += 1
            self._at(prediction.start_at, "processing", prediction.id)
            self._at(prediction.end_at, "finish", prediction.id)
            if prediction.cancel_deadline:
                self._at(prediction.cancel_deadline, "deadline", prediction.id)
            self._send_webhook(prediction, "start")
            if self.faults.create_then_fail:  # created, but the answer is lost on its way back
                raise injected(self.faults.create_then_fail.pop(0))
        wait = prefer_wait(headers.get("prefer"))
        if wait:
            deadline = time.time() + wait
            with self._changed:
                while prediction.status not in TERMINAL and time.time() < deadline:
                    self._changed.wait(deadline - time.time())
        with self._lock:
            return prediction.to_json(self.url)

    def get(self, prediction_id: str) -> dict:
        self.stats["get_calls"] += 1
        self._maybe_fail_read()
        with self._lock:
            prediction = self.predictions.get(prediction_id)
            if prediction is None:
                raise SimError(404, "Not found", "Not found.")
            return prediction.to_json(self.url)

    def cancel(self, prediction_id: str) -> dict:
        self.stats["cancel_calls"] += 1
        with self._lock:
            if self.faults.cancel_failures:
                raise injected(self.faults.cancel_failures.pop(0))
            prediction = self.predictions.get(prediction_id)
            if prediction is None:
                raise SimError(404, "Not found", "Not found.")
            if prediction.status not in TERMINAL:
                self._end(prediction, "canceled", time.time())
                self.stats["predictions_canceled"] += 1
            return prediction.to_json(self.url)

    def list(self, query: dict) -> dict:
        self.stats["list_calls"] += 1
        self._maybe_fail_read()
        after = parse_time(query.get("created_after", "")) if query.get("created_after") else None
        before = parse_time(query.get("created_before", "")) if query.get("created_before") else None
        cursor = int(query["cursor"]) if query.get("cursor", "").isdigit() else 0
        with self._lock:
            chosen = [self.predictions[i] for i in reversed(self._order) if i in self.predictions]
            chosen = [p for p in chosen
                      if (after is None or p.created_at > after) and (before is None or p.created_at < before)]
            page = chosen[cursor:cursor + PAGE_SIZE]

            def link(offset: int) -> str:
                params = {k: v for k, v in query.items() if k != "cursor"}
                params["cursor"] = str(offset)
                return f"{self.url}/v1/predictions?{urlencode(params)}"

            return {
                "next": link(cursor + PAGE_SIZE) if cursor + PAGE_SIZE < len(chosen) else None,
                "previous": link(max(cursor - PAGE_SIZE, 0)) if cursor > 0 else None,
                "results": [p.to_json(self.url) for p in page],
            }

    def _maybe_fail_read(self) -> None:
        with self._lock:
            if self.faults.read_failures:
                self.stats["read_failures"] += 1
                raise injected(self.faults.read_failures.pop(0))
            rate, status = self.faults.read_failure_rate, self.faults.read_failure_status
            if rate and self._rng.random() < rate:
                self.stats["read_failures"] += 1
                raise injected({"status": status})
