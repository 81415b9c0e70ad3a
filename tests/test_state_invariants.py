"""Migration 0004: the database refuses rows no code path writes, and accepts every row the code
(and the original functions) write."""

import psycopg2
import pytest

from shared.states import SHARING, TRANSITIONS, Action, Status, allowed_actions
from tests.conftest import drive, look, run_sql


def test_every_state_the_factory_makes_is_accepted_and_shown(fn, task_factory):
    for status in Status:
        task_id = task_factory(status.value)
        assert fn.status(task_id).body["status"] == status.value


VIOLATIONS = {
    "a claim on a waiting task": ("waiting_continue", "claim_token = 'x', claimed_at = NOW()"),
    "a claim token without its time": ("processing", "claim_token = 'x'"),
    "a claim time without its token": ("processing", "claimed_at = NOW()"),
    "a step start without a prediction": ("processing", "prediction_id = NULL"),
    "a result on a failed task": ("failed", "result_url = 'https://img/r.png'"),
    "a result while waiting": ("waiting_continue", "result_url = 'https://img/r.png'"),
    "waiting without an image": ("waiting_continue", "intermediate_result = NULL"),
    "a pending task with a prediction": ("pending", "prediction_id = 'p-1'"),
    "attempt zero": ("failed", "attempt = 0"),
    "a negative step": ("pending", "current_step = -1"),
}


@pytest.mark.parametrize("status, change", VIOLATIONS.values(), ids=VIOLATIONS.keys())
def test_an_update_that_breaks_an_invariant_is_rejected(database_url, task_factory, status, change):
    task_id = task_factory(status)
    with pytest.raises(psycopg2.errors.CheckViolation):
        run_sql(database_url, f"UPDATE replicate_tasks SET {change} WHERE id = %s", (task_id,))
    assert run_sql(database_url, "SELECT status FROM replicate_tasks WHERE id = %s", (task_id,)) == [(status,)]


def test_a_succeeded_step_without_its_image_is_rejected(database_url, task_factory):
    task_id = task_factory("processing")
    with pytest.raises(psycopg2.errors.CheckViolation):
        run_sql(database_url, "INSERT INTO replicate_task_steps (task_id, step, attempt, status) "
                              "VALUES (%s, 1, 1, 'succeeded')", (task_id,))


def test_every_transition_the_functions_make_passes_the_invariants(fn, sim):
    """Continue, finish after a failure, retry and cancel: each ends in a state the table allows."""
    sim.set_faults(outcomes=["succeeded", "failed", "succeeded", "succeeded"])
    task_id = fn.start(look(3)).body["task_id"]
    drive(fn, task_id, "waiting_continue")
    assert fn.act(task_id, "continue").status == 200
    drive(fn, task_id, "failed")
    assert fn.act(task_id, "retry").status == 200
    drive(fn, task_id, "waiting_continue")
    assert fn.act(task_id, "finish").body["status"] == "completed"
    canceled = fn.start(look(1), user="user-2").body["task_id"]
    assert fn.act(canceled, "cancel", user="user-2").body["status"] == "failed"


def test_the_actions_the_status_shows_are_the_transitions_table():
    assert allowed_actions(Status.WAITING_CONTINUE, has_image=True) == [Action.CONTINUE, Action.FINISH]
    assert allowed_actions(Status.FAILED, has_image=True) == [Action.RETRY, Action.FINISH]
    assert allowed_actions(Status.FAILED, has_image=False) == [Action.RETRY]
    assert allowed_actions(Status.COMPLETED, has_image=True) == []
    assert {move.source for move in TRANSITIONS if move.action is Action.CANCEL} == {Status.PENDING, Status.PROCESSING}


@pytest.mark.parametrize("status", list(Status))
def test_an_action_the_status_does_not_offer_is_a_409_with_the_current_status(fn, task_factory, status):
    task_id = task_factory(status.value)
    offered = fn.status(task_id).body["actions"]
    # share and unshare are not moves of the look: every state allows them to its owner.
    refused = [action for action in Action if action not in SHARING and action.value not in offered]
    assert refused  # every state refuses something
    for action in refused:
        reply = fn.act(task_id, action.value)
        assert (reply.status, reply.body["code"], reply.body["status"]) == (409, "wrong_state", status.value)
