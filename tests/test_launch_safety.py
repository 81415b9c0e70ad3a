"""Issue 12.2-12.4, CONTRACT guarantees 8-10: a look whose launch keeps failing on our side is
quarantined without holding up the others; every Replicate call and download ends by a wall-clock
deadline; a prediction we created but did not record is adopted or canceled, never left running."""

import http.server
import secrets
import threading
import time

import psycopg2
import pytest

from shared import queries
from shared.db import Database
from tests.conftest import drive, look, run_sql, wait_until


def let_the_back_off_pass(env):
    run_sql(env["DATABASE_URL"], "UPDATE replicate_tasks SET not_before = NOW() WHERE not_before > NOW()")


def make_claims_stale(env):
    run_sql(env["DATABASE_URL"],
            "UPDATE replicate_tasks SET claimed_at = claimed_at - INTERVAL '1 hour' WHERE claimed_at IS NOT NULL")


def poison(monkeypatch, task_id, error):
    """An injected bug: building the model input of one look raises `error`."""
    from shared import launching

    real = launching.step_input

    def step_input(settings, storage, task):
        if task.id == task_id:
            raise error
        return real(settings, storage, task)

    monkeypatch.setattr(launching, "step_input", step_input)


def row(env, task_id):
    [found] = run_sql(env["DATABASE_URL"],
                      "SELECT status, error_code, error_message, launch_failures FROM replicate_tasks WHERE id = %s",
                      (task_id,))
    return found


