"""A local Replicate: the part of Replicate's HTTP API this project uses, as Replicate documents it.

Runs alone (`python -m devserver.replicate_sim --port 8100`) or inside the devserver and tests.

- `POST /v1/predictions` (by version: bare id, `owner/name:id`, or `owner/name` for an official
  model) and `POST /v1/models/{owner}/{name}/predictions`; `Prefer: wait[=n]`; `Cancel-After`.
- `GET /v1/predictions/{id}`, `POST /v1/predictions/{id}/cancel`, `GET /v1/predictions` (newest
  first, 100 a page, `created_after`/`created_before`, absolute `next`/`previous` cursor URLs),
  `GET /v1/webhooks/default/secret`.
- Predictions go `starting` -> `processing` -> `succeeded` over `duration_s`; outputs are PNGs it
  serves at `/files/...` and deletes `output_ttl_s` after completion (then `output` is null and
  `data_removed` true, as Replicate does an hour after an API prediction).
- Bearer (or Token) auth; errors as `application/problem+json`.
- Signed webhooks (Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`),
  retried a few times with the same `webhook-id`.
- Fault injection for tests: `POST /_sim/faults`, `POST /_sim/reset`, `GET /_sim/stats`,
  `GET /_sim/predictions`, `POST /_sim/forget/{id}`, `POST /_sim/expire` (or the same methods on
  the `Simulator` object in-process).
- Outputs are real images: the garment composited onto the person when both images can be read
  (data URIs, or URLs it can fetch), otherwise a generated image labelled with the step.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import heapq
import io
import json
import random
import re
import secrets
import string
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

IDM_VTON = "cuuupid/idm-vton"
IDM_VTON_VERSION = "0452664a003fbcc9bd2b9dbe31207b6bde4fb33932a226d67b72a28e5306bf77"
MODELS = {IDM_VTON: {IDM_VTON_VERSION, "c871bb9b046607b680449ecbae55fd8c6d945e0a1948644bf2361b3d021d3ff4"}}
CATEGORIES = ("upper_body", "lower_body", "dresses")
PAGE_SIZE = 100
TERMINAL = ("succeeded", "failed", "canceled", "aborted")


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(value: str) -> float | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def parse_duration(value: str) -> float | None:
    """`Cancel-After`: `30s`, `5m`, `1h`, `2h30m`, or bare seconds."""
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", value)
    if not match or not any(match.groups()):
        return None
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


@dataclass
class Faults:
    """What goes wrong. Lists are consumed one item per matching call."""

    create_failures: list = field(default_factory=list)   # [{"status": 429, "retry_after": 1, "detail": ".."}]
    cancel_failures: list = field(default_factory=list)
    read_failures: list = field(default_factory=list)     # the next reads' failures, in order
    read_failure_rate: float = 0.0                         # GET prediction / list calls that fail
    read_failure_status: int = 503
    latency_s: float = 0.0                                 # added to every API call
    outcomes: list = field(default_factory=list)           # per create: succeeded|failed|aborted|canceled
    default_outcome: str = "succeeded"
    failure_error: str = "CUDA out of memory. Tried to allocate 2.00 GiB"
    output_format: str = "string"                          # string | list
    duration_s: float | None = None                        # overrides the simulator's duration
    webhook_drop: bool = False                             # never deliver webhooks
    render_outputs: bool = True                            # False: one small cached PNG (benchmarks)


@dataclass
class SimPrediction:
    id: str
    model: str
    version: str
    input: dict
    created_at: float
    start_at: float
    end_at: float
    outcome: str
    webhook: str | None
    events_filter: list | None
    cancel_deadline: float | None
    status: str = "starting"
    output: object = None
    error: str | None = None
    started_at: float | None = None
    completed_at: float | None = None
    data_removed: bool = False
    logs: str = ""
    files: list = field(default_factory=list)

    def to_json(self, base_url: str) -> dict:
        body = {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "input": self.input,
            "output": self.output,
            "data_removed": self.data_removed,
            "error": self.error,
            "status": self.status,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "completed_at": _iso(self.completed_at),
            "logs": self.logs,
            "source": "api",
            "urls": {
                "get": f"{base_url}/v1/predictions/{self.id}",
                "cancel": f"{base_url}/v1/predictions/{self.id}/cancel",
                "web": f"https://replicate.com/p/{self.id}",
            },
        }
        if self.status in TERMINAL and self.started_at and self.completed_at:
            body["metrics"] = {"predict_time": round(self.completed_at - self.started_at, 3),
                               "total_time": round(self.completed_at - self.created_at, 3)}
        if self.cancel_deadline:
            body["deadline"] = _iso(self.cancel_deadline)
        return body


class SimError(Exception):
    def __init__(self, status: int, title: str, detail: str, headers: dict | None = None, **extra):
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict:
        return {"title": self.title, "detail": self.detail, "status": self.status, **self.extra}


class Simulator:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, duration_s: float = 3.0,
                 output_ttl_s: float = 3600.0, token: str | None = None, webhook_secret: str | None = None,
                 render_workers: int = 4):
        self.duration_s = duration_s
        self.output_ttl_s = output_ttl_s
        self.token = token
        self.webhook_secret = webhook_secret or "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.faults = Faults()
        self.stats: Counter = Counter()
        self.predictions: dict[str, SimPrediction] = {}
        self.files: dict[str, bytes] = {}
        self.webhook_log: list[dict] = []
        self._order: list[str] = []
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._schedule: list[tuple[float, int, str, str]] = []
        self._seq = 0
        self._rng = random.Random()
        self._stop = threading.Event()
        self._render_pool = ThreadPoolExecutor(render_workers, thread_name_prefix="sim-render")
        self._webhook_pool = ThreadPoolExecutor(8, thread_name_prefix="sim-webhook")
        self.server = ThreadingHTTPServer((host, port), _handler_for(self))
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self._threads: list[threading.Thread] = []

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> "Simulator":
        for target, name in ((self.server.serve_forever, "sim-http"), (self._engine, "sim-engine")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        self.server.shutdown()
        self.server.server_close()
        self._render_pool.shutdown(wait=False, cancel_futures=True)
        self._webhook_pool.shutdown(wait=False, cancel_futures=True)

    def reset(self) -> None:
        with self._lock:
            self.faults = Faults()
            self.stats.clear()
            self.predictions.clear()
            self.files.clear()
            self.webhook_log.clear()
            self._order.clear()
            self._schedule.clear()

    def set_faults(self, **changes) -> None:
        with self._lock:
            for key, value in changes.items():
                if not hasattr(self.faults, key):
                    raise ValueError(f"unknown fault {key!r}")
                setattr(self.faults, key, value)

    def forget(self, prediction_id: str) -> None:
        """As if Replicate no longer knew the prediction: GET answers 404."""
        with self._lock:
            self.predictions.pop(prediction_id, None)

    def expire_outputs(self) -> None:
        """Removes every finished prediction's data now, as the retention period would."""
        with self._lock:
            for prediction in self.predictions.values():
                if prediction.status in TERMINAL:
                    self._remove_data(prediction)

    # --- the engine: moves predictions along their lifecycle ---------------------------------------

    def _at(self, when: float, event: str, prediction_id: str) -> None:
        self._seq += 1
        heapq.heappush(self._schedule, (when, self._seq, event, prediction_id))
        self._changed.notify_all()

    def _engine(self) -> None:
        while not self._stop.is_set():
            with self._changed:
                now = time.time()
                due = []
                while self._schedule and self._schedule[0][0] <= now:
                    due.append(heapq.heappop(self._schedule))
                if not due:
                    wait = self._schedule[0][0] - now if self._schedule else 0.5
                    self._changed.wait(min(max(wait, 0.001), 0.5))
                    continue
                for _, _, event, prediction_id in due:
                    prediction = self.predictions.get(prediction_id)
                    if prediction is not None:
                        self._fire(event, prediction, now)

    def _fire(self, event: str, p: SimPrediction, now: float) -> None:
        if event == "processing" and p.status == "starting":
            p.status, p.started_at = "processing", now
            p.logs = "Loading pipeline...\n"
        elif event == "finish" and p.status == "processing":
            if p.outcome == "succeeded":
                p.logs += "Running try-on...\n"
                self._render_pool.submit(self._render_and_succeed, p.id)
            elif p.outcome == "aborted":
                self._end(p, "aborted", now)
            else:
                self._end(p, p.outcome, now, error=self.faults.failure_error if p.outcome == "failed" else None)
        elif event == "deadline" and p.status not in TERMINAL:
            self._end(p, "aborted" if p.status == "starting" else "canceled", now)
        elif event == "expire":
            self._remove_data(p)

    def _end(self, p: SimPrediction, status: str, now: float, *, error: str | None = None, output=None) -> None:
        p.status, p.completed_at, p.error, p.output = status, now, error, output
        if p.started_at is None and status != "aborted":
            p.started_at = now
        self._at(now + self.output_ttl_s, "expire", p.id)
        self._changed.notify_all()
        self._send_webhook(p, "completed")

    def _render_and_succeed(self, prediction_id: str) -> None:
        with self._lock:
            p = self.predictions.get(prediction_id)
            if p is None:
                return
            model_input = dict(p.input)
            render = self.faults.render_outputs
        try:
            png = render_try_on(model_input) if render else placeholder_png()
        except Exception as error:  # a simulator bug must surface as a failed prediction, not a hang
            png, failure = None, f"simulator could not render: {error}"
        else:
            failure = None
        with self._lock:
            if p.status != "processing":
                return  # canceled while rendering
            now = time.time()
            if png is None:
                self._end(p, "failed", now, error=failure)
                return
            file_id = f"{p.id}/out-0.png"
            self.files[file_id] = png
            p.files.append(file_id)
            url = f"{self.url}/files/{file_id}"
            p.logs += "Done.\n"
            self._end(p, "succeeded", now, output=[url] if self.faults.output_format == "list" else url)

    def _remove_data(self, p: SimPrediction) -> None:
        if p.data_removed:
            return
        p.data_removed, p.output, p.input, p.logs = True, None, {}, ""
        for file_id in p.files:
            self.files.pop(file_id, None)

    # --- webhooks --------------------------------------------------------------------------------

    def _send_webhook(self, p: SimPrediction, event: str) -> None:
        if not p.webhook or self.faults.webhook_drop:
            return
        if p.events_filter is not None and event not in p.events_filter:
            return
        body = json.dumps(p.to_json(self.url)).encode()
        message_id = "msg_" + secrets.token_hex(12)
        self._webhook_pool.submit(self._deliver, p.webhook, body, message_id, p.id, event)

    def sign(self, message_id: str, timestamp: int, body: bytes) -> str:
        key = base64.b64decode(self.webhook_secret.split("_", 1)[1])
        signed = f"{message_id}.{timestamp}.".encode() + body
        return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()

    def _deliver(self, url: str, body: bytes, message_id: str, prediction_id: str, event: str) -> None:
        for attempt, pause in enumerate((0.5, 1.0, 2.0, None), start=1):
            timestamp = int(time.time())
            request = urllib.request.Request(url, data=body, method="POST", headers={
                "Content-Type": "application/json",
                "webhook-id": message_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": self.sign(message_id, timestamp, body),
            })
            status = None
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    status = response.status
            except urllib.error.HTTPError as error:
                status = error.code
            except OSError:
                status = None
            with self._lock:
                self.webhook_log.append({"prediction_id": prediction_id, "event": event, "attempt": attempt,
                                         "status": status, "webhook_id": message_id, "at": time.time()})
                self.stats["webhooks_sent"] += 1
            if status is not None and 200 <= status < 300:
                return
            if pause is None or self._stop.is_set():
                return
            time.sleep(pause)

    # --- the API ---------------------------------------------------------------------------------

    def authorize(self, header: str | None) -> None:
        scheme, _, token = (header or "").partition(" ")
        if scheme not in ("Bearer", "Token") or not token or (self.token is not None and token != self.token):
            raise SimError(401, "Unauthenticated", "You did not pass a valid authentication token")

    def create(self, body: dict, *, model: str | None = None, headers: dict) -> dict:
        self.stats["create_calls"] += 1
        with self._lock:
            if self.faults.create_failures:
                failure = self.faults.create_failures.pop(0)
                raise _injected(failure)
        if not isinstance(body, dict):
            raise SimError(400, "Bad request", "The request body must be a JSON object")
        model, version = self._resolve(body, model)
        model_input = body.get("input")
        if not isinstance(model_input, dict):
            raise SimError(422, "Input validation failed", "- input: input is required\n",
                           invalid_fields=[{"type": "required", "field": "input", "description": "input is required"}])
        invalid = validate_input(model_input)
        if invalid:
            raise SimError(422, "Input validation failed",
                           "".join(f"- input: {f['description']}\n" for f in invalid), invalid_fields=invalid)
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
                id=_new_id(self._rng), model=model, version=version, input=model_input, created_at=now,
                start_at=now + duration * 0.15, end_at=now + duration, outcome=outcome, webhook=webhook,
                events_filter=events_filter if isinstance(events_filter, list) else None,
                cancel_deadline=now + cancel_after if cancel_after else None,
            )
            self.predictions[prediction.id] = prediction
            self._order.append(prediction.id)
            self.stats["predictions_created"] += 1
            self._at(prediction.start_at, "processing", prediction.id)
            self._at(prediction.end_at, "finish", prediction.id)
            if prediction.cancel_deadline:
                self._at(prediction.cancel_deadline, "deadline", prediction.id)
            self._send_webhook(prediction, "start")
        wait = _prefer_wait(headers.get("prefer"))
        if wait:
            deadline = time.time() + wait
            with self._changed:
                while prediction.status not in TERMINAL and time.time() < deadline:
                    self._changed.wait(deadline - time.time())
        with self._lock:
            return prediction.to_json(self.url)

    def _resolve(self, body: dict, model: str | None) -> tuple[str, str]:
        invalid = SimError(422, "Invalid version or not permitted",
                           "The specified version does not exist (or perhaps you don't have permission to use it?)")
        if model is not None:
            if model not in MODELS:
                raise SimError(404, "Not found", f"Model {model} not found")
            return model, "hidden"
        version = body.get("version")
        if not isinstance(version, str) or not version:
            raise SimError(422, "Input validation failed", "- version: version is required\n")
        if ":" in version:
            name, _, version_id = version.partition(":")
            if version_id in MODELS.get(name, ()):
                return name, version_id
            raise invalid
        if "/" in version:
            if version in MODELS:
                return version, "hidden"
            raise invalid
        for name, versions in MODELS.items():
            if version in versions:
                return name, version
        raise invalid

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
                raise _injected(self.faults.cancel_failures.pop(0))
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
        after = _parse_time(query.get("created_after", "")) if query.get("created_after") else None
        before = _parse_time(query.get("created_before", "")) if query.get("created_before") else None
        cursor = int(query["cursor"]) if query.get("cursor", "").isdigit() else 0
        with self._lock:
            chosen = [self.predictions[i] for i in reversed(self._order) if i in self.predictions]
            chosen = [p for p in chosen if (after is None or p.created_at > after) and (before is None or p.created_at < before)]
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
                raise _injected(self.faults.read_failures.pop(0))
            rate, status = self.faults.read_failure_rate, self.faults.read_failure_status
            if rate and self._rng.random() < rate:
                self.stats["read_failures"] += 1
                raise _injected({"status": status})

    # --- for tests and benchmarks ------------------------------------------------------------------

    def snapshot(self) -> list[dict]:
        with self._lock:
            return [{**self.predictions[i].to_json(self.url), "sim_input": self.predictions[i].input}
                    for i in self._order if i in self.predictions]

    def snapshot_one(self, prediction_id: str) -> dict:
        """The prediction as the API would return it now."""
        with self._lock:
            return self.predictions[prediction_id].to_json(self.url)

    def created_inputs(self) -> list[dict]:
        """The input of every prediction created, oldest first (kept after data removal)."""
        with self._lock:
            return [self.predictions[i].input for i in self._order if i in self.predictions]

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Waits until no prediction is running."""
        deadline = time.time() + timeout
        with self._changed:
            while any(p.status not in TERMINAL for p in self.predictions.values()):
                if time.time() >= deadline:
                    return False
                self._changed.wait(0.05)
        return True


def _injected(failure: dict) -> SimError:
    status = int(failure.get("status", 503))
    headers = {"Retry-After": str(failure["retry_after"])} if failure.get("retry_after") is not None else {}
    titles = {401: "Unauthenticated", 402: "Insufficient credit", 422: "Input validation failed",
              429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
              503: "Service Unavailable", 504: "Gateway Timeout"}
    detail = failure.get("detail") or (
        "Request was throttled. Your rate limit resets in ~30s." if status == 429 else titles.get(status, "Error"))
    return SimError(status, titles.get(status, "Error"), detail, headers)


def _prefer_wait(value: str | None) -> float:
    if not value:
        return 0.0
    match = re.fullmatch(r"\s*wait(?:=(\d+))?\s*", value)
    if not match:
        return 0.0
    return float(min(max(int(match[1] or 60), 1), 60))


def _new_id(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(26))


def validate_input(model_input: dict) -> list[dict]:
    """IDM-VTON's input schema, as far as this project uses it."""
    invalid = []
    for name in ("human_img", "garm_img"):
        value = model_input.get(name)
        if not isinstance(value, str) or not value:
            invalid.append({"type": "required", "field": f"input.{name}", "description": f"{name} is required"})
        elif not (value.startswith(("http://", "https://")) or value.startswith("data:")):
            invalid.append({"type": "format", "field": f"input.{name}", "description": f"{name}: Does not match format 'uri'"})
    category = model_input.get("category", "upper_body")
    if category not in CATEGORIES:
        invalid.append({"type": "enum", "field": "input.category",
                        "description": f"category must be one of the following: {', '.join(CATEGORIES)}"})
    if "garment_des" in model_input and not isinstance(model_input["garment_des"], str):
        invalid.append({"type": "type", "field": "input.garment_des", "description": "garment_des: Invalid type. Expected: string"})
    return invalid


