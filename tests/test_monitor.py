"""`python -m monitor`: the seed's monitoring queries as tables, --watch, and the maintenance
commands that replace hand-written SQL (stuck, redrive, fail), each asking before it changes data."""

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import drive, look, run_sql

ROOT = Path(__file__).resolve().parent.parent


def monitor(env, *args, answer: str | None = None):
    full_env = {**os.environ, "DATABASE_URL": env["DATABASE_URL"]}
    return subprocess.run([sys.executable, "-m", "monitor", *args], cwd=ROOT, env=full_env, input=answer,
                          capture_output=True, text=True, timeout=60)


def sql(env, statement, params=None):
    return run_sql(env["DATABASE_URL"], statement, params)


def test_the_overview_shows_active_and_waiting_tasks_with_progress(fn, sim, env):
    waiting = fn.start(look(3)).body["task_id"]
    drive(fn, waiting, "waiting_continue")
    pending = fn.start(look(2), user="user-2").body["task_id"]
    out = monitor(env).stdout
    active_part, waiting_part = out.split("Waiting for the user")
    assert "Active tasks (2)" in active_part
    assert f"{waiting}  waiting_continue  step 1/3 ■■■□□□□□□□" in active_part
    assert f"{pending}  pending" in active_part and "step 0/2 □□□□□□□□□□" in active_part
    assert " s" in active_part  # seconds since the last change
    assert f"{waiting}  user-1  step 1/3" in waiting_part and pending not in waiting_part


def test_watch_refreshes(env, fn, sim):
    result = monitor(env, "--watch", "0.2", "--iterations", "3")
    assert result.returncode == 0
    assert result.stdout.count("Active tasks (0)") == 3


def test_stuck_lists_tasks_that_should_have_moved_and_says_why(fn, sim, env):
    old_pending = fn.start(look(1)).body["task_id"]
    fresh = fn.start(look(1), user="user-2").body["task_id"]
    sql(env, "UPDATE replicate_tasks SET created_at = NOW() - INTERVAL '30 minutes' WHERE id = %s", (old_pending,))
    out = monitor(env, "stuck", "--minutes", "10").stdout
    assert "Stuck for more than 10 minutes (1)" in out
    assert old_pending in out and "pending: no worker has started it" in out
    assert fresh not in out


def test_redrive_asks_first_and_does_nothing_without_a_yes(fn, sim, env):
    task_id = fn.start(look(1)).body["task_id"]
    sql(env, "UPDATE replicate_tasks SET not_before = NOW() + INTERVAL '1 hour' WHERE id = %s", (task_id,))
    refused = monitor(env, "redrive", task_id, answer="n\n")
    assert refused.returncode == 1 and "Nothing changed." in refused.stdout
    assert sql(env, "SELECT not_before IS NOT NULL FROM replicate_tasks WHERE id = %s", (task_id,)) == [(True,)]
    assert fn.worker().body["started"] == 0


def test_redrive_makes_a_backed_off_task_due_for_the_next_ping(fn, sim, env):
    task_id = fn.start(look(1)).body["task_id"]
    sql(env, "UPDATE replicate_tasks SET not_before = NOW() + INTERVAL '1 hour' WHERE id = %s", (task_id,))
    result = monitor(env, "redrive", task_id, answer="y\n")
    assert "Re-drove 1 of 1." in result.stdout
    assert fn.worker().body["started"] == 1


def test_redrive_stuck_with_yes_does_not_ask(fn, sim, env):
    task_id = fn.start(look(1)).body["task_id"]
    sql(env, "UPDATE replicate_tasks SET created_at = NOW() - INTERVAL '1 hour', not_before = NOW() + INTERVAL '1 hour' "
             "WHERE id = %s", (task_id,))
    result = monitor(env, "redrive", "--stuck", "--yes")
    assert "[y/N]" not in result.stdout and "Re-drove 1 of 1." in result.stdout


def test_redrive_leaves_a_live_claim_alone(fn, sim, env):
    from shared import queries
    from shared.db import Database

    task_id = fn.start(look(1)).body["task_id"]
    Database(env["DATABASE_URL"]).all(queries.CLAIM_TO_LAUNCH, {"stale_s": 90, "limit": 1, "token": "live"})
    result = monitor(env, "redrive", task_id, "--yes")
    assert "its claim is live" in result.stdout
    assert sql(env, "SELECT claim_token FROM replicate_tasks WHERE id = %s", (task_id,)) == [("live",)]


