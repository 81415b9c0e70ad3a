"""worker: GET|POST (cron ping or start's poke) -> starts step 1 of pending tasks and re-drives
claims a crashed run left behind."""

from shared import engine, storage
from shared.auth import require_cron
from shared.http import Request, endpoint
from shared.replicate_api import ReplicateAPI


@endpoint("GET", "POST", name="worker")
def handler(request: Request):
    require_cron(request)
    settings = request.settings
    return engine.run_worker(
        request.db, settings, ReplicateAPI(settings), storage.from_settings(settings),
        # A create that is started must be able to finish before the platform stops us.
        remaining=lambda: request.remaining_seconds(settings.worker_budget_s, reserve=settings.replicate_timeout_s),
    )
