"""Every user action from every state: the transitions that exist, and 409 for the rest."""

import uuid

import pytest

from tests.conftest import drive, look, run_sql

ALL_ACTIONS = ("continue", "finish", "retry", "cancel")


def pending_task(fn, sim):
    return fn.start(look(2)).body["task_id"]


def processing_task(fn, sim):
    sim.set_faults(duration_s=30)
    task_id = fn.start(look(2)).body["task_id"]
    fn.worker()
    return task_id


def waiting_task(fn, sim):
    task_id = fn.start(look(2)).body["task_id"]
    drive(fn, task_id, "waiting_continue")
    return task_id


def completed_task(fn, sim):
    task_id = fn.start(look(1)).body["task_id"]
    drive(fn, task_id, "completed")
    return task_id


def failed_at_step_1(fn, sim):
    sim.set_faults(outcomes=["failed"])
    task_id = fn.start(look(2)).body["task_id"]
    drive(fn, task_id, "failed")
    return task_id


def failed_at_step_2(fn, sim):
    task_id = waiting_task(fn, sim)
    sim.set_faults(outcomes=["failed"])
    fn.act(task_id)
    drive(fn, task_id, "failed")
    return task_id


ALLOWED = {
    "pending": ("cancel",),
    "processing": ("cancel",),
    "waiting_continue": ("continue", "finish"),
    "completed": (),
    "failed_at_step_1": ("retry",),
    "failed_at_step_2": ("retry", "finish"),
}
MAKERS = {
    "pending": pending_task, "processing": processing_task, "waiting_continue": waiting_task,
    "completed": completed_task, "failed_at_step_1": failed_at_step_1, "failed_at_step_2": failed_at_step_2,
}


@pytest.mark.parametrize("state,action", [
    (state, action) for state in ALLOWED for action in ALL_ACTIONS if action not in ALLOWED[state]
])
def test_an_action_in_the_wrong_state_is_a_409_with_the_current_status_and_changes_nothing(fn, sim, state, action):
    task_id = MAKERS[state](fn, sim)
    before = fn.status(task_id).body
    predictions_before = len(sim.created_inputs())
    reply = fn.act(task_id, action)
    assert reply.status == 409
    assert reply.body["code"] == "wrong_state"
    assert reply.body["status"] == before["status"]
    words = {"pending": "queued", "processing": "running a step", "waiting_continue": "waiting for you to continue",
             "completed": "completed", "failed": "failed"}[before["status"]]
    assert reply.body["error"].startswith(f"This look is {words}. ")
    after = fn.status(task_id).body
    assert (after["status"], after["current_step"], after["steps"]) == (before["status"], before["current_step"], before["steps"])
    assert len(sim.created_inputs()) == predictions_before


@pytest.mark.parametrize("state", list(ALLOWED))
def test_the_status_view_lists_exactly_the_allowed_actions(fn, sim, state):
    task_id = MAKERS[state](fn, sim)
    assert tuple(fn.status(task_id).body["actions"]) == ALLOWED[state]


def test_continue_runs_the_next_step_from_the_image_the_user_saw(fn, sim):
    task_id = waiting_task(fn, sim)
    seen = fn.status(task_id).body["intermediate_result"]
    reply = fn.act(task_id, "continue")
    assert reply.status == 200
    assert (reply.body["status"], reply.body["current_step"]) == ("processing", 2)
    assert reply.body["steps"][1]["status"] == "processing"
    assert sim.created_inputs()[-1]["human_img"] == seen


def test_user_choice_is_accepted_as_an_alias_of_action(fn, sim):
    task_id = waiting_task(fn, sim)
    reply = fn.call("continue_", "POST", body={"task_id": task_id, "user_choice": "finish"},
                    headers={"X-User-Id": "user-1"})
    assert reply.status == 200 and reply.body["status"] == "completed"


def test_finish_from_waiting_continue_makes_the_last_image_the_result(fn, sim):
    task_id = waiting_task(fn, sim)
    image = fn.status(task_id).body["intermediate_result"]
    reply = fn.act(task_id, "finish")
    assert reply.status == 200
    assert reply.body["status"] == "completed"
    assert reply.body["result_url"] == image
    assert reply.body["current_step"] == 1
    assert len(sim.created_inputs()) == 1