def test_fail_ends_a_running_task_with_the_reason_and_cancels_its_prediction(fn, sim, env):
    sim.set_faults(duration_s=60)
    task_id = fn.start(look(2)).body["task_id"]
    fn.worker()
    prediction_id = fn.status(task_id).body["steps"][0]["prediction_id"]
    full_env = {**os.environ, "DATABASE_URL": env["DATABASE_URL"]}
    result = subprocess.run([sys.executable, "-m", "monitor", "fail", task_id, "--reason",
                             "Stopped by the operator during maintenance. Press Retry.", "--yes"],
                            cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=60)
    assert "failed, prediction canceled" in result.stdout
    view = fn.status(task_id).body
    assert (view["status"], view["error_message"]) == ("failed", "Stopped by the operator during maintenance. Press Retry.")
    assert sim.predictions[prediction_id].status == "canceled"
    assert fn.act(task_id, "retry").status == 200


def test_fail_refuses_finished_tasks(fn, sim, env):
    task_id = fn.start(look(1)).body["task_id"]
    drive(fn, task_id, "completed")
    result = monitor(env, "fail", task_id, "--reason", "x", "--yes")
    assert "not changed" in result.stdout
    assert fn.status(task_id).body["status"] == "completed"


def test_without_database_url_it_says_what_to_set():
    result = subprocess.run([sys.executable, "-m", "monitor"], cwd=ROOT, capture_output=True, text=True,
                            env={"PATH": os.environ["PATH"]}, timeout=60)
    assert result.returncode == 2 and "DATABASE_URL is not set" in result.stderr


def section(out: str, title: str) -> str:
    return out.split(title, 1)[1].split("\n\n", 1)[0]


def test_the_overview_counts_failed_steps_by_error_code_without_user_cancels(fn, sim, env):
    sim.set_faults(create_failures=[{"status": 401}, {"status": 401}])
    rejected = [fn.start(look(1), user=f"r{i}").body["task_id"] for i in range(2)]
    assert fn.worker().body["failed"] == 2
    sim.set_faults(outcomes=["failed"], failure_error="No person detected in the image")
    model = fn.start(look(1), user="m").body["task_id"]
    drive(fn, model, "failed", user="m")
    sim.set_faults(duration_s=60)
    canceled = fn.start(look(1), user="c").body["task_id"]
    fn.worker()
    assert fn.act(canceled, "cancel", user="c").status == 200
    failures = section(monitor(env).stdout, "Steps that failed in the last 24 h")
    assert failures.startswith(", by error_code (3; user cancels not counted)")
    rows = [line.split()[:3] for line in failures.splitlines()[3:]]
    assert rows == [["replicate_rejected", "2", "2"], ["model_failed", "1", "1"]]
    assert "could not sign in to Replicate" in failures and "canceled_by_user" not in failures
    assert all(task_id not in failures for task_id in rejected)  # counts, not a list of looks


def test_a_step_replicate_will_not_create_shows_how_long_it_has_been_trying(fn, sim, env):
    sim.set_faults(create_failures=[{"status": 503}] * 50)
    task_id = fn.start(look(2)).body["task_id"]
    fn.worker()
    assert fn.status(task_id).body["steps"][0]["prediction_id"] is None
    sql(env, "UPDATE replicate_task_steps SET created_at = NOW() - INTERVAL '5 minutes' WHERE task_id = %s", (task_id,))
    sql(env, "UPDATE replicate_tasks SET updated_at = LOCALTIMESTAMP WHERE id = %s", (task_id,))  # a retry just now
    out = monitor(env).stdout
    [row] = section(out, "Steps not yet created at Replicate").splitlines()[3:]
    assert row.split()[0] == task_id and "step 1/2" in row
    assert int(row.split("step 1/2")[1].split()[1]) >= 299  # trying for, in seconds, not "since last change"


def test_redrive_does_not_count_as_a_change(fn, sim, env):
    task_id = fn.start(look(1)).body["task_id"]
    sql(env, "UPDATE replicate_tasks SET created_at = NOW() - INTERVAL '1 hour', updated_at = LOCALTIMESTAMP - "
             "INTERVAL '1 hour', not_before = NOW() + INTERVAL '1 hour' WHERE id = %s", (task_id,))
    assert "Re-drove 1 of 1." in monitor(env, "redrive", task_id, "--yes").stdout
    assert task_id in monitor(env, "stuck", "--minutes", "10").stdout
    assert sql(env, "SELECT updated_at < LOCALTIMESTAMP - INTERVAL '59 minutes' FROM replicate_tasks WHERE id = %s",
               (task_id,)) == [(True,)]


