"""The shared wrapper: event shapes, CORS and OPTIONS, methods, and errors that never leak."""

import json
import uuid

import pytest

from tests.conftest import look, make_event


@pytest.mark.parametrize("name,methods", [
    ("start", "POST, OPTIONS"), ("worker", "GET, POST, HEAD, OPTIONS"), ("checker", "GET, POST, HEAD, OPTIONS"),
    ("continue_", "POST, OPTIONS"), ("status", "GET, HEAD, OPTIONS"),
])
def test_options_answers_the_preflight(fn, name, methods):
    reply = fn.call(name, "OPTIONS", headers={"Origin": "https://shop.example.com"})
    assert reply.status == 200
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert reply.headers["Access-Control-Allow-Methods"] == methods
    assert reply.headers["Access-Control-Allow-Headers"] == ("Content-Type, X-User-Id, X-Cron-Secret, Idempotency-Key, "
                                                             "Authorization")
    assert "Access-Control-Allow-Credentials" not in reply.headers  # never with "*"
    assert int(reply.headers["Access-Control-Max-Age"]) > 0


def test_the_aws_http_api_v2_event_shape_works_like_the_yandex_one(fn, sim):
    task_id = fn.start(look(1)).body["task_id"]
    reply = fn.call("status", "GET", shape="aws_v2", query={"task_id": task_id}, headers={"X-User-Id": "user-1"})
    assert reply.status == 200 and reply.body["task_id"] == task_id
    created = fn.call("start", "POST", shape="aws_v2", body=look(1), headers={"x-user-id": "user-2"})
    assert created.status == 200 and created.body["status"] == "pending"


def test_a_base64_encoded_body_is_decoded(fn, sim):
    reply = fn.call("start", "POST", body=look(1), headers={"X-User-Id": "u"}, base64_body=True)
    assert reply.status == 200


def test_header_names_are_case_insensitive(fn, sim):
    reply = fn.call("start", "POST", body=look(1), headers={"x-USER-id": "case-user"})
    assert reply.status == 200
    assert fn.status(reply.body["task_id"], user="case-user").status == 200


def test_the_header_user_wins_over_the_body_user(fn, sim):
    reply = fn.start(look(1, user_id="body-user"), user="header-user")
    assert fn.status(reply.body["task_id"], user="header-user").status == 200
    assert fn.status(reply.body["task_id"], user="body-user").status == 404


def test_the_body_user_id_is_used_when_there_is_no_header(fn, sim):
    reply = fn.start(look(1, user_id="body-user"), user=None)
    assert reply.status == 200
    assert fn.status(reply.body["task_id"], user="body-user").status == 200


def test_a_database_that_is_down_is_a_503_with_retry_after_and_cors(fn, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    reply = fn.status(str(uuid.uuid4()))
    assert reply.status == 503
    assert reply.body == {"error": "The database is unavailable right now. Please try again in a few seconds.",
                          "code": "database_unavailable"}
    assert reply.headers["Retry-After"] == "5"
    assert reply.headers["Access-Control-Allow-Origin"] == "*"


def test_the_log_says_what_the_database_said_without_the_password(fn, env, monkeypatch, capsys):
    from psycopg2.extensions import make_dsn, parse_dsn

    wrong = make_dsn(**{**parse_dsn(env["DATABASE_URL"]), "dbname": "no_such_db", "password": "hunter2-secret"})
    monkeypatch.setenv("DATABASE_URL", wrong)
    capsys.readouterr()
    assert fn.status(str(uuid.uuid4())).status == 503
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    [said] = [line for line in lines if line["event"] == "database_unavailable"]
    assert said["error"] == "OperationalError" and 'database "no_such_db" does not exist' in said["detail"]
    assert "hunter2-secret" not in json.dumps(lines)


@pytest.mark.parametrize("password", ["s3cr@tPart", "s3cr/tPart"])
def test_a_password_libpq_misreads_as_a_host_or_port_is_not_logged(fn, monkeypatch, capsys, password):
    monkeypatch.setenv("DATABASE_URL", f"postgresql://tryon:{password}@127.0.0.1:1/tryon?connect_timeout=1")
    capsys.readouterr()
    assert fn.status(str(uuid.uuid4())).status == 503
    [said] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "database_unavailable" in line]
    assert said["detail"] and "tPart" not in json.dumps(said) and "s3cr" not in json.dumps(said)


def test_a_missing_setting_is_a_503_that_does_not_name_secrets(fn, monkeypatch):
    monkeypatch.delenv("REPLICATE_API_TOKEN")
    reply = fn.worker()
    assert reply.status == 503 and reply.body["code"] == "not_configured"
    assert "REPLICATE" not in reply.raw["body"]


def test_an_unexpected_exception_is_a_generic_500_and_the_trace_goes_to_the_log(fn, monkeypatch, capsys):
    from shared import starting

    def explode(*args, **kwargs):
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(starting, "start", explode)
    reply = fn.start(look(1))
    assert reply.status == 500
    assert reply.body == {"error": "Something went wrong on our side. Please try again in a minute.",
                          "code": "internal_error"}
    assert "hunter2" not in reply.raw["body"]
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert any(entry["event"] == "unhandled_error" and "RuntimeError" in entry["trace"] for entry in logged)


def test_every_invocation_writes_one_structured_log_line(fn, capsys):
    fn.call("status", "GET", query={"task_id": str(uuid.uuid4())})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    invocations = [line for line in lines if line["event"] == "invocation"]
    assert len(invocations) == 1
    assert invocations[0]["function"] == "status" and invocations[0]["status"] == 404
    assert invocations[0]["request_id"] and invocations[0]["duration_ms"] >= 0


