"""Replicate webhooks on the checker: signed (verified), unsigned (a hint, re-read from the API),
redelivered and orphaned; and the cron checker as the safety net."""

import json
import threading
import time

import pytest

from tests.conftest import drive, look, wait_until


@pytest.fixture
def checker_url(env, monkeypatch):
    """The checker reachable over HTTP (the devserver's own front), so the simulator's webhooks
    really arrive, signed, as they would from Replicate."""
    from devserver.server import Platform, make_server

    server = make_server("127.0.0.1", 0)
    server.platform = Platform(None, instances_per_function=4, log=lambda *_: None)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/checker"
    monkeypatch.setenv("CHECKER_URL", url)
    yield url
    server.shutdown()
    server.server_close()
    server.platform.shutdown()


@pytest.fixture
def signed(sim, monkeypatch):
    monkeypatch.setenv("REPLICATE_WEBHOOK_SECRET", sim.webhook_secret)
    return sim.webhook_secret


def webhook_event_for(sim, prediction_id, *, message_id="msg_test1", timestamp=None, body=None, signature=None):
    prediction = sim.snapshot_one(prediction_id) if body is None else body
    raw = json.dumps(prediction)
    timestamp = int(time.time()) if timestamp is None else timestamp
    return raw, {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature or sim.sign(message_id, timestamp, raw.encode()),
    }


def post_webhook(fn, raw, headers):
    return fn.call("checker", "POST", body=raw, headers=headers)


def launched(fn, sim, garments=2):
    task_id = fn.start(look(garments)).body["task_id"]
    fn.worker()
    return task_id, fn.status(task_id).body["steps"][0]["prediction_id"]


def token_query(task_id, step=1, attempt=1):
    """The query our webhook URL carries for a step attempt (the task, step, attempt and token)."""
    from shared.settings import load
    from shared.webhook_tokens import token

    return {"task": task_id, "step": str(step), "attempt": str(attempt), "token": token(load(), task_id, step, attempt)}


def test_with_checker_url_predictions_ask_for_the_start_and_completed_webhooks(fn, sim, checker_url):
    task_id, prediction_id = launched(fn, sim)
    prediction = sim.predictions[prediction_id]
    base, _, query = prediction.webhook.partition("?")
    assert (base, prediction.events_filter) == (checker_url, ["start", "completed"])
    assert dict(part.split("=") for part in query.split("&")) == token_query(task_id)


def test_a_signed_webhook_moves_the_step_on_without_any_cron(fn, sim, signed, checker_url):
    task_id, prediction_id = launched(fn, sim)
    view = wait_until(lambda: (v := fn.status(task_id).body)["status"] == "waiting_continue" and v, timeout=10)
    assert view["intermediate_result"]
    # The simulator logs a delivery once the checker has answered it, which can be after the
    # status changed: wait for the entry rather than read the log at once.
    delivered = wait_until(lambda: [e for e in list(sim.webhook_log)
                                    if e["prediction_id"] == prediction_id and e["event"] == "completed"])
    assert [e["status"] for e in delivered] == [200]  # the first delivery was accepted
    assert sim.stats["get_calls"] == 0  # signed: the body is the prediction, no API read needed


def test_a_bad_signature_is_a_401_and_changes_nothing(fn, sim, signed):
    task_id, prediction_id = launched(fn, sim)
    wait_until(sim.wait_idle)
    raw, headers = webhook_event_for(sim, prediction_id)
    headers["webhook-signature"] = "v1," + "A" * 43 + "="
    reply = post_webhook(fn, raw, headers)
    assert reply.status == 401 and reply.body["code"] == "bad_signature"
    assert fn.status(task_id).body["status"] == "processing"


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_signature_header_is_a_401(fn, sim, signed, missing):
    _, prediction_id = launched(fn, sim)
    wait_until(sim.wait_idle)
    raw, headers = webhook_event_for(sim, prediction_id)
    del headers[missing]
    assert post_webhook(fn, raw, headers).status == 401


def test_a_timestamp_more_than_five_minutes_off_is_rejected(fn, sim, signed):
    _, prediction_id = launched(fn, sim)
    wait_until(sim.wait_idle)
    stale, headers = webhook_event_for(sim, prediction_id, timestamp=int(time.time()) - 301)
    assert post_webhook(fn, stale, headers).status == 401
    fresh, headers = webhook_event_for(sim, prediction_id, timestamp=int(time.time()) - 200)
    assert post_webhook(fn, fresh, headers).status == 200


def test_any_one_of_several_signatures_may_match(fn, sim, signed):
    task_id, prediction_id = launched(fn, sim)
    wait_until(sim.wait_idle)
    raw, headers = webhook_event_for(sim, prediction_id)
    headers["webhook-signature"] = "v1,bm90IHRoaXMgb25l " + headers["webhook-signature"]
    reply = post_webhook(fn, raw, headers)
    assert reply.status == 200 and reply.body["outcome"] == "ready"
    assert fn.status(task_id).body["status"] == "waiting_continue"


def test_a_tampered_body_fails_the_signature(fn, sim, signed):
    _, prediction_id = launched(fn, sim)
    wait_until(sim.wait_idle)
    raw, headers = webhook_event_for(sim, prediction_id)
    forged = raw.replace(sim.url, "https://evil.example.net")
    assert post_webhook(fn, forged, headers).status == 401


