"""`python -m monitor spend`: spend per day, user, look and outcome on a seeded database."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import psycopg2
import pytest

from monitor.__main__ import dollars, span_seconds, spend
from shared import costs
from shared.db import Database
from tests.conftest import look, run_sql, wait_until

ROOT = Path(__file__).resolve().parent.parent
_ids = itertools.count(1)


def ended(database_url, task_id, step, attempt, status, cost, hours_ago):
    run_sql(database_url, """
        INSERT INTO replicate_task_steps (task_id, step, attempt, status, prediction_id, image_url, cost_usd,
                                          started_at, completed_at)
        VALUES (%(task)s, %(step)s, %(attempt)s, %(status)s, %(prediction)s, %(image)s, %(cost)s,
                NOW() - make_interval(secs => %(ago)s * 3600) - INTERVAL '20 seconds',
                NOW() - make_interval(secs => %(ago)s * 3600))
    """, {"task": task_id, "step": step, "attempt": attempt, "status": status, "prediction": f"p{next(_ids)}",
          "image": "https://img/s.png" if status == "succeeded" else None, "cost": cost, "ago": hours_ago})


@pytest.fixture
def seeded(database_url, task_factory):
    anna = task_factory("completed", user_id="anna")
    ended(database_url, anna, 1, 1, "failed", "0.010", 1)     # money spent on a failure, then retried
    ended(database_url, anna, 1, 2, "succeeded", "0.020", 1)
    ended(database_url, anna, 2, 1, "succeeded", "0.030", 2)
    bob = task_factory("failed", user_id="bob")
    ended(database_url, bob, 1, 1, "canceled", "0.005", 30)   # yesterday: outside 24h
    ended(database_url, bob, 1, 2, "failed", "0.004", 3)
    carl = task_factory("waiting_continue", user_id="carl")
    ended(database_url, carl, 1, 1, "succeeded", None, 0.2)   # no recorded cost
    return {"anna": anna, "bob": bob, "carl": carl}


def report(database_url, label="24h", top=10) -> str:
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        return spend(cur, label, span_seconds(label), top=top)


def section(text: str, title: str) -> list[list[str]]:
    """The rows of one table of the report, split into cells."""
    block = text.split(title, 1)[1].split("\n\n", 1)[0].splitlines()[3:]
    return [line.split() for line in block]


def test_the_last_24_hours_per_user_look_and_outcome(database_url, seeded):
    out = report(database_url)
    assert "in the last 24h: $0.0640 (1 step(s) without a recorded cost)" in out
    assert section(out, "Per user") == [["anna", "1", "3", "$0.0600"], ["bob", "1", "1", "$0.0040"],
                                        ["carl", "1", "1", "$0.0000"]]
    assert section(out, "Per look")[0] == [seeded["anna"], "anna", "completed", "3", "$0.0600"]
    assert section(out, "Per outcome") == [["succeeded", "3", "$0.0500"], ["failed", "2", "$0.0140"]]
    days = section(out, "Per day (UTC)")
    assert sum(Decimal(row[3].lstrip("$")) for row in days) == Decimal("0.0640")


def test_a_longer_window_shows_yesterday_and_money_spent_on_cancels(database_url, seeded):
    out = report(database_url, "2d")
    assert ["canceled", "1", "$0.0050"] in section(out, "Per outcome")
    assert len(section(out, "Per day (UTC)")) >= 2
    assert "$0.0690" in out.splitlines()[0]


def test_top_n_keeps_the_most_expensive(database_url, seeded):
    out = report(database_url, top=1)
    assert [row[0] for row in section(out, "Per user (top 1)")] == ["anna"]
    assert len(section(out, "Per look (top 1)")) == 1


def test_a_look_s_cost_for_the_completion_webhook(database_url, seeded):
    db = Database(database_url)
    assert costs.look_cost_usd(db, seeded["anna"]) == Decimal("0.06")
    assert costs.look_cost_usd(db, seeded["bob"]) == Decimal("0.009")   # every attempt, whenever it ended
    assert costs.look_cost_usd(db, seeded["carl"]) is None               # nothing recorded: unknown


def test_the_command_line(database_url, seeded):
    env = {**os.environ, "DATABASE_URL": database_url}
    result = subprocess.run([sys.executable, "-m", "monitor", "spend", "--since", "90m"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "in the last 90m: $0.0300" in result.stdout  # anna's two steps an hour ago
    wrong = subprocess.run([sys.executable, "-m", "monitor", "spend", "--since", "yesterday"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "not a span such as 90m, 24h or 7d" in wrong.stderr


# --- a user's cancel is spend too (the simulator answers the cancel with metrics.predict_time) -------

def _running_step(fn, sim) -> tuple[str, str]:
    sim.set_faults(duration_s=30)
    task_id = fn.start(look(1)).body["task_id"]
    fn.worker()
    prediction_id = fn.status(task_id).body["steps"][0]["prediction_id"]
    wait_until(lambda: sim.predictions[prediction_id].status == "processing")
    return task_id, prediction_id


def _step_spend(database_url, task_id):
    return run_sql(database_url, "SELECT status, model, predict_time_s, cost_usd FROM replicate_task_steps"
                                 " WHERE task_id = %(id)s", {"id": task_id})


def test_a_step_that_never_created_a_prediction_is_not_called_unpriced(database_url, task_factory):
    task_id = task_factory("failed", user_id="dora")
    run_sql(database_url, "INSERT INTO replicate_task_steps (task_id, step, attempt, status, error_code, completed_at) "
                          "VALUES (%s, 1, 1, 'failed', 'replicate_rejected', NOW())", (task_id,))
    out = report(database_url)
    assert ["failed", "1", "$0.0000"] in section(out, "Per outcome")
    assert "without a recorded cost" not in out


def test_a_user_cancel_records_the_canceled_steps_cost_and_spend_counts_it(fn, sim, database_url):
    task_id, prediction_id = _running_step(fn, sim)
    assert fn.act(task_id, "cancel").status == 200
    answered = sim.snapshot_one(prediction_id)["metrics"]["predict_time"]
    [(status, model, predict_time_s, cost_usd)] = _step_spend(database_url, task_id)
    assert (status, model, predict_time_s) == ("canceled", "cuuupid/idm-vton", answered)
    assert cost_usd == (Decimal("0.000725") * Decimal(str(answered))).quantize(Decimal("0.000001"), ROUND_HALF_UP)
    out = report(database_url)
    assert ["canceled", "1", dollars(cost_usd)] in section(out, "Per outcome")
    assert "without a recorded cost" not in out


def test_a_cancel_that_replicate_did_not_answer_leaves_the_cost_unknown(fn, sim, database_url):
    task_id, _ = _running_step(fn, sim)
    sim.set_faults(cancel_failures=[{"status": 500}])
    assert fn.act(task_id, "cancel").status == 200
    assert _step_spend(database_url, task_id) == [("canceled", None, None, None)]
    assert "(1 step(s) without a recorded cost)" in report(database_url)

