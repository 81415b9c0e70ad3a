"""continue: POST {task_id, action?} with action continue (default) | finish | retry | cancel."""

from shared import actions
from shared.auth import optional_user
from shared.http import Request, endpoint
from shared.validation import check_action, check_task_id


@endpoint("POST", name="continue")
def handler(request: Request):
    user = optional_user(request)
    body = request.json()
    task_id = check_task_id(body.get("task_id"))
    action = check_action(body.get("action", body.get("user_choice")))
    return actions.perform(request.services, task_id, user, action)
