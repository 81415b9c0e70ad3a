"""Replicate's HTTP API (create, get, cancel, list), bounded and classified.

The calls go over the standard library (`shared.plain_http`), not the `replicate` client, whose
import (httpx, pydantic, asyncio) cost a worker, checker or continue cold start more than the
rest of the function. What this module does that the client did not:
- a wall-clock deadline on every call (the client's create sends `timeout=None`, and httpx times
  each read, not the call);
- no hidden retries: the client's transport retries GETs on 429/503/504 up to 10 times, sleeping
  up to 60 s each, which would run a function past its timeout. Here those answers raise
  `Transient` at once (with their Retry-After), and the next cron ping is the retry;
- predictions are read as plain JSON, because the client's model rejects status `aborted`;
- the token is sent only to REPLICATE_BASE_URL's origin, even when a list page names another;
- every failure is one of two kinds: `Transient` (try again later; the task stays as it is) or
  `Rejected` (permanent: the step fails with a sentence a person understands).
The requests are the client's (same paths, JSON bodies, Bearer token, Cancel-After header):
tests/test_replicate_transport.py sends both to the simulator and compares.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from shared import plain_http, profiles
from shared.images import first_url
from shared.replicate_errors import OutOfTime as OutOfTime
from shared.replicate_errors import PredictionGone as PredictionGone
from shared.replicate_errors import Rejected as Rejected
from shared.replicate_errors import Transient as Transient
from shared.replicate_errors import parse_retry_after as parse_retry_after
from shared.settings import ConfigError, Settings

DEFAULT_BASE_URL = "https://api.replicate.com"
_HTTP_URL = re.compile(r"^https?://[^/\s?#]+")
USER_AGENT = "vton-functions/2 (python http.client)"
MAX_ANSWER_BYTES = 16 * 1024 * 1024  # a list page of 100 predictions with their logs is well under it
TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})


class RateLimiter:
    """Spaces calls to `per_second` with bursts of up to `burst`; `pause` holds every caller
    back after a 429, so one throttled call slows the whole batch, not just itself. `clock` and
    `sleep` are time.monotonic and time.sleep, replaceable in tests."""

    def __init__(self, per_second: float, burst: int = 5, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval = 1.0 / per_second
        self.burst = burst
        self.next_free = 0.0
        self.lock = threading.Lock()
        self.clock, self.sleep = clock, sleep

    def acquire(self, deadline: float | None = None) -> None:
        with self.lock:
            now = self.clock()
            start = max(self.next_free, now - self.burst * self.interval)
            if deadline is not None and start > deadline:
                raise OutOfTime("no time left in this run for another Replicate call")
            self.next_free = start + self.interval
        if start > now:
            self.sleep(start - now)

    def pause(self, seconds: float) -> None:
        with self.lock:
            self.next_free = max(self.next_free, self.clock() + seconds)


END_GRACE_S = 1.5  # a run's calls may end this long after its last moment to start one (checker)
# No create with less time than this left: an abandoned create may leave an unrecorded prediction.
MIN_CREATE_WINDOW_S = 3.0
CANCEL_RESERVE_S = 2.0  # kept after a run's deadline to cancel a prediction it made but cannot use

# Replicate's limits: 600 creates a minute, 3,000 other requests a minute. Stay under both, per
# instance; a 429 from sharing the account with other instances pauses the limiter.
_limiters: dict[tuple[str, float], RateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter(kind: str, per_second: float) -> RateLimiter:
    with _limiters_lock:
        found = _limiters.get((kind, per_second))
        if found is None:
            found = _limiters[(kind, per_second)] = RateLimiter(per_second)
        return found


class Prediction(NamedTuple):
    id: str
    status: str
    output: Any
    error: str | None
    data_removed: bool
    logs: str = ""                      # the list endpoint's entries may have none
    predict_time_s: float | None = None  # metrics.predict_time, once it ended
    model: str | None = None             # owner/name
    input: Any = None  # what it was created with (list entries carry it): matches an unrecorded create

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def output_url(self) -> str | None:
        return first_url(self.output)

    @classmethod
    def from_json(cls, data: Any) -> Prediction:
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not isinstance(data.get("status"), str):
            raise Transient("Replicate sent a prediction without id or status")
        error = data.get("error")
        metrics = data.get("metrics")
        predict_time = metrics.get("predict_time") if isinstance(metrics, dict) else None
        if isinstance(predict_time, bool) or not isinstance(predict_time, (int, float)) or predict_time < 0:
            predict_time = None
        logs, model = data.get("logs"), data.get("model")
        return cls(
            id=data["id"],
            status=data["status"],
            output=data.get("output"),
            error=None if error in (None, "") else str(error),
            data_removed=bool(data.get("data_removed")),
            logs=logs if isinstance(logs, str) else "",
            predict_time_s=None if predict_time is None else float(predict_time),
            model=model if isinstance(model, str) and model else None,
            input=data.get("input"),
        )


class ReplicateAPI:
    def __init__(self, settings: Settings, deadline: float | None = None):
        if not settings.replicate_api_token:
            raise ConfigError("REPLICATE_API_TOKEN is not set")
        self.settings = settings
        self.base_url = (settings.replicate_base_url or DEFAULT_BASE_URL).rstrip("/")
        if not _HTTP_URL.match(self.base_url):  # else every call fails, each as if Replicate had trouble
            raise ConfigError(f"REPLICATE_BASE_URL must be an http(s) URL, got {self.base_url!r}")
        self.headers = {"Authorization": f"Bearer {settings.replicate_api_token}", "User-Agent": USER_AGENT,
                        "Accept": "application/json"}
        self.reads = limiter("read", settings.replicate_reads_per_second)
        self.creates = limiter("create", settings.replicate_creates_per_second)
        self.deadline = deadline  # time.monotonic() after which no new call starts
        self.end_by: float | None = None  # no call runs past this; default: deadline + END_GRACE_S
        self.calls = 0

    @property
    def min_create_window(self) -> float:
        return min(MIN_CREATE_WINDOW_S, self.settings.replicate_timeout_s / 2)

    def _call_end(self, end_by: float | None) -> float:
        """When a call starting now must have ended: its own timeout, this run's end, `end_by`."""
        run_end = self.end_by if self.end_by is not None else (
            self.deadline + END_GRACE_S if self.deadline is not None else None)
        return min(t for t in (time.monotonic() + self.settings.replicate_timeout_s, run_end, end_by)
                   if t is not None)

    def seconds_left(self) -> float:
        """How long a call (or a download on this run's behalf) starting now may take."""
        return self._call_end(None) - time.monotonic()

    def create(self, model_input: dict[str, Any], *, webhook: str | None = None, cancel_after_s: int | None = None,
               end_by: float | None = None) -> Prediction:
        """Creates a prediction. `end_by` (time.monotonic()): abandoned (`Transient`) if not ended
        by then; not sent (`OutOfTime`) with less than `min_create_window` left to it."""
        body: dict[str, Any] = {"input": model_input}
        if webhook:
            body["webhook"] = webhook
            body["webhook_events_filter"] = ["start", "completed"]  # start: orphans are seen at once
        headers = {"Cancel-After": f"{int(cancel_after_s)}s"} if cancel_after_s else {}
        profile = profiles.active(self.settings)
        if profile.version:
            body["version"] = profile.version
            path = "/v1/predictions"
        else:  # an official model: no version, through the models endpoint
            path = f"/v1/models/{profile.model}/predictions"
        return Prediction.from_json(self._call("POST", path, json=body, headers=headers, limit=self.creates,
                                               end_by=end_by, min_window=self.min_create_window))

    def get(self, prediction_id: str) -> Prediction:
        return Prediction.from_json(self._call("GET", f"/v1/predictions/{prediction_id}"))

    def cancel(self, prediction_id: str, *, reserved: bool = False) -> Prediction:
        """`reserved`: the cancel of an orphan, in the CANCEL_RESERVE_S a run keeps for it after
        its deadline (never stopped by the run's deadline, bounded by its own)."""
        path = f"/v1/predictions/{prediction_id}/cancel"
        if not reserved:
            return Prediction.from_json(self._call("POST", path))
        return Prediction.from_json(self._send("POST", path, self.reads, time.monotonic() + CANCEL_RESERVE_S, {}))

    def list_page(self, url: str | None = None, *,
                  created_after: str | None = None) -> tuple[list[Prediction], str | None]:
        """One page (up to 100, newest first) of the account's predictions, and the next page's URL."""
        if url is None:
            url = "/v1/predictions" + (f"?created_after={created_after}" if created_after else "")
        data = self._call("GET", url)
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list):
            raise Transient("Replicate sent a prediction list without results")
        predictions = []
        for item in results:
            try:
                predictions.append(Prediction.from_json(item))
            except Transient:
                continue
        return predictions, data.get("next") or None

    def _call(self, method: str, path: str, *, limit: RateLimiter | None = None, end_by: float | None = None,
              min_window: float = 0.0, **kwargs: Any) -> Any:
        limit = limit or self.reads
        start_by = None if self.deadline is None else self.deadline
        if end_by is not None:
            start_by = min(start_by if start_by is not None else end_by, end_by - min_window)
        limit.acquire(start_by)
        call_end = self._call_end(end_by)
        if call_end - time.monotonic() < min_window:
            raise OutOfTime("no time left in this run for another Replicate call")
        return self._send(method, path, limit, call_end, kwargs)

    def _send(self, method: str, path: str, limit: RateLimiter, call_end: float, kwargs: dict[str, Any]) -> Any:
        """One request that has ended, answered or not, by `call_end` (time.monotonic())."""
        url = self._url(path)
        headers = {**self.headers, **kwargs.get("headers", {})}
        body = None
        if "json" in kwargs:
            body = json.dumps(kwargs["json"]).encode()
            headers["Content-Type"] = "application/json"
        self.calls += 1
        try:
            reply = plain_http.request(method, url, deadline=call_end, headers=headers, body=body,
                                       max_bytes=MAX_ANSWER_BYTES)
        except plain_http.TimedOut:
            raise Transient("Replicate did not finish answering in time") from None
        except plain_http.TooLarge:
            raise Transient("Replicate sent an answer larger than 16 MB") from None
        except (OSError, http.client.HTTPException) as error:
            raise Transient(f"Replicate could not be reached ({type(error).__name__})") from None
        try:
            data = json.loads(reply.body) if reply.body else None
        except ValueError:
            data = None
        if reply.status >= 400:
            refusal = classify(reply.status, data, reply.headers.get("retry-after"))
            if isinstance(refusal, Transient) and refusal.status == 429:
                limit.pause(refusal.retry_after or 5.0)
            raise refusal
        if data is None:
            raise Transient("Replicate sent an answer that is not JSON")
        return data

    def _url(self, path: str) -> str:
        """`path` under the base URL; an absolute URL (a list page's `next`) only on its origin,
        so the token is never sent anywhere else. Anything else (".other.host/...", ":port/...")
        would change the origin once appended, so it is treated as another host."""
        if path.startswith("/"):
            return self.base_url + path
        if path.split("/", 3)[:3] != self.base_url.split("/", 3)[:3]:
            raise Transient("Replicate named a next page on another host")
        return path


def classify(status: int, data: Any, retry_after: str | None = None) -> Transient | Rejected:
    """An error answer (`data`: its JSON body, a problem document, or None) as one of our two kinds."""
    if status == 429 or status >= 500:
        return Transient(f"Replicate answered {status}", retry_after=parse_retry_after(retry_after), status=status)
    detail = ""
    if isinstance(data, dict):
        found = data.get("detail") or data.get("title") or ""
        detail = found.strip() if isinstance(found, str) else ""
    if status == 404:
        return PredictionGone("Replicate no longer has this prediction.", status=status)
    if status in (401, 403):
        return Rejected("The try-on service could not sign in to Replicate. "
                        "The site's operator needs to check the API token.", status=status)
    if status == 402:
        return Rejected("The try-on service has run out of Replicate credit. Please try again later.", status=status)
    if status == 422:
        reason = detail[:200] or "input validation failed"
        return Rejected(f"Replicate did not accept this step's images: {reason}.", status=status)
    return Rejected(f"Replicate refused this step ({status}{': ' + detail[:200] if detail else ''}).", status=status)
