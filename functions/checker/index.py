"""checker: GET (cron) reconciles in-flight predictions within a time budget;
POST is Replicate's webhook for one prediction."""

from shared import checking, webhooks
from shared.auth import require_cron
from shared.http import Request, endpoint


@endpoint("GET", "POST", name="checker")
def handler(request: Request):
    if (request.method == "POST" and not request.direct_invocation
            and webhooks.is_webhook(request.headers, request.json)):
        return webhooks.handle(request.services, request.headers, request.raw_body, request.json,
                               request.query)
    require_cron(request)
    return checking.run_checker(
        request.services,
        remaining=lambda: request.remaining_seconds(request.settings.checker_budget_s),
    )
