"""Who may call what: the cron secret for worker and checker, the user for status and continue."""

from __future__ import annotations

from shared.errors import Unauthorized
from shared.http import Request


def require_cron(request: Request) -> None:
    """With CRON_SECRET set, worker and checker need it (header X-Cron-Secret or ?secret=).
    A direct invocation by the platform (a timer trigger, a scheduler) carries no HTTP request
    and needs rights on the function itself, so it passes."""
    secret = request.settings.cron_secret
    if not secret or request.direct_invocation:
        return
    import hmac  # here, not at the top: it loads OpenSSL's hashes, which a status poll never needs

    given = request.header("X-Cron-Secret") or request.query.get("secret") or ""
    # surrogatepass: an event is JSON, which may carry a lone surrogate; it is a wrong secret, not a 500.
    if not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), secret.encode()):
        raise Unauthorized("A valid cron secret is required (X-Cron-Secret header or ?secret=).",
                           code="bad_cron_secret")


def optional_user(request: Request) -> str | None:
    """The user named by X-User-Id; with REQUIRE_USER_ID=1 there must be one."""
    user = request.user_id
    if user is None and request.settings.require_user_id:
        raise Unauthorized("User ID required", code="user_required")
    return user
