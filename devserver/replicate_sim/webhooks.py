"""Webhooks signed the Standard Webhooks way (`webhook-id`, `webhook-timestamp`,
`webhook-signature`), retried a few times with the same `webhook-id`, as Replicate sends them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

RETRY_PAUSES_S = (0.5, 1.0, 2.0, None)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


class WebhookSender:
    """Delivers in the background; `secret()` is read at each attempt, `record(entry)` is called
    after each attempt."""

    def __init__(self, secret, record, stopped: threading.Event):
        self.secret, self.record, self.stopped = secret, record, stopped
        self.pool = ThreadPoolExecutor(8, thread_name_prefix="sim-webhook")

    def send(self, url: str, body: bytes, prediction_id: str, event: str, generation: int = 0) -> None:
        message_id = "msg_" + secrets.token_hex(12)
        self.pool.submit(self._deliver, url, body, message_id, prediction_id, event, generation)

    def _deliver(self, url: str, body: bytes, message_id: str, prediction_id: str, event: str,
                 generation: int) -> None:
        for attempt, pause in enumerate(RETRY_PAUSES_S, start=1):
            timestamp = int(time.time())
            request = urllib.request.Request(url, data=body, method="POST", headers={
                "Content-Type": "application/json",
                "webhook-id": message_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(self.secret(), message_id, timestamp, body),
            })
            status = None
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    status = response.status
            except urllib.error.HTTPError as error:
                status = error.code
            except OSError:
                status = None
            self.record({"prediction_id": prediction_id, "event": event, "attempt": attempt,
                         "status": status, "webhook_id": message_id, "at": time.time(), "generation": generation})
            if status is not None and 200 <= status < 300:
                return
            if pause is None or self.stopped.is_set():
                return
            time.sleep(pause)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