@pytest.mark.parametrize("error", [RuntimeError("injected bug"), UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogate")])
def test_a_poisoned_look_fails_after_three_attempts_and_never_holds_up_the_next_look(fn, sim, env, monkeypatch, error):
    bad = fn.start(look(1), user="mallory").body["task_id"]
    good = fn.start(look(1), user="anna").body["task_id"]
    poison(monkeypatch, bad, error)
    first = fn.worker()
    # The bad look was claimed first (oldest) and handed back; the same run started the good one.
    assert first.status == 200
    assert (first.body["started"], first.body["deferred"], first.body["failed"]) == (1, 1, 0)
    assert row(env, bad)[:2] == ("processing", None) and row(env, bad)[3] == 1
    assert fn.worker().body["started"] == 0  # the back-off holds: not re-claimed at once
    let_the_back_off_pass(env)
    assert fn.worker().body["deferred"] == 1
    let_the_back_off_pass(env)
    assert fn.worker().body["failed"] == 1
    status, code, message, _ = row(env, bad)
    assert (status, code) == ("failed", "launch_failed")
    assert "could not be started" in message and "Retry" in message
    view = fn.status(bad, user="mallory").body
    assert view["steps"][0]["status"] == "failed" and "retry" in view["actions"]
    assert drive(fn, good, "completed", user="anna")["status"] == "completed"
    assert sim.stats["predictions_created"] == 1  # the poisoned look never reached Replicate


def test_a_surrogate_in_the_stored_text_is_caught_before_any_create(fn, sim, env, monkeypatch):
    from shared import launching
    from shared.settings import load
    from shared.task import Task

    task = Task(id="t", user_id="u", status="processing", person_image="https://img/p.png",  # type: ignore[arg-type]
                garments='[{"image": "https://img/g.png", "description": "\\ud800"}]', current_step=1, total_steps=1)
    with pytest.raises(UnicodeEncodeError):
        launching.step_input(load(), None, task)


# --- wall-clock deadlines ------------------------------------------------------------------------

def test_a_create_answered_one_byte_at_a_time_is_abandoned_at_its_deadline_and_adopted_later(fn, sim, env, monkeypatch):
    # Each byte arrives well inside the read timeout: only a deadline on the whole call stops it
    # (without one this create would take len(answer) x 0.2 s, minutes).
    monkeypatch.setenv("REPLICATE_TIMEOUT_S", "1")
    monkeypatch.setenv("CLAIM_STALE_S", "3")
    sim.set_faults(slow_drip_s=0.2, duration_s=30)
    task_id = fn.start(look(1)).body["task_id"]
    reply = fn.worker().body
    assert (reply["started"], reply["deferred"]) == (0, 1)  # abandoned: a transient, not a failure
    assert sim.stats["predictions_created"] == 1  # Replicate made it; we never heard its id
    sim.set_faults(slow_drip_s=0.0, duration_s=0.3)
    let_the_back_off_pass(env)
    # The next claim finds the unrecorded prediction by its input and adopts it instead of a second.
    assert fn.worker().body["started"] == 1
    [made] = sim.snapshot()
    assert fn.status(task_id).body["steps"][0]["prediction_id"] == made["id"]
    assert sim.stats["predictions_created"] == 1


class _DripHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", "10000")
        self.end_headers()
        try:
            for _ in range(10000):
                self.wfile.write(b"\x89")
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:  # the client hung up: what the test wants
            self.server.hung_up.set()  # type: ignore[attr-defined]

    def log_message(self, *args):
        pass


def test_a_download_dripping_one_byte_at_a_time_is_cut_off_at_its_deadline():
    from shared.downloads import download
    from shared.images import DownloadError
    from shared.output_hosts import OutputHosts

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DripHandler)
    server.hung_up = threading.Event()  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(DownloadError) as caught:
            download(base + "/x.png", max_bytes=1 << 20, hosts=OutputHosts.of(base, None, ()), timeout=1.0)
        assert caught.value.transient and "did not finish" in str(caught.value)
        wait_until(server.hung_up.is_set, timeout=10)  # the connection was really closed
    finally:
        server.shutdown()
        server.server_close()


def test_no_replicate_call_runs_past_the_runs_end(env):
    from shared.replicate_api import END_GRACE_S, ReplicateAPI
    from shared.settings import load

    api = ReplicateAPI(load())
    now = time.monotonic()
    api.deadline = now + 0.5
    assert api._call_end(None) <= api.deadline + END_GRACE_S  # a checker read started late
    api.end_by = now + 2.0
    assert api._call_end(now + 10) <= api.end_by  # a create never outlives its run
    assert api._call_end(now + 1.0) <= now + 1.0  # ... nor its claim


def test_a_create_with_too_little_time_left_is_not_sent(env, sim):
    from shared.replicate_api import OutOfTime, ReplicateAPI
    from shared.settings import load

    api = ReplicateAPI(load())
    with pytest.raises(OutOfTime):
        api.create({"human_img": "https://a/b.png", "garm_img": "https://a/c.png"}, end_by=time.monotonic() + 1.0)
    assert sim.stats["create_calls"] == 0


# --- orphans -------------------------------------------------------------------------------------

def fail_the_database_when_recording(monkeypatch):
    """The database goes away between Replicate's create and our record of it (once)."""
    real_one = Database.one
    failed = []

    def one(self, sql, params=None):
        if sql is queries.LAUNCHED and not failed:
            failed.append(params["prediction_id"])
            raise psycopg2.OperationalError("server closed the connection unexpectedly")
        return real_one(self, sql, params)

    monkeypatch.setattr(Database, "one", one)
    return failed


def test_a_prediction_whose_record_failed_is_canceled_and_the_step_runs_once(fn, sim, env, monkeypatch):
    sim.set_faults(duration_s=2)
    task_id = fn.start(look(1)).body["task_id"]
    failed = fail_the_database_when_recording(monkeypatch)
    assert fn.worker().status == 503
    [orphan] = failed
    assert sim.predictions[orphan].status == "canceled"
    make_claims_stale(env)
    view = drive(fn, task_id, "completed", timeout=20)
    assert view["steps"][0]["prediction_id"] != orphan
    succeeded = [p for p in sim.snapshot() if p["status"] == "succeeded"]
    assert len(succeeded) == 1  # 0 extra predictions ran to completion


def test_a_run_killed_between_create_and_record_leaves_a_prediction_that_is_adopted(fn, sim, env):
    from shared import launching
    from shared.services import Services
    from shared.settings import load
    from shared.task import Task

    sim.set_faults(duration_s=30)
    task_id = fn.start(look(1)).body["task_id"]
    claimed = Database(env["DATABASE_URL"]).one(queries.CLAIM_TO_LAUNCH,
                                                {"stale_s": 90, "limit": 1, "token": secrets.token_hex(16)})
    task = Task.from_row(claimed)
    services = Services(load())
    # The dying run marked the create as sent, created the prediction, and died (kill -9).
    services.db.one(queries.CREATE_SENDING, {"id": task.id, "token": task.claim_token})
    made = launching.create_prediction(services.settings, services.replicate, services.storage, task)
    make_claims_stale(env)
    assert fn.worker().body["started"] == 1
    assert fn.status(task_id).body["steps"][0]["prediction_id"] == made.id
    assert sim.stats["predictions_created"] == 1


def test_an_unreadable_list_defers_the_re_drive_instead_of_creating_a_second_prediction(fn, sim, env):
    from shared import launching
    from shared.services import Services
    from shared.settings import load
    from shared.task import Task

    task_id = fn.start(look(1)).body["task_id"]
    claimed = Database(env["DATABASE_URL"]).one(queries.CLAIM_TO_LAUNCH,
                                                {"stale_s": 90, "limit": 1, "token": secrets.token_hex(16)})
    task, services = Task.from_row(claimed), Services(load())
    services.db.one(queries.CREATE_SENDING, {"id": task.id, "token": task.claim_token})
    launching.create_prediction(services.settings, services.replicate, services.storage, task)
    make_claims_stale(env)
    sim.set_faults(read_failures=[{"status": 503}])
    assert fn.worker().body["deferred"] == 1
    assert sim.stats["create_calls"] == 1  # only the dying run's
    let_the_back_off_pass(env)
    assert fn.worker().body["started"] == 1
    assert drive(fn, task_id, "completed")["status"] == "completed"
    assert sim.stats["predictions_created"] == 1


def test_a_lost_create_answer_is_adopted_from_its_start_webhook(fn, sim, env, monkeypatch):
    from tests.test_webhooks import token_query

    monkeypatch.setenv("CHECKER_URL", "http://127.0.0.1:9/checker")  # unreachable: we deliver it by hand
    sim.set_faults(webhook_drop=True, duration_s=30, create_then_fail=[{"status": 503}])
    task_id = fn.start(look(1)).body["task_id"]
    assert fn.worker().body["deferred"] == 1  # Replicate made it, but we got a 503
    [made] = sim.snapshot()
    reply = fn.call("checker", "POST", body=sim.snapshot_one(made["id"]), headers={"webhook-id": "msg_start"},
                    query=token_query(task_id))
    assert reply.status == 200 and reply.body["outcome"] == "running"
    assert fn.status(task_id).body["steps"][0]["prediction_id"] == made["id"]
    let_the_back_off_pass(env)
    assert fn.worker().body["started"] == 0  # adopted: nothing left to create
    assert sim.stats["predictions_created"] == 1


def test_a_start_webhook_for_a_step_that_moved_on_cancels_the_prediction(fn, sim, env, monkeypatch):
    from tests.test_webhooks import token_query

    monkeypatch.setenv("CHECKER_URL", "http://127.0.0.1:9/checker")
    sim.set_faults(webhook_drop=True, duration_s=30, create_then_fail=[{"status": 503}])
    task_id = fn.start(look(1)).body["task_id"]
    fn.worker()
    [made] = sim.snapshot()
    fn.act(task_id, "cancel")
    reply = fn.call("checker", "POST", body=sim.snapshot_one(made["id"]), headers={"webhook-id": "msg_start"},
                    query=token_query(task_id))
    assert reply.status == 200 and reply.body["outcome"] == "ignored"
    assert sim.predictions[made["id"]].status == "canceled"
