"""The completion webhook: every look that ends gets one outbox row in the statement that ends it,
and worker runs deliver it at least once, signed the Standard Webhooks way, with the same
webhook-id on every retry and a growing back-off. Time passing is simulated by making the
event due again in the database, never by sleeping."""

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time

import pytest

from shared import completion, queries, step_end
from tests.conftest import drive, look, run_sql

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


class Receiver:
    """An HTTP endpoint that answers 500 to the first `failures` POSTs, then 200."""

    def __init__(self, failures=0, delay_s=0.0):
        self.failures, self.delay_s, self.requests = failures, delay_s, []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                time.sleep(receiver.delay_s)
                failing = len(receiver.requests) <= receiver.failures
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver(monkeypatch, env):
    made = []

    def make(**kwargs):
        found = Receiver(**kwargs)
        made.append(found)
        monkeypatch.setenv("COMPLETION_WEBHOOK_URL", found.url)
        monkeypatch.setenv("COMPLETION_WEBHOOK_SECRET", SECRET)
        return found

    yield make
    for found in made:
        found.server.shutdown()


def verify(headers, body):
    """The receiver's side of Standard Webhooks, written from the spec."""
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.{body}".encode()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(part.split(",", 1)[1] == expected for part in headers["webhook-signature"].split(" "))


def events(database_url, task_id=None):
    sql = "SELECT id, type, attempts, delivered_at IS NOT NULL FROM look_events"
    return run_sql(database_url, sql + (" WHERE task_id = %s" if task_id else ""), (task_id,) if task_id else None)


def make_due(database_url):
    """What the back-off's wait would do: the event's next try is now."""
    return run_sql(database_url, "UPDATE look_events SET next_attempt_at = NOW() WHERE delivered_at IS NULL "
                                 "RETURNING EXTRACT(EPOCH FROM next_attempt_at - NOW())")


def seconds_until_next_try(database_url):
    return run_sql(database_url, "SELECT EXTRACT(EPOCH FROM next_attempt_at - NOW()) FROM look_events")[0][0]


def test_a_receiver_failing_three_times_gets_one_accepted_delivery_under_one_webhook_id(
        fn, env, task_factory, receiver):
    hook = receiver(failures=3)
    task_id = task_factory("waiting_continue", user_id="anna", intermediate_result="https://img/1.png")
    assert fn.act(task_id, "finish", user="anna").status == 200

    waits = []
    for _ in range(3):
        reply = fn.worker().body
        assert reply["webhooks_failed"] == 1 and reply["webhooks_delivered"] == 0
        waits.append(seconds_until_next_try(env["DATABASE_URL"]))
        assert fn.worker().body["webhooks_failed"] == 0  # not due yet: nothing is sent
        make_due(env["DATABASE_URL"])
    assert fn.worker().body["webhooks_delivered"] == 1
    make_due(env["DATABASE_URL"])
    assert fn.worker().body["webhooks_delivered"] == 0  # delivered: never sent again

    assert len(hook.requests) == 4
    assert len({headers["webhook-id"] for headers, _ in hook.requests}) == 1
    assert len({body for _, body in hook.requests}) == 1
    assert all(verify(headers, body) for headers, body in hook.requests)
    assert waits[0] <= 5 < waits[1] <= 30 < waits[2] <= 120  # the back-off grows
    [(webhook_id, kind, attempts, delivered)] = events(env["DATABASE_URL"], task_id)
    assert (kind, attempts, delivered) == ("look.completed", 4, True)
    assert hook.requests[0][0]["webhook-id"] == webhook_id and webhook_id.startswith("msg_")

    body = json.loads(hook.requests[0][1])
    assert set(body) == {"type", "task_id", "user_id", "result_url", "steps", "created_at", "ended_at"}
    assert (body["type"], body["task_id"], body["user_id"], body["result_url"]) == (
        "look.completed", task_id, "anna", "https://img/1.png")
    assert body["created_at"].endswith("Z") and body["ended_at"] >= body["created_at"]


def test_a_look_that_runs_to_its_end_is_posted_with_its_steps(fn, env, sim, receiver):
    hook = receiver()
    task_id = fn.start(look(1)).body["task_id"]
    view = drive(fn, task_id, "completed")
    fn.worker()

    [(headers, text)] = hook.requests
    body = json.loads(text)
    assert verify(headers, text)
    assert body["result_url"] == view["result_url"]
    assert [(s["step"], s["status"], s["image_url"]) for s in body["steps"]] == [(1, "succeeded", view["result_url"])]


def test_a_failed_look_is_posted_as_failed(fn, env, sim, receiver):
    hook = receiver()
    sim.set_faults(outcomes=["failed"])
    task_id = fn.start(look(2)).body["task_id"]
    drive(fn, task_id, "failed")
    fn.worker()

    body = json.loads(hook.requests[0][1])
    assert (body["type"], body["result_url"]) == ("look.failed", None)
    assert body["steps"][0]["status"] == "failed"


