"""Guarantee 3 and the permanent failures: what Replicate does wrong, and what the task does."""

import json

import psycopg2
import pytest

from tests.conftest import drive, look, run_sql, wait_until


def let_the_back_off_pass(env):
    """A deferred launch waits until not_before (the database's clock): move it to now instead of sleeping."""
    run_sql(env["DATABASE_URL"], "UPDATE replicate_tasks SET not_before = NOW() WHERE not_before > NOW()")


def test_429_then_503_on_create_defer_the_step_and_the_next_pings_create_it_once(fn, sim, env):
    sim.set_faults(create_failures=[{"status": 429, "retry_after": 1}, {"status": 503, "retry_after": 1}])
    task_id = fn.start(look(1)).body["task_id"]
    first = fn.worker().body
    assert (first["started"], first["deferred"], first["throttled"]) == (0, 1, True)
    assert fn.status(task_id).body["status"] == "processing"
    assert fn.worker().body["started"] == 0  # Retry-After: 1 is honoured: no call before it passes
    assert sim.stats["create_calls"] == 1
    let_the_back_off_pass(env)
    assert fn.worker().body["deferred"] == 1
    let_the_back_off_pass(env)
    assert fn.worker().body["started"] == 1
    assert drive(fn, task_id, "completed")["error_message"] is None
    assert (sim.stats["create_calls"], sim.stats["predictions_created"]) == (3, 1)


def test_a_create_that_times_out_is_retried_later_and_never_fails_the_task(fn, sim, monkeypatch):
    monkeypatch.setenv("REPLICATE_TIMEOUT_S", "0.3")
    sim.set_faults(latency_s=1.0)
    task_id = fn.start(look(1)).body["task_id"]
    reply = fn.worker().body
    # Given up at our timeout (the simulator answers after 1 s) and handed back to the next ping.
    assert (reply["started"], reply["deferred"], reply["failed"]) == (0, 1, 0)
    sim.set_faults(latency_s=0.0)
    monkeypatch.setenv("CLAIM_STALE_S", "1.9")
    assert drive(fn, task_id, "completed", timeout=20)["status"] == "completed"
    # The timed-out call may still have created a prediction at Replicate: at most one extra.
    assert sim.stats["predictions_created"] <= 2


def test_40_percent_of_reads_failing_never_fails_a_task(fn, sim):
    sim.set_faults(read_failure_rate=0.4, read_failure_status=503)
    tasks = [fn.start(look(1), user=f"u{i}").body["task_id"] for i in range(6)]
    errors = 0

    def all_done():
        nonlocal errors
        fn.worker()
        errors += fn.checker().body["errors"]
        return all(fn.status(t, user=f"u{i}").body["status"] == "completed" for i, t in enumerate(tasks))

    wait_until(all_done, timeout=30, interval=0.05)
    assert errors > 0
    assert sim.stats["read_failures"] > 0


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_a_read_error_leaves_the_task_processing_and_the_checker_answers(fn, sim, status):
    task_id = fn.start(look(1)).body["task_id"]
    fn.worker()
    wait_until(sim.wait_idle)
    sim.set_faults(read_failure_rate=1.0, read_failure_status=status)
    reply = fn.checker().body
    assert (reply["checked"], reply["errors"]) == (0, 1)
    assert fn.status(task_id).body["status"] == "processing"


def test_a_throttled_read_is_never_retried_behind_our_back(fn, sim):
    for i in range(3):
        fn.start(look(1), user=f"u{i}")
    fn.worker()
    wait_until(sim.wait_idle)
    sim.set_faults(read_failure_rate=1.0, read_failure_status=429)
    reply = fn.checker().body
    # The replicate client's transport would retry each 429 up to 10 times, sleeping between tries.
    assert sim.stats["get_calls"] == 3 and reply["errors"] == 3


def test_a_failed_prediction_fails_the_step_with_the_models_reason(fn, sim):
    sim.set_faults(outcomes=["failed"], failure_error="No person detected in the image\nTraceback: ...")
    task_id = fn.start(look(2)).body["task_id"]
    view = drive(fn, task_id, "failed")
    assert view["error_message"] == ("The try-on model could not finish step 1: No person detected in the image. "
                                     "Press Retry to try again.")
    assert view["steps"][0]["status"] == "failed"


SECRETS_QUOTED = ("weights at https://hf-user:Pa55word@hf.co/m failed; token r8_LeakedToken123 "
                  "secret whsec_AAAABBBBCCCCDDDD")