# --- rendering -----------------------------------------------------------------------------------

def _fetch_image(ref: str):
    """Reads an input image: data URIs, and URLs on this machine (there is no internet here)."""
    from PIL import Image

    try:
        if ref.startswith("data:"):
            data = base64.b64decode(ref.split(",", 1)[1])
        elif (urlsplit(ref).hostname or "") not in ("127.0.0.1", "localhost", "::1"):
            return None
        else:
            with urllib.request.urlopen(ref, timeout=5) as response:
                data = response.read(30 * 1024 * 1024)
        image = Image.open(io.BytesIO(data))
        image.load()
        return image
    except Exception:
        return None


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


_PLACEHOLDER: list[bytes] = []


def placeholder_png() -> bytes:
    if not _PLACEHOLDER:
        from PIL import Image

        out = io.BytesIO()
        Image.new("RGB", (48, 64), (148, 163, 184)).save(out, format="PNG")
        _PLACEHOLDER.append(out.getvalue())
    return _PLACEHOLDER[0]


def render_try_on(model_input: dict) -> bytes:
    """A 768x1024 PNG: the garment laid over the person where the category puts it."""
    from PIL import Image, ImageChops, ImageDraw, ImageOps

    width, height = 768, 1024
    description = str(model_input.get("garment_des") or "")
    category = model_input.get("category", "upper_body")
    person = _fetch_image(str(model_input.get("human_img", "")))
    garment = _fetch_image(str(model_input.get("garm_img", "")))
    if person is not None:
        canvas = ImageOps.fit(person.convert("RGB"), (width, height))
    else:
        canvas = Image.new("RGB", (width, height), (226, 232, 240))
        draw = ImageDraw.Draw(canvas)
        draw.ellipse((284, 90, 484, 290), fill=(148, 163, 184))
        draw.rounded_rectangle((214, 300, 554, 980), radius=60, fill=(148, 163, 184))
    top, bottom = {"upper_body": (0.27, 0.58), "lower_body": (0.52, 0.95), "dresses": (0.27, 0.92)}.get(category, (0.27, 0.58))
    box = (int(width * 0.22), int(height * top), int(width * 0.78), int(height * bottom))
    if garment is not None:
        piece = ImageOps.contain(garment.convert("RGBA"), (box[2] - box[0], box[3] - box[1]))
        # Near-white product-photo backgrounds become transparent.
        red, green, blue, alpha = piece.split()
        darkest = ImageChops.darker(ImageChops.darker(red, green), blue)
        piece.putalpha(ImageChops.multiply(alpha, darkest.point(lambda v: 0 if v > 235 else 255)))
        offset = (box[0] + (box[2] - box[0] - piece.width) // 2, box[1] + (box[3] - box[1] - piece.height) // 2)
        canvas.paste(piece, offset, piece)
    else:
        hue = int(hashlib.sha256(description.encode()).hexdigest()[:6], 16)
        colour = ((hue >> 16) % 200 + 30, (hue >> 8) % 200 + 30, hue % 200 + 30)
        ImageDraw.Draw(canvas).rounded_rectangle(box, radius=40, fill=colour)
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, height - 56, width, height), fill=(15, 23, 42))
    draw.text((20, height - 44), f"{category}: {description}"[:60], fill=(248, 250, 252), font=_font(28))
    out = io.BytesIO()
    canvas.save(out, format="PNG", optimize=False)
    return out.getvalue()


