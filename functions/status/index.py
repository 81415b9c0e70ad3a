"""status: GET ?task_id=[&force_check=true] -> the task, its steps and what the user can do next."""

from shared import view
from shared.auth import optional_user
from shared.http import Request, endpoint
from shared.validation import check_task_id


@endpoint("GET", name="status")
def handler(request: Request):
    user = optional_user(request)
    task_id = check_task_id(request.query.get("task_id"))
    force_check = request.query.get("force_check", "").lower() in ("1", "true", "yes")
    return view.status(request.services, task_id, user, force_check)