def _assert_no_secret_in(env, task_id, view):
    text = json.dumps(view) + json.dumps(run_sql(
        env["DATABASE_URL"], "SELECT t.error_message, t.error_detail, s.error, s.error_detail FROM replicate_tasks t "
                             "JOIN replicate_task_steps s ON s.task_id = t.id WHERE t.id = %s", (task_id,)))
    for secret in ("Pa55word", "LeakedToken123", "AAAABBBBCCCCDDDD"):
        assert secret not in text
    assert "://***@hf.co" in text and "r8_***" in text and "whsec_***" in text


def test_secrets_a_model_quotes_in_its_error_are_neither_stored_nor_shown(fn, sim, env):
    sim.set_faults(outcomes=["failed"], failure_error=SECRETS_QUOTED)
    task_id = fn.start(look(1)).body["task_id"]
    _assert_no_secret_in(env, task_id, drive(fn, task_id, "failed"))


def test_secrets_replicate_quotes_when_it_refuses_a_step_are_neither_stored_nor_shown(fn, sim, env):
    sim.set_faults(create_failures=[{"status": 422, "detail": SECRETS_QUOTED}])
    task_id = fn.start(look(1)).body["task_id"]
    assert fn.worker().body["failed"] == 1
    _assert_no_secret_in(env, task_id, fn.status(task_id).body)


def test_an_aborted_prediction_fails_the_step_instead_of_crashing_the_checker(fn, sim):
    sim.set_faults(outcomes=["aborted"])
    task_id = fn.start(look(1)).body["task_id"]
    view = drive(fn, task_id, "failed")
    assert view["error_message"] == "Replicate could not start step 1 in time. Press Retry to try again."
    assert view["steps"][0]["status"] == "canceled"


def test_a_list_output_is_read_as_its_first_url_and_stored(fn, sim, env):
    sim.set_faults(output_format="list")
    task_id = fn.start(look(1)).body["task_id"]
    view = drive(fn, task_id, "completed")
    assert view["result_url"].startswith(env["PUBLIC_FILES_URL"] + "/looks/")
    assert "[" not in view["result_url"]


def test_a_prediction_replicate_no_longer_knows_fails_the_step(fn, sim):
    task_id = fn.start(look(1)).body["task_id"]
    fn.worker()
    sim.forget(fn.status(task_id).body["steps"][0]["prediction_id"])
    view = drive(fn, task_id, "failed")
    assert view["error_message"] == "Replicate no longer has the prediction for step 1. Press Retry to run it again."
    assert fn.act(task_id, "retry").status == 200


def test_an_output_removed_before_the_checker_ran_fails_the_step_with_a_reason(fn, sim):
    task_id = fn.start(look(1)).body["task_id"]
    fn.worker()
    wait_until(sim.wait_idle)
    sim.expire_outputs()
    view = drive(fn, task_id, "failed")
    assert view["error_message"] == "Replicate deleted the image of step 1 before it could be saved. Press Retry to run it again."


@pytest.mark.parametrize("status,message", [
    (401, "The try-on service could not sign in to Replicate. The site's operator needs to check the API token."),
    (402, "The try-on service has run out of Replicate credit. Please try again later."),
    (422, "Replicate did not accept this step's images: Input validation failed."),
])
def test_a_permanent_create_error_fails_the_step_with_a_sentence_a_person_understands(fn, sim, status, message):
    sim.set_faults(create_failures=[{"status": status, "detail": "Input validation failed" if status == 422 else None}])
    task_id = fn.start(look(1)).body["task_id"]
    assert fn.worker().body["failed"] == 1
    view = fn.status(task_id).body
    assert (view["status"], view["error_message"]) == ("failed", message)
    assert view["steps"][0]["status"] == "failed"


