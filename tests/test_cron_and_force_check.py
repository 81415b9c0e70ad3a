"""Worker and checker behind CRON_SECRET; status?force_check=true reconciles inline, throttled."""

import pytest

from tests.conftest import look, recheck_due, wait_until


@pytest.mark.parametrize("name", ["worker", "checker"])
def test_with_a_cron_secret_a_ping_without_it_is_a_401_and_does_nothing(fn, sim, monkeypatch, name):
    monkeypatch.setenv("CRON_SECRET", "s3cret-value")
    fn.start(look(1))
    for headers, query in (({}, {}), ({"X-Cron-Secret": "wrong"}, {}), ({}, {"secret": "s3cret-valu"})):
        reply = fn.call(name, "GET", headers=headers, query=query)
        assert reply.status == 401
        assert reply.body["code"] == "bad_cron_secret"
        assert "s3cret" not in reply.raw["body"]
    assert sim.stats["create_calls"] == 0


@pytest.mark.parametrize("how", ["header", "query"])
def test_the_cron_secret_works_as_header_or_query_parameter(fn, sim, monkeypatch, how):
    monkeypatch.setenv("CRON_SECRET", "s3cret-value")
    fn.start(look(1))
    if how == "header":
        reply = fn.worker(headers={"X-Cron-Secret": "s3cret-value"})
    else:
        reply = fn.worker(query={"secret": "s3cret-value"})
    assert reply.status == 200 and reply.body["started"] == 1


def test_force_check_moves_a_finished_step_on_without_the_checker(fn, sim):
    task_id = fn.start(look(2)).body["task_id"]
    fn.worker()
    wait_until(sim.wait_idle)
    assert fn.status(task_id).body["status"] == "processing"
    view = wait_until(lambda: (b := fn.status(task_id, force=True).body)["status"] == "waiting_continue" and b)
    assert view["intermediate_result"]


def test_force_check_reads_replicate_at_most_once_per_interval_however_often_it_is_polled(fn, sim, monkeypatch):
    monkeypatch.setenv("RECHECK_INTERVAL_S", "3")
    sim.set_faults(duration_s=30)
    task_id = fn.start(look(1)).body["task_id"]
    fn.worker()
    for _ in range(20):
        assert fn.status(task_id, force=True).body["status"] == "processing"
    # The launch marks the task checked, so a burst of polls right after it reads nothing.
    assert sim.stats["get_calls"] == 0
    monkeypatch.setenv("RECHECK_INTERVAL_S", "0.2")
    wait_until(lambda: fn.status(task_id, force=True) and sim.stats["get_calls"] >= 1, timeout=5)
    before = sim.stats["get_calls"]
    for _ in range(20):
        fn.status(task_id, force=True)
    assert sim.stats["get_calls"] - before <= 2


def test_checker_reports_running_predictions_and_how_many_remain(fn, sim, env):
    sim.set_faults(duration_s=30)
    for i in range(3):
        fn.start(look(1), user=f"u{i}")
    fn.worker()
    recheck_due(env)  # the launch counts as a check
    reply = fn.checker().body
    assert reply == {"message": "Checked 3 predictions", "checked": 3, "ready": 0, "completed": 0,
                     "failed": 0, "running": 3, "errors": 0, "remaining": 0, "listed": 0, "api_calls": 3}