# --- HTTP ----------------------------------------------------------------------------------------

def _handler_for(sim: Simulator):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "replicate-sim"

        def log_message(self, *args):  # quiet: the devserver logs what matters
            pass

        def _send(self, status: int, body, headers: dict | None = None, content_type: str = "application/json") -> None:
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)

        def _body(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if not raw:
                return {}
            try:
                return json.loads(raw)
            except ValueError:
                raise SimError(400, "Bad request", "The request body is not valid JSON") from None

        def _route(self, method: str) -> None:
            parts = urlsplit(self.path)
            path, query = parts.path.rstrip("/") or "/", {k: v[0] for k, v in parse_qs(parts.query).items()}
            try:
                if path.startswith("/_sim/"):
                    return self._admin(method, path, query)
                if path.startswith("/files/") and method == "GET":
                    return self._file(path[len("/files/"):])
                if not path.startswith("/v1/"):
                    raise SimError(404, "Not found", "Not found.")
                sim.authorize(self.headers.get("Authorization"))
                latency = sim.faults.latency_s
                if latency:
                    time.sleep(latency)
                headers = {k.lower(): v for k, v in self.headers.items()}
                if method == "POST" and path == "/v1/predictions":
                    return self._send(201, sim.create(self._body(), headers=headers))
                match = re.fullmatch(r"/v1/models/([^/]+)/([^/]+)/predictions", path)
                if method == "POST" and match:
                    return self._send(201, sim.create(self._body(), model=f"{match[1]}/{match[2]}", headers=headers))
                match = re.fullmatch(r"/v1/predictions/([^/]+)(/cancel)?", path)
                if match and method == "GET" and not match[2]:
                    return self._send(200, sim.get(match[1]))
                if match and method == "POST" and match[2]:
                    return self._send(200, sim.cancel(match[1]))
                if path == "/v1/predictions" and method == "GET":
                    return self._send(200, sim.list(query))
                if path == "/v1/webhooks/default/secret" and method == "GET":
                    return self._send(200, {"key": sim.webhook_secret})
                raise SimError(404, "Not found", "Not found.")
            except SimError as error:
                self._send(error.status, error.body(), error.headers, "application/problem+json")

        def _file(self, file_id: str) -> None:
            with sim._lock:
                data = sim.files.get(file_id)
                sim.stats["file_gets"] += 1
                if data is None:
                    sim.stats["expired_file_gets"] += 1
            if data is None:
                raise SimError(404, "Not found", "This file has been removed.")
            self._send(200, data, content_type="image/png")

        def _admin(self, method: str, path: str, query: dict) -> None:
            if method == "POST" and path == "/_sim/faults":
                body = self._body()
                try:
                    sim.set_faults(**body)
                except (TypeError, ValueError) as error:
                    raise SimError(400, "Bad fault", str(error)) from None
                return self._send(200, {"ok": True})
            if method == "POST" and path == "/_sim/reset":
                sim.reset()
                return self._send(200, {"ok": True})
            if method == "POST" and path == "/_sim/expire":
                sim.expire_outputs()
                return self._send(200, {"ok": True})
            if method == "POST" and path.startswith("/_sim/forget/"):
                sim.forget(path.rsplit("/", 1)[1])
                return self._send(200, {"ok": True})
            if method == "GET" and path == "/_sim/stats":
                with sim._lock:
                    return self._send(200, dict(sim.stats))
            if method == "GET" and path == "/_sim/predictions":
                return self._send(200, sim.snapshot())
            raise SimError(404, "Not found", "Not found.")

        def do_GET(self):
            self._route("GET")

        def do_POST(self):
            self._route("POST")

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds a prediction runs")
    parser.add_argument("--output-ttl", type=float, default=3600.0, help="seconds before outputs are removed")
    parser.add_argument("--token", default=None, help="the only API token accepted (default: any)")
    parser.add_argument("--webhook-secret", default=None)
    args = parser.parse_args()
    sim = Simulator(args.host, args.port, duration_s=args.duration, output_ttl_s=args.output_ttl,
                    token=args.token, webhook_secret=args.webhook_secret).start()
    print(f"Replicate simulator on {sim.url} (webhook secret {sim.webhook_secret})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sim.stop()


if __name__ == "__main__":
    main()
