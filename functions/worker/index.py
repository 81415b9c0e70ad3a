"""worker: GET|POST (cron ping or start's poke) -> starts step 1 of pending tasks and re-drives
claims a crashed run left behind."""

from shared import launching
from shared.auth import require_cron
from shared.http import Request, endpoint


@endpoint("GET", "POST", name="worker")
def handler(request: Request):
    require_cron(request)
    settings = request.settings
    return launching.run_worker(
        request.services,
        # A create that is started must be able to finish before the platform stops us.
        remaining=lambda: request.remaining_seconds(settings.worker_budget_s, reserve=settings.replicate_timeout_s),
    )
