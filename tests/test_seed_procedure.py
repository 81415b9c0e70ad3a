"""The seed document's test procedure, end to end: three garments, the checker, Continue twice."""

import psycopg2

from tests.conftest import GARMENTS, PERSON, drive, look, wait_until


def test_seed_procedure_three_garments_continue_continue_completed(fn, sim):
    started = fn.start(look(3))
    assert started.status == 200
    assert started.body["status"] == "pending"
    assert started.body["current_step"] == 0
    assert started.body["total_steps"] == 3
    assert started.body["estimated_time_seconds"] > 0
    task_id = started.body["task_id"]

    assert fn.worker().body["started"] == 1
    wait_until(sim.wait_idle)
    checked = fn.checker().body
    assert checked["message"] == "Checked 1 predictions"
    assert checked["checked"] == 1 and checked["ready"] == 1

    view = fn.status(task_id).body
    assert view["status"] == "waiting_continue"
    assert view["current_step"] == 1
    assert view["intermediate_result"].startswith("http")
    assert view["actions"] == ["continue", "finish"]

    for expected_step in (2, 3):
        reply = fn.act(task_id)  # the default action is continue
        assert reply.status == 200
        assert reply.body["status"] == "processing"
        assert reply.body["current_step"] == expected_step
        view = drive(fn, task_id, ("waiting_continue", "completed"))

    assert view["status"] == "completed"
    assert view["current_step"] == 3
    assert view["result_url"] == view["intermediate_result"]
    assert [s["status"] for s in view["steps"]] == ["succeeded"] * 3


def test_each_step_dresses_the_previous_steps_image_in_the_next_garment(fn, sim):
    task_id = fn.start(look(3)).body["task_id"]
    for _ in range(2):
        drive(fn, task_id, "waiting_continue")
        fn.act(task_id)
    final = drive(fn, task_id, "completed")

    inputs = sim.created_inputs()
    assert len(inputs) == 3
    step_images = [step["image_url"] for step in final["steps"]]
    stored_person = inputs[0]["human_img"]
    assert stored_person.startswith("http") and "/person-" in stored_person
    assert inputs[1]["human_img"] == step_images[0]
    assert inputs[2]["human_img"] == step_images[1]
    for number, model_input in enumerate(inputs, start=1):
        assert f"/garment-{number}-" in model_input["garm_img"]
        assert model_input["category"] == "upper_body"


def test_stored_inputs_are_the_images_the_user_sent(fn, sim, env):
    import base64
    from pathlib import Path

    task_id = fn.start(look(1)).body["task_id"]
    drive(fn, task_id, "completed")
    model_input = sim.created_inputs()[0]
    folder = Path(env["LOCAL_STORAGE_DIR"])
    person_key = model_input["human_img"][len(env["PUBLIC_FILES_URL"]) + 1:]
    garment_key = model_input["garm_img"][len(env["PUBLIC_FILES_URL"]) + 1:]
    assert (folder / person_key).read_bytes() == base64.b64decode(PERSON.split(",", 1)[1])
    assert (folder / garment_key).read_bytes() == base64.b64decode(GARMENTS[0].split(",", 1)[1])


def test_the_seeds_monitoring_queries_run_unchanged(fn, sim, env):
    waiting = fn.start(look(2)).body["task_id"]
    drive(fn, waiting, "waiting_continue")
    fn.start(look(1), user="user-2")
    conn = psycopg2.connect(env["DATABASE_URL"])
    try:
        with conn.cursor() as cur:
            cur.execute("""
SELECT id, status, current_step, total_steps, 
       ROUND(EXTRACT(EPOCH FROM (NOW() - updated_at))) as sec_ago
FROM replicate_tasks 
WHERE status IN ('pending', 'processing', 'waiting_continue')
ORDER BY created_at DESC;
""")
            active = cur.fetchall()
            cur.execute("""
SELECT id, user_id, current_step, total_steps
FROM replicate_tasks
WHERE status = 'waiting_continue';
""")
            waiting_rows = cur.fetchall()
    finally:
        conn.close()
    assert [row[1] for row in active] == ["pending", "waiting_continue"]
    assert all(row[4] is not None and 0 <= row[4] < 60 for row in active)
    assert waiting_rows == [(waiting, "user-1", 1, 2)]
