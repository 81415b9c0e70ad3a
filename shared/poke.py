"""Waking the worker right after start, without making the user wait for it.

The request goes out on a daemon thread and start waits at most POKE_WAIT_S for it to be sent.
If the platform freezes the instance before it is sent, or the worker is down, nothing is lost:
the cron ping picks the task up.

It goes over the standard library's http.client: importing requests would cost a start's cold
start about 100 ms, more than the rest of the function, for one small POST.
"""

from __future__ import annotations

import json
import threading
from urllib.parse import urlsplit

from shared import log

POKE_WAIT_S = 0.2
POKE_TIMEOUT_S = 10.0


def poke(url: str, cron_secret: str = "") -> None:
    if not url:
        return
    headers = {"Content-Type": "application/json"}
    if cron_secret:
        headers["X-Cron-Secret"] = cron_secret

    def send() -> None:
        import http.client  # only when there is a worker to wake

        try:
            _post(url, json.dumps({"reason": "poke"}).encode(), headers)
        except (OSError, ValueError, http.client.HTTPException) as error:
            log.event("poke_failed", error=type(error).__name__)

    thread = threading.Thread(target=send, name="poke-worker", daemon=True)
    thread.start()
    thread.join(POKE_WAIT_S)


def _post(url: str, body: bytes, headers: dict[str, str]) -> None:
    import http.client

    parts = urlsplit(url)
    if parts.scheme == "https" and parts.netloc:
        import ssl

        import certifi  # the CA bundle requests would have used

        context = ssl.create_default_context(cafile=certifi.where())
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.netloc, timeout=POKE_TIMEOUT_S, context=context)
    elif parts.scheme == "http" and parts.netloc:
        conn = http.client.HTTPConnection(parts.netloc, timeout=POKE_TIMEOUT_S)
    else:
        raise ValueError("WORKER_URL is not an http(s) URL")
    try:
        conn.request("POST", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), body, headers)
        conn.getresponse().read()
    finally:
        conn.close()
