"""continue: POST {task_id, action?} with action continue (default) | finish | retry | cancel."""

from shared import actions, tasks
from shared.auth import optional_user
from shared.http import Request, endpoint


@endpoint("POST", name="continue")
def handler(request: Request):
    user = optional_user(request)
    body = request.json()
    task_id = tasks.check_task_id(body.get("task_id"))
    action = tasks.check_action(body.get("action", body.get("user_choice")))
    return actions.perform(request, task_id, user, action)
