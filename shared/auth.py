"""Who may call what: the cron secret for worker and checker, the user for status and continue."""

from __future__ import annotations

from typing import Any

from shared import log
from shared.errors import Unauthorized
from shared.http import Request


def require_cron(request: Request) -> None:
    """With CRON_SECRET set, worker and checker need it: over HTTP as the X-Cron-Secret header or
    ?secret=; invoked directly (a timer trigger, a scheduler), in the event itself (`cron_secret_in`)."""
    secret = request.settings.cron_secret
    if not secret:
        return
    import hmac  # here, not at the top: it loads OpenSSL's hashes, which a status poll never needs

    if request.direct_invocation:
        given = cron_secret_in(request.event)
    else:
        given = request.header("X-Cron-Secret") or request.query.get("secret") or ""
    # surrogatepass: an event is JSON, which may carry a lone surrogate; it is a wrong secret, not a 500.
    if not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), secret.encode()):
        if request.direct_invocation:
            # Said apart for the on-call: a timer or schedule made before direct invocations needed
            # the secret gets a 401 the platform does not count as a failure, and the cron stops.
            log.event("cron_refused", direct_invocation=True, hint="give the trigger the secret: "
                      "a Yandex timer's payload, or {\"secret\": ...} as a schedule's input (docs/deploy.md)")
        raise Unauthorized("A valid cron secret is required: the X-Cron-Secret header or ?secret=; a timer "
                           "trigger sends it as its payload, a scheduler as {\"secret\": ...}.",
                           code="bad_cron_secret")


def cron_secret_in(event: dict[str, Any]) -> str:
    """The secret a direct invocation carries. An event without an HTTP method proves nothing about
    who sent it: Yandex hands a public function's request body over as the event when it is called
    with ?integration=raw. A Yandex timer trigger carries it as its payload (`--payload`);
    EventBridge Scheduler and others as the input {"secret": "..."}."""
    given = event.get("secret")
    messages = event.get("messages")
    if given is None and isinstance(messages, list) and messages and isinstance(messages[0], dict):
        details = messages[0].get("details")
        given = details.get("payload") if isinstance(details, dict) else None
    return given if isinstance(given, str) else ""


def optional_user(request: Request) -> str | None:
    """The user named by X-User-Id; with REQUIRE_USER_ID=1 there must be one."""
    user = request.user_id
    if user is None and request.settings.require_user_id:
        raise Unauthorized("User ID required", code="user_required")
    return user