def test_fail_without_a_replicate_token_refuses_rather_than_leave_predictions_running(fn, sim, env):
    sim.set_faults(duration_s=60)
    task_id = fn.start(look(1)).body["task_id"]
    fn.worker()
    environment = {k: v for k, v in os.environ.items() if k != "REPLICATE_API_TOKEN"}
    environment["DATABASE_URL"] = env["DATABASE_URL"]

    def fail(*extra):
        return subprocess.run([sys.executable, "-m", "monitor", "fail", task_id, "--reason", "Maintenance.", "--yes",
                               *extra], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60)

    refused = fail()
    assert refused.returncode == 2 and "--no-cancel" in refused.stdout and "[y/N]" not in refused.stdout
    assert fn.status(task_id).body["status"] == "processing"
    forced = fail("--no-cancel")
    assert forced.returncode == 0 and f"{task_id}: failed" in forced.stdout
    assert fn.status(task_id).body["status"] == "failed"


def test_an_unreachable_database_is_a_sentence_and_watch_keeps_trying(env):
    dead = {**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"}
    once = subprocess.run([sys.executable, "-m", "monitor"], cwd=ROOT, env=dead, capture_output=True, text=True,
                          timeout=60)
    assert once.returncode == 2 and once.stderr.startswith("Cannot reach the database:")
    assert "Traceback" not in once.stderr
    watching = subprocess.run([sys.executable, "-m", "monitor", "--watch", "0.1", "--iterations", "2"], cwd=ROOT,
                              env=dead, capture_output=True, text=True, timeout=60)
    assert watching.returncode == 0 and watching.stdout.count("the database is unreachable, trying again") == 2
    assert "Traceback" not in watching.stderr


def test_ages_do_not_follow_the_operators_own_time_zone(fn, sim, env):
    fn.start(look(1))
    full_env = {**os.environ, "DATABASE_URL": env["DATABASE_URL"], "PGTZ": "Asia/Tokyo"}
    out = subprocess.run([sys.executable, "-m", "monitor"], cwd=ROOT, env=full_env, capture_output=True, text=True,
                         timeout=60).stdout
    [row] = section(out, "Active tasks").splitlines()[3:]
    assert int(row.split()[-2]) < 600, row  # seconds since the last change, not 9 hours


def test_fail_needs_no_replicate_token_for_a_queued_look(fn, sim, env):
    task_id = fn.start(look(1)).body["task_id"]
    environment = {k: v for k, v in os.environ.items() if k != "REPLICATE_API_TOKEN"}
    environment["DATABASE_URL"] = env["DATABASE_URL"]
    result = subprocess.run([sys.executable, "-m", "monitor", "fail", task_id, "--reason", "Maintenance."],
                            cwd=ROOT, env=environment, input="y\n", capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and f"{task_id}: failed" in result.stdout
    assert fn.status(task_id).body["status"] == "failed"


def test_a_step_running_far_past_the_usual_is_shown_even_while_it_is_checked(fn, sim, env, task_factory):
    sim.set_faults(duration_s=600)
    slow = fn.start(look(2)).body["task_id"]
    fresh = fn.start(look(1), user="user-2").body["task_id"]
    fn.worker()
    done = task_factory("completed", user_id="user-3")
    sql(env, "INSERT INTO replicate_task_steps (task_id, step, attempt, status, image_url, started_at, completed_at) "
             "SELECT %s, n, 1, 'succeeded', 'https://img/s.png', NOW() - INTERVAL '1 hour' - make_interval(secs => 40), "
             "NOW() - INTERVAL '1 hour' FROM generate_series(1, 5) AS n", (done,))  # steps usually take 40 s
    sql(env, "UPDATE replicate_tasks SET step_started_at = NOW() - INTERVAL '5 minutes', checked_at = NOW() "
             "WHERE id = %s", (slow,))  # its reads fail: checked every ping, never moving
    slow_part = section(monitor(env).stdout, "Steps running over twice their usual time")
    [row] = slow_part.splitlines()[3:]
    assert row.split()[0] == slow and "step 1/2" in row and row.endswith("40 s")
    assert fresh not in slow_part
