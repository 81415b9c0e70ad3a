"""continue: POST {task_id, action?, step?, attempt?} with action continue (default) | finish |
retry | cancel (applied only if the look is still at `step` and `attempt`, when given), or share |
unshare (the owner only: X-User-Id must name them)."""

from shared import actions, looks
from shared.auth import optional_user
from shared.http import Request, endpoint
from shared.states import SHARING
from shared.validation import check_action, check_position, check_task_id, require_user


@endpoint("POST", name="continue")
def handler(request: Request):
    user = optional_user(request)
    body = request.json()
    task_id = check_task_id(body.get("task_id"))
    action = check_action(body.get("action", body.get("user_choice")))
    if action in SHARING:
        return looks.share(request.services, task_id, require_user(user), action, request.header("Origin"))
    return actions.perform(request.services, task_id, user, action, check_position(body))
