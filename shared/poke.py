"""Waking the worker right after start, without making the user wait for it.

The request goes out on a daemon thread and start waits at most POKE_WAIT_S for it to be sent.
If the platform freezes the instance before it is sent, or the worker is down, nothing is lost:
the cron ping picks the task up.
"""

from __future__ import annotations

import threading

from shared import log

POKE_WAIT_S = 0.2


def poke(url: str, cron_secret: str = "") -> None:
    if not url:
        return
    import http.client  # only when there is a worker to wake

    from shared import plain_http

    headers = {"X-Cron-Secret": cron_secret} if cron_secret else {}

    def send() -> None:
        try:
            plain_http.request("POST", url, json_body={"reason": "poke"}, headers=headers, timeout=10.0)
        except (OSError, ValueError, http.client.HTTPException) as error:
            log.event("poke_failed", error=type(error).__name__)

    thread = threading.Thread(target=send, name="poke-worker", daemon=True)
    thread.start()
    thread.join(POKE_WAIT_S)
