"""checker: GET (cron) reconciles in-flight predictions within a time budget;
POST is Replicate's webhook for one prediction."""

from shared import engine, storage, webhooks
from shared.auth import require_cron
from shared.http import Request, endpoint
from shared.replicate_api import ReplicateAPI


@endpoint("GET", "POST", name="checker")
def handler(request: Request):
    settings = request.settings
    api, store = ReplicateAPI(settings), storage.from_settings(settings)
    if request.method == "POST" and not request.direct_invocation and webhooks.is_webhook(request):
        return webhooks.handle(request, api, store)
    require_cron(request)
    return engine.run_checker(
        request.db, settings, api, store,
        remaining=lambda: request.remaining_seconds(settings.checker_budget_s),
    )
