"""worker: GET|POST (cron ping or start's poke) -> starts step 1 of pending tasks and re-drives
claims a crashed run left behind."""

from shared import launching
from shared.auth import require_cron
from shared.http import Request, endpoint
from shared.replicate_api import CANCEL_RESERVE_S


@endpoint("GET", "POST", name="worker")
def handler(request: Request):
    require_cron(request)
    settings = request.settings
    return launching.run_worker(
        request.services,
        # Every call ends inside the budget; canceling an orphan has its own reserve after it.
        remaining=lambda: request.remaining_seconds(settings.worker_budget_s, reserve=CANCEL_RESERVE_S),
    )