def test_one_broken_task_does_not_stop_the_worker_or_the_checker_for_the_others(fn, sim, env):
    good = [fn.start(look(1), user=f"u{i}").body["task_id"] for i in range(3)]
    broken = fn.start(look(1), user="u9").body["task_id"]
    with psycopg2.connect(env["DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute("UPDATE replicate_tasks SET garments = 'not json at all' WHERE id = %s", (broken,))
    conn.close()
    assert fn.worker().body["started"] == 3
    view = fn.status(broken, user="u9").body
    assert view["status"] == "failed"
    assert view["error_message"] == "Step 1 has no garment: this task's garment list cannot be read."
    for i, task_id in enumerate(good):
        assert drive(fn, task_id, "completed", user=f"u{i}")["status"] == "completed"


def test_a_step_past_its_deadline_is_canceled_at_replicate_and_fails_with_a_reason(fn, sim, monkeypatch):
    monkeypatch.setenv("STEP_TIMEOUT_S", "5")
    sim.set_faults(duration_s=60)
    task_id = fn.start(look(1)).body["task_id"]
    fn.worker()
    prediction_id = fn.status(task_id).body["steps"][0]["prediction_id"]
    assert sim.predictions[prediction_id].cancel_deadline is not None  # Cancel-After was sent
    view = drive(fn, task_id, "failed", timeout=15)
    assert view["error_message"] == "Step 1 took longer than 5 seconds and was stopped. Press Retry to run it again."
    assert sim.predictions[prediction_id].status in ("canceled", "aborted")
    sim.set_faults(duration_s=0.3)
    assert fn.act(task_id, "retry").status == 200
    assert drive(fn, task_id, "completed")["status"] == "completed"


def test_an_unexpected_error_in_one_check_is_logged_with_its_trace_and_the_others_go_on(fn, sim, monkeypatch, capsys):
    import json

    from shared import step_end

    tasks = [fn.start(look(1), user=f"u{i}").body["task_id"] for i in range(3)]
    fn.worker()
    wait_until(sim.wait_idle)
    real_apply_all = step_end.apply_all

    def apply_with_a_bug(db, checked):
        if any(task.id == tasks[0] for task, _ in checked):
            raise KeyError("a bug")
        return real_apply_all(db, checked)

    # The batch's write fails; the checker falls back to one write per prediction.
    monkeypatch.setattr(step_end, "apply_all", apply_with_a_bug)
    reply = fn.checker().body
    assert (reply["errors"], reply["completed"]) == (1, 2)
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [entry["size"] for entry in logged if entry["event"] == "check_batch_error"] == [3]
    [error] = [entry for entry in logged if entry["event"] == "check_error"]
    assert error["task_id"] == tasks[0] and "KeyError: 'a bug'" in error["trace"]


def test_a_database_timeout_on_the_batch_write_is_not_retried_one_by_one(fn, sim, monkeypatch):
    """One by one is for one bad row; a lock or statement timeout would make each write wait again."""
    from shared import step_end

    tasks = [fn.start(look(1), user=f"u{i}").body["task_id"] for i in range(3)]
    fn.worker()
    wait_until(sim.wait_idle)
    real_apply_all = step_end.apply_all
    calls = []

    def timed_out(db, checked):
        calls.append(len(checked))
        raise psycopg2.errors.LockNotAvailable("canceling statement due to lock timeout")

    monkeypatch.setattr(step_end, "apply_all", timed_out)
    reply = fn.checker()
    assert reply.status == 503 and reply.body["code"] == "database_unavailable"
    assert calls == [3]
    monkeypatch.setattr(step_end, "apply_all", real_apply_all)
    for i, task_id in enumerate(tasks):  # later pings apply them
        assert drive(fn, task_id, "completed", user=f"u{i}")["status"] == "completed"


@pytest.mark.parametrize("looks", [1, 3])
def test_a_bug_while_observing_one_prediction_is_logged_and_the_others_go_on(fn, sim, monkeypatch, capsys, looks):
    """Alone (observed in the checker's own thread) or among others (in the pool)."""
    import json

    from shared import checking

    tasks = [fn.start(look(1), user=f"u{i}").body["task_id"] for i in range(looks)]
    fn.worker()
    wait_until(sim.wait_idle)
    real_observe = checking.observe

    def observe_with_a_bug(settings, api, storage, task, prediction=None):
        if task.id == tasks[0]:
            raise KeyError("a bug")
        return real_observe(settings, api, storage, task, prediction)

    monkeypatch.setattr(checking, "observe", observe_with_a_bug)
    capsys.readouterr()
    reply = fn.checker().body
    assert (reply["errors"], reply["completed"]) == (1, looks - 1)
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    [error] = [entry for entry in logged if entry["event"] == "check_error"]
    assert (error["task_id"], error["function"]) == (tasks[0], "checker") and "KeyError: 'a bug'" in error["trace"]
    assert fn.status(tasks[0], user="u0").body["status"] == "processing"  # left for the next ping
