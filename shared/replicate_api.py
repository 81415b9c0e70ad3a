"""Replicate through the `replicate` client (1.0.7), bounded and classified.

What the client does not do for us, and this module does:
- a timeout on every call (its create sends `timeout=None`: no limit at all);
- no hidden retries: its transport retries GETs on 429/503/504 up to 10 times, sleeping up to
  60 s each (a digit Retry-After unbounded), which would run a function past its timeout. Our
  transport raises on those answers instead, and the next cron ping is the retry;
- predictions are read as plain JSON, because the client's model rejects status `aborted`;
- every failure is one of two kinds: `Transient` (try again later; the task stays as it is) or
  `Rejected` (permanent: the step fails with a sentence a person understands).
"""

from __future__ import annotations

import email.utils
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import replicate
from replicate.exceptions import ReplicateError

from shared import profiles
from shared.images import first_url
from shared.settings import ConfigError, Settings

TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})


class Transient(Exception):
    def __init__(self, reason: str, *, retry_after: float | None = None, status: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.status = status


class Rejected(Exception):
    """Replicate refused for good; `message` is written for the person who owns the task."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status


class PredictionGone(Rejected):
    """Replicate does not know the prediction (404): it was deleted, or never existed."""


class OutOfTime(Transient):
    """The call could not start inside this run's time: left for the next ping, not an error."""


class RateLimiter:
    """Spaces calls to `per_second` with bursts of up to `burst`; `pause` holds every caller
    back after a 429, so one throttled call slows the whole batch, not just itself."""

    def __init__(self, per_second: float, burst: int = 5):
        self.interval = 1.0 / per_second
        self.burst = burst
        self.next_free = 0.0
        self.lock = threading.Lock()

    def acquire(self, deadline: float | None = None) -> None:
        with self.lock:
            now = time.monotonic()
            start = max(self.next_free, now - self.burst * self.interval)
            if deadline is not None and start > deadline:
                raise OutOfTime("no time left in this run for another Replicate call")
            self.next_free = start + self.interval
        if start > now:
            time.sleep(start - now)

    def pause(self, seconds: float) -> None:
        with self.lock:
            self.next_free = max(self.next_free, time.monotonic() + seconds)


# Replicate's limits: 600 creates a minute, 3,000 other requests a minute. Stay under both, per
# instance; a 429 from sharing the account with other instances pauses the limiter.
_limiters: dict[tuple[str, float], RateLimiter] = {}


def limiter(kind: str, per_second: float) -> RateLimiter:
    with _clients_lock:
        found = _limiters.get((kind, per_second))
        if found is None:
            found = _limiters[(kind, per_second)] = RateLimiter(per_second)
        return found


@dataclass(frozen=True)
class Prediction:
    id: str
    status: str
    output: Any
    error: str | None
    data_removed: bool
    logs: str = ""                      # the list endpoint's entries may have none
    predict_time_s: float | None = None  # metrics.predict_time, once it ended
    model: str | None = None             # owner/name

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
        )


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), 300.0)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(when.timestamp() - time.time(), 300.0))


class _FailFastTransport(httpx.HTTPTransport):
    """Turns the answers the client would retry in a sleep loop into an immediate `Transient`."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if response.status_code in (429, 503, 504):
            response.read()
            response.close()
            raise Transient(
                f"Replicate answered {response.status_code}",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                status=response.status_code,
            )
        return response


_clients: dict[tuple[str, str, float], replicate.Client] = {}
_clients_lock = threading.Lock()


def _client(token: str, base_url: str, timeout: float) -> replicate.Client:
    key = (token, base_url, timeout)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = replicate.Client(
                api_token=token,
                base_url=base_url or None,
                timeout=httpx.Timeout(timeout, connect=5.0, pool=5.0),
                transport=_FailFastTransport(retries=0),
            )
            _clients[key] = client
        return client


class ReplicateAPI:
    def __init__(self, settings: Settings, deadline: float | None = None):
        if not settings.replicate_api_token:
            raise ConfigError("REPLICATE_API_TOKEN is not set")
        self.settings = settings
        self.client = _client(settings.replicate_api_token, settings.replicate_base_url, settings.replicate_timeout_s)
        self.reads = limiter("read", settings.replicate_reads_per_second)
        self.creates = limiter("create", settings.replicate_creates_per_second)
        self.deadline = deadline  # time.monotonic() after which no new call starts
        self.calls = 0

    def create(self, model_input: dict[str, Any], *, webhook: str | None = None, cancel_after_s: int | None = None,
               start_by: float | None = None) -> Prediction:
        """Creates a prediction. `start_by` (time.monotonic()): if the create cannot start by
        then (rate limit), `OutOfTime` is raised instead, before anything is sent."""
        body: dict[str, Any] = {"input": model_input}
        if webhook:
            body["webhook"] = webhook
            body["webhook_events_filter"] = ["completed"]
        headers = {"Cancel-After": f"{int(cancel_after_s)}s"} if cancel_after_s else {}
        profile = profiles.active(self.settings)
        if profile.version:
            body["version"] = profile.version
            path = "/v1/predictions"
        else:  # an official model: no version, through the models endpoint
            path = f"/v1/models/{profile.model}/predictions"
        return Prediction.from_json(self._call("POST", path, json=body, headers=headers, limit=self.creates,
                                               start_by=start_by))

    def get(self, prediction_id: str) -> Prediction:
        return Prediction.from_json(self._call("GET", f"/v1/predictions/{prediction_id}"))

    def cancel(self, prediction_id: str) -> Prediction:
        return Prediction.from_json(self._call("POST", f"/v1/predictions/{prediction_id}/cancel"))

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

    def _call(self, method: str, path: str, *, limit: RateLimiter | None = None, start_by: float | None = None,
              **kwargs: Any) -> Any:
        limit = limit or self.reads
        limit.acquire(min(t for t in (self.deadline, start_by, float("inf")) if t is not None))
        self.calls += 1
        try:
            response = self.client._request(method, path, **kwargs)
        except Transient as error:
            if error.status == 429:
                limit.pause(error.retry_after or 5.0)
            raise
        except ReplicateError as error:
            raise _classify(error) from None
        except httpx.TimeoutException:
            raise Transient("Replicate did not answer in time") from None
        except httpx.HTTPError as error:
            raise Transient(f"Replicate could not be reached ({type(error).__name__})") from None
        try:
            return response.json()
        except ValueError:
            raise Transient("Replicate sent an answer that is not JSON") from None


def _classify(error: ReplicateError) -> Exception:
    status = error.status or 0
    detail = (error.detail or error.title or "").strip()
    if status == 429 or status >= 500:
        return Transient(f"Replicate answered {status}", status=status)
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