def test_finish_after_a_failed_step_keeps_the_last_good_image(fn, sim):
    task_id = failed_at_step_2(fn, sim)
    view = fn.status(task_id).body
    good = view["steps"][0]["image_url"]
    reply = fn.act(task_id, "finish")
    assert reply.status == 200
    assert reply.body["status"] == "completed"
    assert reply.body["result_url"] == good
    assert reply.body["current_step"] == 1
    assert reply.body["error_message"] is None


def test_retry_reruns_the_failed_step_from_the_last_good_image_as_a_new_attempt(fn, sim):
    task_id = failed_at_step_2(fn, sim)
    failed = fn.status(task_id).body
    assert failed["error_message"].startswith("The try-on model could not finish step 2")
    good = failed["steps"][0]["image_url"]
    reply = fn.act(task_id, "retry")
    assert reply.status == 200
    assert (reply.body["status"], reply.body["current_step"]) == ("processing", 2)
    assert reply.body["steps"][1]["attempt"] == 2
    assert reply.body["error_message"] is None
    assert sim.created_inputs()[-1]["human_img"] == good
    final = drive(fn, task_id, "completed")
    assert final["steps"][1]["status"] == "succeeded"


def test_retry_of_a_failed_first_step_starts_from_the_person_photo(fn, sim):
    task_id = failed_at_step_1(fn, sim)
    first_input = sim.created_inputs()[0]["human_img"]
    assert fn.act(task_id, "retry").status == 200
    assert sim.created_inputs()[-1]["human_img"] == first_input
    assert drive(fn, task_id, "waiting_continue")["current_step"] == 1


def test_cancel_of_a_pending_task_fails_it_without_any_prediction(fn, sim):
    task_id = pending_task(fn, sim)
    reply = fn.act(task_id, "cancel")
    assert reply.status == 200
    assert reply.body["status"] == "failed"
    assert reply.body["error_message"] == "canceled by user"
    assert fn.worker().body["started"] == 0
    assert sim.created_inputs() == []


def test_cancel_of_a_running_step_cancels_the_prediction_at_replicate(fn, sim):
    task_id = processing_task(fn, sim)
    prediction_id = fn.status(task_id).body["steps"][0]["prediction_id"]
    reply = fn.act(task_id, "cancel")
    assert reply.status == 200
    assert (reply.body["status"], reply.body["error_message"]) == ("failed", "canceled by user")
    assert reply.body["steps"][0]["status"] == "canceled"
    assert sim.predictions[prediction_id].status == "canceled"
    assert fn.checker().body["checked"] == 0


def test_a_canceled_task_can_be_retried(fn, sim):
    task_id = processing_task(fn, sim)
    fn.act(task_id, "cancel")
    sim.set_faults(duration_s=0.3)
    assert fn.act(task_id, "retry").status == 200
    assert drive(fn, task_id, "waiting_continue")["steps"][0]["attempt"] == 2


def test_another_users_task_is_a_404_exactly_like_a_missing_one(fn, sim):
    task_id = waiting_task(fn, sim)
    missing = str(uuid.uuid4())
    for call in (lambda t: fn.status(t, user="intruder"), lambda t: fn.act(t, "finish", user="intruder")):
        theirs, nobodys = call(task_id), call(missing)
        assert theirs.status == nobodys.status == 404
        assert theirs.body == nobodys.body == {"error": "Task not found", "code": "task_not_found"}
    assert fn.status(task_id).body["status"] == "waiting_continue"


def test_without_a_user_header_status_works_unless_require_user_id_is_set(fn, sim, monkeypatch):
    task_id = pending_task(fn, sim)
    assert fn.status(task_id, user=None).status == 200
    monkeypatch.setenv("REQUIRE_USER_ID", "1")
    for reply in (fn.status(task_id, user=None), fn.act(task_id, "cancel", user=None)):
        assert reply.status == 401
        assert reply.body == {"error": "User ID required", "code": "user_required"}
    assert fn.status(task_id).body["status"] == "pending"


def test_with_require_user_id_start_takes_the_user_from_the_header_only(fn, sim, monkeypatch, database_url):
    monkeypatch.setenv("REQUIRE_USER_ID", "1")
    reply = fn.start({**look(), "user_id": "victim"}, user=None)
    assert (reply.status, reply.body["code"]) == (401, "user_required")
    started = fn.start({**look(), "user_id": "victim"}, user="anna")
    assert started.status == 200
    assert run_sql(database_url, "SELECT user_id FROM replicate_tasks") == [("anna",)]
    monkeypatch.delenv("REQUIRE_USER_ID")
    assert fn.start({**look(), "user_id": "bea"}, user=None).status == 200  # as the original: the body names the user


