"""Guarantee 2: a crash between any two steps leaves nothing stuck; the next ping recovers it."""

import secrets

from shared import queries
from shared.db import Database
from tests.conftest import drive, look, run_sql


def make_claims_stale(env):
    """Ages every claim past CLAIM_STALE_S instead of waiting for it: claims are timed by the
    database's clock, so moving claimed_at back is the same as the time passing."""
    run_sql(env["DATABASE_URL"],
            "UPDATE replicate_tasks SET claimed_at = claimed_at - INTERVAL '1 hour' WHERE claimed_at IS NOT NULL")


def claim_like_a_run_that_then_died(env):
    """Takes the claim exactly as the worker does, then 'crashes' (never creates or records)."""
    return Database(env["DATABASE_URL"]).all(
        queries.CLAIM_TO_LAUNCH, {"stale_s": 90, "limit": 10, "token": secrets.token_hex(16)})


def test_a_claim_left_by_a_crashed_worker_is_re_driven_after_the_stale_interval(fn, sim, env, monkeypatch):
    task_id = fn.start(look(1)).body["task_id"]
    assert [t["id"] for t in claim_like_a_run_that_then_died(env)] == [task_id]
    assert fn.worker().body["started"] == 0  # a fresh claim is someone else's work in progress
    make_claims_stale(env)
    assert fn.worker().body["started"] == 1
    assert drive(fn, task_id, "completed")["status"] == "completed"
    assert sim.stats["predictions_created"] == 1


def test_a_crash_after_create_costs_at_most_one_extra_prediction(fn, sim, env, monkeypatch):
    from shared import launching
    from shared.services import Services
    from shared.settings import load
    from shared.task import Task

    task_id = fn.start(look(1)).body["task_id"]
    [claimed] = claim_like_a_run_that_then_died(env)
    services = Services(load())
    # The dying run got as far as creating the prediction, then died before recording it.
    launching.create_prediction(services.settings, services.replicate, services.storage, Task.from_row(claimed))
    make_claims_stale(env)
    assert drive(fn, task_id, "completed")["status"] == "completed"
    assert sim.stats["predictions_created"] == 2


def test_a_step_launched_by_a_run_whose_claim_was_taken_over_is_canceled_not_recorded(fn, sim, env, monkeypatch):
    from shared import launching
    from shared.services import Services
    from shared.settings import load
    from shared.task import Task

    task_id = fn.start(look(1)).body["task_id"]
    [slow_claim] = claim_like_a_run_that_then_died(env)
    make_claims_stale(env)
    assert fn.worker().body["started"] == 1  # the re-drive
    # The slow run had sent its create before the take-over; it wakes up and records it: its
    # claim token no longer holds.
    services, slow_task = Services(load()), Task.from_row(slow_claim)
    made = launching.create_prediction(services.settings, services.replicate, services.storage, slow_task)
    outcome = launching.record_launch(services.db, services.replicate, slow_task, made)
    assert outcome.outcome == "lost"
    assert sim.predictions[outcome.prediction_id].status == "canceled"
    view = drive(fn, task_id, "completed")
    assert view["steps"][0]["prediction_id"] != outcome.prediction_id


def test_a_checker_that_died_mid_run_leaves_the_task_for_the_next_ping(fn, sim, env):
    task_id = fn.start(look(1)).body["task_id"]
    fn.worker()
    # The dying checker claimed the task for checking and then vanished.
    database = Database(env["DATABASE_URL"])
    database.all(queries.CLAIM_TO_CHECK, {"recheck_s": 0, "limit": 10, "run_started": database.scalar(queries.DB_NOW)})
    assert drive(fn, task_id, "completed")["status"] == "completed"


def test_a_continue_whose_launch_crashed_is_started_by_the_worker(fn, sim, env, monkeypatch):
    task_id = fn.start(look(2)).body["task_id"]
    drive(fn, task_id, "waiting_continue")
    Database(env["DATABASE_URL"]).one(queries.CLAIM_CONTINUE, {"id": task_id, "token": "died", "step": None,
                                                               "attempt": None})
    make_claims_stale(env)
    assert drive(fn, task_id, "completed")["status"] == "completed"
    assert sim.stats["predictions_created"] == 2


def test_a_run_whose_claim_was_taken_over_before_its_create_sends_nothing(fn, sim, env):
    from shared import launching
    from shared.services import Services
    from shared.settings import load
    from shared.task import Task

    fn.start(look(1))
    [slow_claim] = claim_like_a_run_that_then_died(env)
    make_claims_stale(env)
    assert fn.worker().body["started"] == 1
    outcome = launching.launch(Services(load()), Task.from_row(slow_claim))
    assert (outcome.outcome, outcome.prediction_id) == ("lost", None)
    assert sim.stats["create_calls"] == 1
