"""status: GET ?task_id=[&force_check=true] -> the task, its steps and what the user can do next;
?mine=true[&cursor=] -> the caller's looks, newest first; ?share=<token> -> a shared look, read-only."""

from shared import looks, view
from shared.auth import optional_user
from shared.http import Request, endpoint
from shared.validation import check_task_id, require_user


@endpoint("GET", name="status")
def handler(request: Request):
    query = request.query
    if "share" in query:
        return looks.shared_view(request.services, query["share"])
    if query.get("mine", "").lower() in ("1", "true", "yes"):
        return looks.mine(request.services, require_user(request.user_id), query.get("cursor") or None)
    user = optional_user(request)
    task_id = check_task_id(query.get("task_id"))
    force_check = query.get("force_check", "").lower() in ("1", "true", "yes")
    return view.status(request.services, task_id, user, force_check)