# Each statement that ends a look, from a row in the state it ends it from.
SPEND = {"predict_times": [None], "models": [None], "costs": [None]}
ENDINGS = [
    ("finish", "waiting_continue", {}, queries.FINISH, {}),
    ("cancel", "processing", {}, queries.CANCEL, {"error": "canceled by user", "error_code": "canceled_by_user"}),
    ("launch failed", "processing", {"prediction_id": None, "step_started_at": None, "claim_token": "tok",
                                     "claimed_at": "now()"},
     queries.LAUNCH_FAILED, {"token": "tok", "error": "refused", "error_code": "replicate_rejected",
                             "error_detail": None}),
    ("step failed", "processing", {}, step_end.STEPS_FAILED,
     {"prediction_ids": ["p-running"], "step_statuses": ["failed"], "errors": ["the model failed"],
      "error_codes": ["model_failed"], "error_details": [None], **SPEND}),
    ("last step succeeded", "processing", {"current_step": 2}, step_end.STEPS_SUCCEEDED,
     {"prediction_ids": ["p-running"], "image_urls": ["https://img/2.png"], "outputs": ["x"], **SPEND}),
]


def end_with(database_url, sql, task_id, params):
    return run_sql(database_url, sql, {"id": task_id, "ids": [task_id], **params})


@pytest.mark.parametrize("name,state,columns,sql,params", ENDINGS, ids=[e[0] for e in ENDINGS])
def test_every_statement_that_ends_a_look_writes_one_event(env, task_factory, name, state, columns, sql, params):
    task_id = task_factory(state, **columns)
    assert end_with(env["DATABASE_URL"], sql, task_id, params), name
    [(status,)] = run_sql(env["DATABASE_URL"], "SELECT status FROM replicate_tasks WHERE id = %s", (task_id,))
    assert [row[1] for row in events(env["DATABASE_URL"], task_id)] == [f"look.{status}"]
    # Ending is one move: running the statement again ends nothing and writes nothing.
    assert end_with(env["DATABASE_URL"], sql, task_id, params) == []
    assert len(events(env["DATABASE_URL"], task_id)) == 1


def test_a_step_that_is_not_the_last_writes_no_event(env, task_factory):
    task_id = task_factory("processing", current_step=1)
    assert end_with(env["DATABASE_URL"], step_end.STEPS_SUCCEEDED, task_id, {
        "prediction_ids": ["p-running"], "image_urls": ["https://img/1.png"], "outputs": ["x"], **SPEND})
    assert events(env["DATABASE_URL"], task_id) == []


def test_without_a_url_nothing_is_sent_and_events_wait(fn, env, task_factory):
    task_id = task_factory("waiting_continue")
    fn.act(task_id, "finish")
    reply = fn.worker().body
    assert (reply["webhooks_delivered"], reply["webhooks_failed"]) == (0, 0)
    assert [row[2:] for row in events(env["DATABASE_URL"], task_id)] == [(0, False)]


def test_a_receiver_that_does_not_answer_is_given_up_on_at_the_deadline(receiver):
    hook = receiver(delay_s=3)
    error = completion.post_within(hook.url, {"Content-Type": "application/json"}, "{}", deadline_s=0.3)
    assert error == "did not answer within 0.3 s"
    hook.delay_s = 0


def test_events_older_than_a_day_are_no_longer_tried(fn, env, task_factory, receiver):
    hook = receiver()
    task_id = task_factory("waiting_continue")
    fn.act(task_id, "finish")
    run_sql(env["DATABASE_URL"], "UPDATE look_events SET created_at = NOW() - INTERVAL '25 hours'")
    assert fn.worker().body["webhooks_delivered"] == 0
    assert hook.requests == []


def test_the_original_sites_history_format(fn, env, task_factory, receiver, monkeypatch):
    hook = receiver()
    monkeypatch.setenv("COMPLETION_WEBHOOK_FORMAT", "try-on-history")
    done = task_factory("waiting_continue", user_id="anna", intermediate_result="https://img/1.png",
                        garments='["https://img/shirt.png", "https://img/skirt.png"]')
    failed = task_factory("processing", user_id="anna")
    fn.act(done, "finish", user="anna")
    fn.act(failed, "cancel", user="anna")

    reply = fn.worker().body
    assert reply["webhooks_delivered"] == 2  # the failed look counts as done: that format has no place for it
    [(headers, text)] = hook.requests
    assert headers["x-user-id"] == "anna"
    assert json.loads(text) == {"person_image": "https://img/person.png", "result_image": "https://img/1.png",
                                "garments": [{"image": "https://img/shirt.png", "category": "upper_body"},
                                             {"image": "https://img/skirt.png", "category": "upper_body"}],
                                "model_used": "replicate", "cost": 0}


def test_failed_deliveries_show_in_the_monitor(fn, env, task_factory, receiver):
    from tests.test_monitor import monitor

    receiver(failures=10)
    retrying, given_up = task_factory("waiting_continue"), task_factory("waiting_continue")
    fn.act(retrying, "finish")
    fn.act(given_up, "finish")
    assert fn.worker().body["webhooks_failed"] == 2
    run_sql(env["DATABASE_URL"], "UPDATE look_events SET created_at = NOW() - INTERVAL '25 hours' WHERE task_id = %s",
            (given_up,))

    out = monitor(env).stdout.split("Completion webhooks not delivered (2)")[1]
    [retry_line] = [line for line in out.splitlines() if retrying in line]
    [given_up_line] = [line for line in out.splitlines() if given_up in line]
    assert "retry in" in retry_line and "The receiver answered 500." in retry_line
    assert "given up" in given_up_line
