"""start: POST {person_image, garments, prompt_hints?, user_id?} -> a pending task; wakes the worker."""

from shared import starting
from shared.http import Request, endpoint
from shared.poke import poke
from shared.start_request import parse_start
from shared.validation import check_idempotency_key


@endpoint("POST", name="start")
def handler(request: Request):
    settings = request.settings
    start_request = parse_start(request.json(), request.user_id, settings)
    key = check_idempotency_key(request.header("Idempotency-Key"))
    result = starting.start(request.services, start_request, key,
                            remaining=lambda: request.remaining_seconds(starting.BUDGET_S))
    if not result.get("replayed"):
        poke(settings.worker_url, settings.cron_secret)
    return result
