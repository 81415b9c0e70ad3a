"""A look left waiting for its user is finished by the worker as "Finish here" would finish it, once
it has been idle for LOOK_IDLE_FINISH_S; a failed look left alone stays failed. Ages come from
rows with an old updated_at, never from sleeping."""

import pytest

from tests.conftest import run_sql

DAY = 86400


def idle_for(database_url, task_id, seconds):
    run_sql(database_url, "UPDATE replicate_tasks SET updated_at = LOCALTIMESTAMP - make_interval(secs => %s) "
                          "WHERE id = %s", (seconds, task_id))


def events_of(database_url, task_id):
    return run_sql(database_url, "SELECT type FROM look_events WHERE task_id = %s", (task_id,))


def test_a_look_waiting_longer_than_a_day_is_finished_with_its_last_good_image(fn, env, task_factory):
    task_id = task_factory("waiting_continue", intermediate_result="https://img/step-1.png")
    idle_for(env["DATABASE_URL"], task_id, DAY + 60)

    reply = fn.worker()

    assert reply.body["idle_finished"] == 1
    view = fn.status(task_id).body
    assert view["status"] == "completed"
    assert view["result_url"] == "https://img/step-1.png"
    assert view["current_step"] == 1 and view["actions"] == []
    assert events_of(env["DATABASE_URL"], task_id) == [("look.completed",)]


def test_a_look_waiting_less_than_the_limit_is_left_for_its_user(fn, env, task_factory):
    task_id = task_factory("waiting_continue")
    idle_for(env["DATABASE_URL"], task_id, DAY - 600)

    assert fn.worker().body["idle_finished"] == 0
    assert fn.status(task_id).body["status"] == "waiting_continue"
    assert events_of(env["DATABASE_URL"], task_id) == []


@pytest.mark.parametrize("status", ["failed", "completed", "pending"])
def test_only_waiting_looks_are_finished_for_idleness(fn, env, task_factory, status, sim):
    sim.set_faults(duration_s=60)
    # A failed look after a good step could be finished by hand; idleness alone does not finish it.
    extra = {"intermediate_result": "https://img/1.png"} if status == "failed" else {}
    task_id = task_factory(status, **extra)
    idle_for(env["DATABASE_URL"], task_id, 30 * DAY)

    assert fn.worker().body["idle_finished"] == 0
    after = fn.status(task_id).body["status"]
    assert after == ("processing" if status == "pending" else status)  # the worker starts a pending look


def test_the_limit_is_a_setting(fn, env, task_factory, monkeypatch):
    monkeypatch.setenv("LOOK_IDLE_FINISH_S", "600")
    old, fresh = task_factory("waiting_continue"), task_factory("waiting_continue")
    idle_for(env["DATABASE_URL"], old, 700)
    idle_for(env["DATABASE_URL"], fresh, 500)

    assert fn.worker().body["idle_finished"] == 1
    assert fn.status(old).body["status"] == "completed"
    assert fn.status(fresh).body["status"] == "waiting_continue"


def test_a_look_continued_meanwhile_is_not_finished(fn, env, task_factory, sim):
    """The statement re-checks the status it finishes from: a Continue pressed a moment before wins."""
    sim.set_faults(duration_s=60)
    task_id = task_factory("waiting_continue", garments='["https://img/a.png", "https://img/b.png"]')
    idle_for(env["DATABASE_URL"], task_id, DAY + 60)
    assert fn.act(task_id, "continue").status == 200

    assert fn.worker().body["idle_finished"] == 0
    assert fn.status(task_id).body["status"] == "processing"
