"""Waking the worker right after start, without making the user wait for it.

The request goes out on a daemon thread and start waits at most POKE_WAIT_S for it to be sent.
If the platform freezes the instance before it is sent, or the worker is down, nothing is lost:
the cron ping picks the task up.

It goes over the standard library's http.client (`shared.plain_http`), with a wall-clock deadline:
importing requests would cost a start's cold start about 100 ms, more than the rest of the
function, for one small POST.
"""

from __future__ import annotations

import json
import threading
import time

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

        from shared import plain_http

        try:
            plain_http.request("POST", url, deadline=time.monotonic() + POKE_TIMEOUT_S, headers=headers,
                               body=json.dumps({"reason": "poke"}).encode(), max_bytes=64 * 1024)
        except (OSError, ValueError, plain_http.TooLarge, http.client.HTTPException) as error:
            log.event("poke_failed", error=type(error).__name__)

    thread = threading.Thread(target=send, name="poke-worker", daemon=True)
    thread.start()
    thread.join(POKE_WAIT_S)