def test_without_a_secret_a_forged_succeeded_body_moves_nothing(fn, sim):
    sim.set_faults(duration_s=30)
    task_id, prediction_id = launched(fn, sim)
    forged = {**sim.snapshot_one(prediction_id), "status": "succeeded", "output": "https://evil.example.net/x.png"}
    reply = fn.call("checker", "POST", body=forged, headers={"webhook-id": "msg_forged"}, query=token_query(task_id))
    assert reply.status == 200
    view = fn.status(task_id).body
    assert view["status"] == "processing" and view["intermediate_result"] is None
    assert sim.stats["get_calls"] == 1  # the hint was checked against the API


def test_without_a_secret_the_api_answer_is_applied_whatever_the_body_says(fn, sim):
    task_id, prediction_id = launched(fn, sim)
    wait_until(sim.wait_idle)
    stale_hint = {**sim.snapshot_one(prediction_id), "status": "processing", "output": None}
    reply = fn.call("checker", "POST", body=stale_hint, headers={"webhook-id": "msg_hint"}, query=token_query(task_id))
    assert (reply.status, reply.body["outcome"]) == (200, "ready")
    assert fn.status(task_id).body["status"] == "waiting_continue"


def test_a_redelivered_webhook_answers_2xx_and_changes_nothing(fn, sim, signed):
    task_id, prediction_id = launched(fn, sim)
    wait_until(sim.wait_idle)
    raw, headers = webhook_event_for(sim, prediction_id, message_id="msg_same")
    assert post_webhook(fn, raw, headers).body["outcome"] == "ready"
    first = fn.status(task_id).body
    again = post_webhook(fn, raw, headers)
    assert again.status == 200 and again.body["outcome"] == "ignored"
    assert fn.status(task_id).body == first


def test_a_webhook_for_an_orphan_is_acknowledged_and_a_running_orphan_is_canceled(fn, sim, signed):
    sim.set_faults(duration_s=30)
    task_id, _prediction_id = launched(fn, sim)
    fn.act(task_id, "cancel")
    orphan = sim.create({"version": "cuuupid/idm-vton", "input": {"human_img": "https://a/b.png", "garm_img": "https://a/c.png"}},
                        headers={})
    raw, headers = webhook_event_for(sim, orphan["id"])
    reply = post_webhook(fn, raw, headers)
    assert reply.status == 200 and reply.body["outcome"] == "ignored"
    assert sim.predictions[orphan["id"]].status == "canceled"
    assert fn.status(task_id).body["status"] == "failed"


@pytest.mark.parametrize("body", [{"hello": "world"}, {"id": "abc123"}, {"id": "abc123", "status": 7},
                                  {"id": "../../etc", "status": "succeeded"}])
def test_a_signed_webhook_that_is_not_a_prediction_is_a_400(fn, sim, signed, body):
    raw, headers = webhook_event_for(sim, "x", body=body)
    reply = post_webhook(fn, raw, headers)
    assert reply.status == 400 and reply.body["code"] == "invalid_webhook"


def test_a_plain_post_to_the_checker_is_a_cron_run(fn, sim):
    reply = fn.call("checker", "POST", body="")
    assert reply.status == 200 and reply.body["message"] == "Checked 0 predictions"


def test_a_dropped_webhook_is_recovered_by_the_cron_checker(fn, sim, signed, checker_url):
    sim.set_faults(webhook_drop=True)
    task_id, _ = launched(fn, sim)
    wait_until(sim.wait_idle)
    assert sim.webhook_log == []  # nothing was sent, so nothing can be on its way
    assert fn.status(task_id).body["status"] == "processing"
    assert drive(fn, task_id, "waiting_continue")["intermediate_result"]


def test_the_webhook_needs_no_replicate_read_and_saves_the_image_in_the_same_request(fn, sim, signed):
    _task_id, prediction_id = launched(fn, sim)
    wait_until(sim.wait_idle)
    raw, headers = webhook_event_for(sim, prediction_id)
    reads = sim.stats["get_calls"]
    reply = post_webhook(fn, raw, headers)
    # Fast because it needs no Replicate call: the signed body is the prediction, and the image is
    # saved inline, so the step is ready in this one request.
    assert reply.body["outcome"] == "ready"
    assert sim.stats["get_calls"] == reads


@pytest.mark.parametrize("query", [{}, "wrong token", "another step", "another task"])
def test_without_a_secret_or_a_valid_token_a_webhook_is_a_401_that_reads_and_cancels_nothing(fn, sim, query):
    sim.set_faults(duration_s=30)
    task_id, prediction_id = launched(fn, sim)
    if query == "wrong token":
        query = {**token_query(task_id), "token": "0" * 40}
    elif query == "another step":
        query = {**token_query(task_id), "step": "2"}
    elif query == "another task":
        other_task, _ = launched(fn, sim, garments=1)
        query = {**token_query(other_task), "task": task_id}
    calls = dict(sim.stats)
    reply = fn.call("checker", "POST", body=sim.snapshot_one(prediction_id), headers={"webhook-id": "msg_x"},
                    query=query)
    assert (reply.status, reply.body["code"]) == (401, "bad_webhook_token")
    assert [sim.stats.get(name, 0) for name in ("get_calls", "cancel_calls")] == [
        calls.get(name, 0) for name in ("get_calls", "cancel_calls")]
    assert sim.predictions[prediction_id].status != "canceled"
    assert fn.status(task_id).body["status"] == "processing"


def test_an_unsigned_webhook_arrives_with_its_token_and_moves_the_step_on(fn, sim, checker_url):
    task_id, prediction_id = launched(fn, sim)
    wait_until(lambda: fn.status(task_id).body["status"] == "waiting_continue", timeout=10)
    delivered = [entry for entry in list(sim.webhook_log) if entry["prediction_id"] == prediction_id]
    assert delivered and all(entry["status"] == 200 for entry in delivered), delivered
