"""start: POST {person_image, garments, prompt_hints?, user_id?} -> a pending task; wakes the worker."""

from shared import storage, tasks
from shared.http import Request, endpoint
from shared.poke import poke


@endpoint("POST", name="start")
def handler(request: Request):
    body = request.json()
    start_request = tasks.parse_start(body, request.user_id, request.settings)
    key = tasks.check_idempotency_key(request.header("Idempotency-Key"))
    result = tasks.start(request.db, request.settings, storage.from_settings(request.settings), start_request, key)
    if not result.get("replayed"):
        poke(request.settings.worker_url, request.settings.cron_secret)
    return result
