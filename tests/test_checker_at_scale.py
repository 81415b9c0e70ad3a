"""The cron checker with many predictions in flight: Replicate's list endpoint instead of one read
each, single reads for what the list does not show, a rate and a time budget, and `remaining`."""

import functools
import time

import psycopg2
import pytest

from shared import replicate_api
from tests.conftest import look, recheck_due, wait_until


def launch(fn, sim, n, **faults):
    sim.set_faults(duration_s=30, **faults)
    tasks = [fn.start(look(2), user=f"u{i}").body["task_id"] for i in range(n)]
    while fn.worker().body["started"]:
        pass
    return tasks


def finish_all(sim):
    """Every running prediction succeeds now (as if their time had come)."""
    for prediction in list(sim.predictions.values()):
        prediction.end_at = prediction.start_at = time.time()
        with sim._changed:
            sim._at(time.time(), "processing", prediction.id)
            sim._at(time.time(), "finish", prediction.id)
    wait_until(sim.wait_idle, timeout=20)


def test_many_in_flight_are_reconciled_from_the_list_endpoint_in_a_few_calls(fn, sim, env, monkeypatch):
    monkeypatch.setenv("MAX_ACTIVE_TASKS_PER_USER", "200")
    tasks = launch(fn, sim, 120)
    finish_all(sim)
    sim.stats.clear()
    recheck_due(env)
    reply = fn.checker().body
    assert (reply["checked"], reply["ready"], reply["remaining"]) == (120, 120, 0)
    assert reply["listed"] == 120
    assert sim.stats["list_calls"] == 2 and sim.stats["get_calls"] == 0
    assert all(fn.status(t, user=f"u{i}").body["status"] == "waiting_continue" for i, t in enumerate(tasks))


def test_a_prediction_missing_from_the_listed_window_is_read_on_its_own(fn, sim, env):
    tasks = launch(fn, sim, 10)
    finish_all(sim)
    # One prediction much older than the others: outside the listed window.
    conn = psycopg2.connect(env["DATABASE_URL"])
    with conn, conn.cursor() as cur:
        cur.execute("SELECT prediction_id FROM replicate_tasks WHERE id = %s", (tasks[0],))
        old_prediction = cur.fetchone()[0]
    conn.close()
    sim.predictions[old_prediction].created_at -= 3600
    sim.stats.clear()
    recheck_due(env)
    reply = fn.checker().body
    assert (reply["checked"], reply["ready"]) == (10, 10)
    assert reply["listed"] == 9 and sim.stats["get_calls"] == 1


def test_a_list_that_fails_falls_back_to_single_reads(fn, sim, env):
    launch(fn, sim, 9)
    finish_all(sim)
    sim.stats.clear()
    recheck_due(env)
    original = sim.list
    sim.list = lambda query: (_ for _ in ()).throw(__import__("devserver.replicate_sim", fromlist=["SimError"]).SimError(503, "Service Unavailable", "down"))
    try:
        reply = fn.checker().body
    finally:
        sim.list = original
    assert (reply["checked"], reply["ready"], reply["listed"]) == (9, 9, 0)
    assert sim.stats["get_calls"] == 9


def test_the_run_stops_at_its_budget_and_says_how_many_remain(fn, sim, env, monkeypatch):
    monkeypatch.setenv("CHECKER_BUDGET_S", "2.5")
    monkeypatch.setenv("CHECKER_CONCURRENCY", "2")
    monkeypatch.setenv("REPLICATE_READS_PER_SECOND", "2")  # 5 at once, then one every 0.5 s
    monkeypatch.setattr("shared.checking.LIST_WHEN_DUE", 100)  # single reads only
    launch(fn, sim, 12)
    recheck_due(env)
    reply = fn.checker().body
    # The limiter admits a burst of 5, then 2 a second, within the 2.5 s budget less its 1 s reserve.
    assert reply["api_calls"] == sim.stats["get_calls"] <= 5 + 2 * 2.5
    assert reply["checked"] + reply["remaining"] == 12
    assert 0 < reply["remaining"] < 12
    assert reply["errors"] == 0


def still_limiters(monkeypatch):
    """Fresh rate limiters on a clock that stands still: a wait is recorded, not slept, so the
    waits asked for are the same however busy the machine is."""
    now, waits = time.monotonic(), []
    monkeypatch.setattr(replicate_api, "_limiters", {})
    monkeypatch.setattr(replicate_api, "RateLimiter",
                        functools.partial(replicate_api.RateLimiter, clock=lambda: now, sleep=waits.append))
    return waits


def test_reads_stay_under_the_configured_rate(fn, sim, env, monkeypatch):
    monkeypatch.setenv("REPLICATE_READS_PER_SECOND", "10")
    monkeypatch.setattr("shared.checking.LIST_WHEN_DUE", 100)  # single reads only
    launch(fn, sim, 10)
    recheck_due(env)
    waits = still_limiters(monkeypatch)
    sim.stats.clear()
    fn.checker()
    assert sim.stats["get_calls"] == 10
    # A burst of 6 goes at once, the other 4 one per 100 ms (a wait of picoseconds is float rounding).
    assert sorted(w for w in waits if w > 1e-6) == pytest.approx([0.1, 0.2, 0.3, 0.4])


def test_a_429_with_retry_after_holds_back_every_read_of_the_batch(fn, sim, env, monkeypatch):
    monkeypatch.setenv("CHECKER_CONCURRENCY", "1")
    monkeypatch.setenv("REPLICATE_READS_PER_SECOND", "10")
    launch(fn, sim, 4)
    recheck_due(env)
    waits = still_limiters(monkeypatch)
    sim.stats.clear()
    sim.set_faults(read_failures=[{"status": 429, "retry_after": 2}])
    reply = fn.checker().body
    assert (reply["errors"], reply["checked"], reply["running"]) == (1, 3, 3)
    assert sim.stats["get_calls"] == 4
    # Nobody reads during the Retry-After: each read after the 429 waits it out, then its turn.
    assert waits == pytest.approx([2.0, 2.1, 2.2])
