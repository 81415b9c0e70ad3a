from tests.conftest import drive, look


def test_a_three_garment_look_runs_step_by_step_to_completed(fn, sim):
    started = fn.start(look(3))
    assert started.status == 200, started
    task_id = started.body["task_id"]
    view = drive(fn, task_id, "waiting_continue")
    assert view["current_step"] == 1
    assert fn.act(task_id).status == 200
    drive(fn, task_id, "waiting_continue")
    assert fn.act(task_id).status == 200
    final = drive(fn, task_id, "completed")
    assert final["current_step"] == 3 and final["result_url"]
