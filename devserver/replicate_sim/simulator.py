"""`Simulator`: the predictions and the engine that moves them along their lifecycle (the API
calls live in api.py; the HTTP layer, http.py, and in-process tests call both)."""

from __future__ import annotations

import heapq
import json
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from devserver.replicate_sim.api import PredictionsApi
from devserver.replicate_sim.render import placeholder_png, render_output
from devserver.replicate_sim.state import TERMINAL, Faults, SimPrediction
from devserver.replicate_sim.webhooks import WebhookSender, new_secret, sign

PROGRESS_TICKS = 10     # tqdm lines a running IDM-VTON prediction prints
DEFAULT_STEPS = 30      # IDM-VTON's default denoising steps


def tqdm_line(done: int, total: int, elapsed: float) -> str:
    """` 40%|████      | 12/30 [00:04<00:06,  2.9it/s]`, as tqdm prints it."""
    rate = done / elapsed if elapsed > 0 else 0.0
    remaining = (total - done) / rate if rate else 0.0
    bar = "█" * (done * 10 // total)

    def clock(seconds: float) -> str:
        return f"{int(seconds) // 60:02d}:{int(seconds) % 60:02d}"

    timing = f"[{clock(elapsed)}<{clock(remaining)}, {rate:4.1f}it/s]"
    return f"{done * 100 // total:3d}%|{bar:<10}| {done}/{total} {timing}\n"


class Simulator(PredictionsApi):
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, duration_s: float = 3.0,
                 output_ttl_s: float = 3600.0, token: str | None = None, webhook_secret: str | None = None,
                 render_workers: int = 4):
        from devserver.replicate_sim.http import make_server

        self.duration_s = duration_s
        self.output_ttl_s = output_ttl_s
        self.token = token
        self.webhook_secret = webhook_secret or new_secret()
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
        self._generation = 0
        self._webhooks = WebhookSender(lambda: self.webhook_secret, self._record_webhook, self._stop)
        self.server = make_server(self, host, port)
        self.url = f"http://{host}:{self.server.server_address[1]}"

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Simulator:
        for target, name in ((self.server.serve_forever, "sim-http"), (self._engine, "sim-engine")):
            threading.Thread(target=target, name=name, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        self.server.shutdown()
        self.server.server_close()
        self._render_pool.shutdown(wait=False, cancel_futures=True)
        self._webhooks.shutdown()

    def reset(self) -> None:
        with self._lock:
            self.faults = Faults()
            self.stats.clear()
            self.predictions.clear()
            self.files.clear()
            self.webhook_log.clear()
            self._generation += 1  # deliveries still retrying from before are not logged
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

    def sign(self, message_id: str, timestamp: int, body: bytes) -> str:
        return sign(self.webhook_secret, message_id, timestamp, body)

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
            if p.profile == "idm-vton":
                p.logs = "Loading pipeline...\n"
                for tick in range(1, PROGRESS_TICKS):
                    self._at(now + (p.end_at - now) * tick / PROGRESS_TICKS, "progress", p.id)
        elif event == "progress" and p.status == "processing":
            assert p.started_at is not None  # set when it began processing
            total = p.input.get("steps", DEFAULT_STEPS)
            share = (now - p.started_at) / max(p.end_at - p.started_at, 1e-6)
            p.logs += tqdm_line(min(int(total * share), total - 1), total, now - p.started_at)
        elif event == "finish" and p.status == "processing":
            if p.outcome == "succeeded":
                if p.profile == "idm-vton":
                    assert p.started_at is not None  # set when it began processing
                    total = p.input.get("steps", DEFAULT_STEPS)
                    p.logs += tqdm_line(total, total, now - p.started_at)
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
            model_input, profile = dict(p.input), p.profile
            rendered = self.faults.render_outputs
        extension = "jpg" if profile == "nano-banana" and model_input.get("output_format", "jpg") == "jpg" else "png"
        image: bytes | None
        failure: str | None
        try:
            image = render_output(profile, model_input, extension) if rendered else placeholder_png()
        except Exception as error:  # a simulator bug must surface as a failed prediction, not a hang
            image, failure = None, f"simulator could not render: {error}"
        else:
            failure = None
        with self._lock:
            if p.status != "processing":
                return  # canceled while rendering
            now = time.time()
            if image is None:
                self._end(p, "failed", now, error=failure)
                return
            file_id = f"{p.id}/out-0.{extension if rendered else 'png'}"
            self.files[file_id] = image
            p.files.append(file_id)
            url = f"{self.url}/files/{file_id}"
            p.logs += "Done.\n" if profile == "idm-vton" else ""
            self._end(p, "succeeded", now, output=[url] if self.faults.output_format == "list" else url)

    def _remove_data(self, p: SimPrediction) -> None:
        if p.data_removed:
            return
        p.data_removed, p.output, p.input, p.logs = True, None, {}, ""
        for file_id in p.files:
            self.files.pop(file_id, None)

    def _send_webhook(self, p: SimPrediction, event: str) -> None:
        if not p.webhook or self.faults.webhook_drop:
            return
        if p.events_filter is not None and event not in p.events_filter:
            return
        self._webhooks.send(p.webhook, json.dumps(p.to_json(self.url)).encode(), p.id, event, self._generation)

    def _record_webhook(self, entry: dict) -> None:
        with self._lock:
            if entry.pop("generation") != self._generation:
                return  # sent before a reset: another test's, not this one's
            self.webhook_log.append(entry)
            self.stats["webhooks_sent"] += 1

    # --- for tests and benchmarks ------------------------------------------------------------------

    def snapshot(self) -> list[dict]:
        """Every prediction, oldest first, as the API shows it plus what it was created with
        (`sim_input`, kept after data removal, and `sim_webhook`, the webhook URL with its query)."""
        with self._lock:
            return [{**p.to_json(self.url), "sim_input": p.input, "sim_webhook": p.webhook}
                    for p in (self.predictions[i] for i in self._order if i in self.predictions)]

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