def test_allowed_origins_echo_a_listed_origin_and_grant_nothing_to_others(fn, monkeypatch):
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://shop.example.com, https://m.shop.example.com")
    allowed = fn.call("status", "OPTIONS", headers={"Origin": "https://m.shop.example.com"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://m.shop.example.com"
    assert allowed.headers["Vary"] == "Origin"
    assert allowed.headers["Access-Control-Allow-Credentials"] == "true"  # a login gateway's cookie may come along
    other = fn.call("status", "GET", headers={"Origin": "https://evil.example.net"}, query={"task_id": "x"})
    assert "Access-Control-Allow-Origin" not in other.headers
    assert "Access-Control-Allow-Credentials" not in other.headers


def timer_event(payload: str) -> dict:
    from pathlib import Path

    timer = json.loads((Path(__file__).parent / "events" / "yandex_timer.json").read_text())
    timer["messages"][0]["details"]["payload"] = payload
    return timer


def test_without_a_cron_secret_a_timer_trigger_runs_the_cron_path(fn, sim):
    fn.start(look(1))
    assert fn.call("worker", event=timer_event("")).body["started"] == 1
    assert fn.call("checker", event=timer_event("")).status == 200


@pytest.mark.parametrize("event", [timer_event("s3cret"), {"secret": "s3cret"}], ids=["yandex timer", "scheduler"])
def test_a_direct_invocation_carrying_the_cron_secret_runs_the_cron_path(fn, monkeypatch, sim, event):
    monkeypatch.setenv("CRON_SECRET", "s3cret")
    fn.start(look(1))
    assert fn.call("worker", event=event).body["started"] == 1
    assert fn.call("checker", event=event).status == 200


# Yandex hands a public function's request body over as its event when it is called with
# ?integration=raw: anyone can send these, so none of them is the platform's own scheduler.
@pytest.mark.parametrize("event", [{}, {"headers": {"X-Cron-Secret": "wrong"}}, {"secret": "wrong"},
                                   {"secret": ["s3cret"]}, timer_event(""), timer_event("wrong"),
                                   {"messages": [{"details": "s3cret"}]}])
@pytest.mark.parametrize("name", ["worker", "checker"])
def test_a_direct_invocation_without_the_cron_secret_is_refused(fn, monkeypatch, sim, capsys, name, event):
    monkeypatch.setenv("CRON_SECRET", "s3cret")
    task_id = fn.start(look(1)).body["task_id"]
    calls = dict(sim.stats)
    reply = fn.call(name, event=event)
    assert (reply.status, reply.body["code"]) == (401, "bad_cron_secret")
    assert dict(sim.stats) == calls
    assert fn.status(task_id).body["status"] == "pending"
    # A timer made before the secret was needed stops silently on the platform: the log says so.
    [said] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"cron_refused"' in line]
    assert "payload" in said["hint"]


def test_response_bodies_are_json_strings_never_bytes(fn):
    raw = fn.handlers["status"](make_event("GET", query={"task_id": str(uuid.uuid4())}), None)
    assert isinstance(raw["body"], str) and raw["isBase64Encoded"] is False


def test_a_wrong_method_is_a_405_that_says_which_methods_work(fn):
    reply = fn.call("status", "DELETE", query={"task_id": "x"})
    assert reply.status == 405
    assert reply.body == {"error": "Use GET for this endpoint.", "code": "method_not_allowed",
                          "allowed": ["GET", "HEAD"]}
    assert reply.headers["Allow"] == "GET, HEAD, OPTIONS"


def test_head_is_answered_as_get_without_the_body(fn, sim):
    task_id = fn.start(look(1)).body["task_id"]
    get = fn.call("status", "GET", query={"task_id": task_id}, headers={"X-User-Id": "user-1"})
    head = fn.handlers["status"](make_event("HEAD", query={"task_id": task_id}, headers={"X-User-Id": "user-1"}), None)
    assert head["statusCode"] == 200 and head["body"] == ""
    assert head["headers"] == get.headers
    missing = fn.handlers["status"](make_event("HEAD", query={"task_id": str(uuid.uuid4())}), None)
    assert missing["statusCode"] == 404 and missing["body"] == ""
    for name in ("start", "continue_"):  # POST only: a 405, without a body all the same
        refused = fn.handlers[name](make_event("HEAD"), None)
        assert refused["statusCode"] == 405 and refused["body"] == ""
        assert refused["headers"]["Allow"] == "POST, OPTIONS"


def test_a_head_ping_runs_the_worker_as_a_get_does(fn, sim, monkeypatch):
    # Uptime monitors (UptimeRobot's HTTP(s) monitor among them) may ping with HEAD.
    monkeypatch.setenv("CRON_SECRET", "s3cret")
    task_id = fn.start(look(1)).body["task_id"]
    refused = fn.handlers["worker"](make_event("HEAD", query={"secret": "wrong"}), None)
    assert refused["statusCode"] == 401 and fn.status(task_id).body["status"] == "pending"
    ping = fn.handlers["worker"](make_event("HEAD", query={"secret": "s3cret"}), None)
    assert ping["statusCode"] == 200 and ping["body"] == ""
    assert fn.status(task_id).body["status"] == "processing"


def test_head_is_refused_where_get_is(fn):
    reply = fn.handlers["continue_"](make_event("HEAD"), None)
    assert reply["statusCode"] == 405 and reply["headers"]["Allow"] == "POST, OPTIONS"


def test_a_json_body_may_start_with_a_byte_order_mark(fn, sim):
    event = make_event("POST", body="\ufeff" + json.dumps(look(1)), headers={"X-User-Id": "bom"})
    raw = fn.handlers["start"](event, None)
    assert raw["statusCode"] == 200, raw
    assert fn.status(json.loads(raw["body"])["task_id"], user="bom").status == 200