def test_status_of_a_step_shows_its_garment_and_timestamps(fn, sim):
    task_id = fn.start({"person_image": look()["person_image"],
                        "garments": [{"image": look()["garments"][0], "description": "red linen shirt",
                                      "category": "upper_body"}]}).body["task_id"]
    view = drive(fn, task_id, "completed")
    step = view["steps"][0]
    assert step["garment"]["description"] == "red linen shirt"
    assert step["garment"]["image"].startswith("http")
    assert step["started_at"] and step["completed_at"] and step["prediction_id"]
    assert view["created_at"].endswith("Z") and view["updated_at"].endswith("Z")


# --- a button pressed on the look as it was (a request sent again after its answer was lost) --------

def press(fn, task_id, action, **seen):
    return fn.call("continue_", "POST", body={"task_id": task_id, "action": action, **seen},
                   headers={"X-User-Id": "user-1"})


def test_a_continue_sent_again_after_the_next_step_is_ready_changes_nothing(fn, sim):
    task_id = fn.start(look(3)).body["task_id"]
    drive(fn, task_id, "waiting_continue")
    assert press(fn, task_id, "continue", step=1, attempt=1).status == 200
    drive(fn, task_id, "waiting_continue")  # step 2 is ready: the lost request's twin arrives now
    creates = sim.stats["create_calls"]
    again = press(fn, task_id, "continue", step=1, attempt=1)
    assert again.status == 409 and again.body["code"] == "wrong_state" and again.body["status"] == "waiting_continue"
    assert again.body["error"] == ("This look has moved on since the button was pressed: it is now at step 2 "
                                   "(attempt 1) and waiting for you to continue. Nothing was changed.")
    view = fn.status(task_id).body
    assert (view["status"], view["current_step"]) == ("waiting_continue", 2)
    assert sim.stats["create_calls"] == creates
    assert press(fn, task_id, "continue", step=2, attempt=1).status == 200  # as seen now: it goes on


def test_a_retry_sent_again_after_the_retried_step_failed_too_changes_nothing(fn, sim):
    sim.set_faults(outcomes=["failed", "failed"])
    task_id = fn.start(look(2)).body["task_id"]
    drive(fn, task_id, "failed")
    assert press(fn, task_id, "retry", step=1, attempt=1).status == 200
    drive(fn, task_id, "failed")  # attempt 2 failed as well
    creates = sim.stats["create_calls"]
    assert press(fn, task_id, "retry", step=1, attempt=1).status == 409
    assert sim.stats["create_calls"] == creates
    assert fn.status(task_id).body["steps"][0]["attempt"] == 2


def test_finish_pressed_on_an_earlier_step_does_not_finish_a_later_one(fn, sim):
    task_id = fn.start(look(3)).body["task_id"]
    drive(fn, task_id, "waiting_continue")
    fn.act(task_id, "continue")
    drive(fn, task_id, "waiting_continue")
    assert press(fn, task_id, "finish", step=1).status == 409
    assert fn.status(task_id).body["status"] == "waiting_continue"


@pytest.mark.parametrize("seen", [{"step": "1"}, {"step": -1}, {"attempt": True}, {"attempt": 1.5},
                                  {"step": 10 ** 9}])
def test_a_step_or_attempt_that_is_not_a_small_whole_number_is_a_400(fn, sim, seen):
    task_id = fn.start(look(2)).body["task_id"]
    drive(fn, task_id, "waiting_continue")
    reply = press(fn, task_id, "continue", **seen)
    assert reply.status == 400 and reply.body["code"] == "invalid_field"
    assert fn.status(task_id).body["current_step"] == 1


def test_cancel_pressed_on_a_queued_look_cancels_it_after_the_worker_took_it(fn, sim):
    sim.set_faults(duration_s=30)
    task_id = fn.start(look(2)).body["task_id"]
    seen = fn.status(task_id).body
    assert (seen["status"], seen["current_step"]) == ("pending", 0)
    fn.worker()  # step 0 becomes step 1 between the page's last poll and the press
    reply = press(fn, task_id, "cancel", step=0)
    assert reply.status == 200 and reply.body["status"] == "failed"
    assert reply.body["error_code"] == "canceled_by_user"
