"""The simulator's data: what can go wrong (`Faults`), one prediction (`SimPrediction`), an API
error (`SimError`), and the small parsers of Replicate's headers and timestamps."""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass, field
from datetime import datetime, timezone

PAGE_SIZE = 100
TERMINAL = ("succeeded", "failed", "canceled", "aborted")


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> float | None:
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


def prefer_wait(value: str | None) -> float:
    """`Prefer: wait` / `wait=n`: seconds a create may hold the request (1-60)."""
    if not value:
        return 0.0
    match = re.fullmatch(r"\s*wait(?:=(\d+))?\s*", value)
    if not match:
        return 0.0
    return float(min(max(int(match[1] or 60), 1), 60))


def new_id(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(26))


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
    create_then_fail: list = field(default_factory=list)  # per create: made, but this failure is answered
    slow_drip_s: float = 0.0                               # API answers: headers, then a body byte every N s
    slow_drip_files: bool = False                          # /files/ downloads drip too


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
    profile: str = "idm-vton"   # which schema: idm-vton | nano-banana | custom
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
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "completed_at": iso(self.completed_at),
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
            body["deadline"] = iso(self.cancel_deadline)
        return body


class SimError(Exception):
    """An API error, answered as `application/problem+json`."""

    def __init__(self, status: int, title: str, detail: str, headers: dict | None = None, **extra):
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict:
        return {"title": self.title, "detail": self.detail, "status": self.status, **self.extra}


TITLES = {401: "Unauthenticated", 402: "Insufficient credit", 422: "Input validation failed",
          429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
          503: "Service Unavailable", 504: "Gateway Timeout"}


def injected(failure: dict) -> SimError:
    """The error a fault list entry such as `{"status": 429, "retry_after": 1}` stands for."""
    status = int(failure.get("status", 503))
    headers = {"Retry-After": str(failure["retry_after"])} if failure.get("retry_after") is not None else {}
    detail = failure.get("detail") or (
        "Request was throttled. Your rate limit resets in ~30s." if status == 429 else TITLES.get(status, "Error"))
    return SimError(status, TITLES.get(status, "Error"), detail, headers)
