"""openapi.yaml describes the functions as the devserver serves them: requests generated from it
(and plain garbage) never get a 5xx, and every answer is one the spec declares, in its shape."""

import json

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import GARMENTS, PERSON, start_devserver
from tests.openapi_tools import JSON, load_spec, resolve, validate, values

SPEC = load_spec()
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
USER = "fuzz-user"


SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_devserver(tmp_path_factory.mktemp("fuzz"), "--sim-seconds", "0.5", "--cron-interval", "0.5",
                              env_overrides={"MAX_ACTIVE_TASKS_PER_USER": "10000", "START_RATE_PER_USER": "10000",
                                             "REPLICATE_WEBHOOK_SECRET": SECRET})
    yield running
    running.stop()


@pytest.fixture(scope="module")
def task_ids(server):
    ids = []
    for count in (1, 2, 3):
        reply = requests.post(server.url + "/start", headers={"X-User-Id": USER}, timeout=10,
                              json={"person_image": PERSON, "garments": GARMENTS[:count]})
        ids.append(reply.json()["task_id"])
    return ids


def check(response: requests.Response, path: str, method: str) -> None:
    operation = SPEC["paths"][path][method]
    assert response.status_code < 500, f"{method.upper()} {path}: {response.status_code} {response.text[:300]}"
    declared = operation["responses"].get(str(response.status_code))
    assert declared is not None, f"{method.upper()} {path}: undeclared {response.status_code} {response.text[:300]}"
    assert "Access-Control-Allow-Origin" in response.headers
    schema = resolve(SPEC, declared)["content"]["application/json"]["schema"]
    problems = validate(SPEC, schema, response.json())
    assert not problems, f"{method.upper()} {path} {response.status_code}: {problems} in {response.text[:500]}"


def body_for(path: str, method: str) -> st.SearchStrategy:
    request = SPEC["paths"][path][method].get("requestBody")
    if request is None:
        return st.none()
    schema = request["content"]["application/json"]["schema"]
    return values(SPEC, schema) | JSON | st.text(max_size=30).map(lambda text: ("raw", text))


def send(server, method: str, path: str, *, body=None, headers=None, params=None) -> requests.Response:
    kwargs = {"headers": headers or {}, "params": params, "timeout": 30}
    if isinstance(body, tuple) and body and body[0] == "raw":
        kwargs["data"] = body[1].encode()
    elif body is not None:
        kwargs["data"] = json.dumps(body)
    return requests.request(method.upper(), server.url + path, **kwargs)


user_ids = st.just(USER) | st.text(max_size=20) | st.none()


@FUZZ
@given(body=body_for("/start", "post"), user=user_ids, key=st.none() | st.text(max_size=20))
def test_start(server, body, user, key):
    headers = {k: v for k, v in {"X-User-Id": user, "Idempotency-Key": key}.items() if v is not None}
    check(send(server, "post", "/start", body=body, headers=_latin1(headers)), "/start", "post")


@FUZZ
@given(data=st.data(), user=user_ids, force=st.sampled_from(["true", "false", "1", "0", "yes", ""]))
def test_status(server, task_ids, data, user, force):
    task_id = data.draw(st.sampled_from(task_ids) | st.uuids().map(str) | st.text(max_size=40))
    headers = _latin1({"X-User-Id": user} if user is not None else {})
    check(send(server, "get", "/status", headers=headers, params={"task_id": task_id, "force_check": force}),
          "/status", "get")


@FUZZ
@given(data=st.data(), user=user_ids)
def test_continue(server, task_ids, data, user):
    body = data.draw(body_for("/continue", "post") | st.fixed_dictionaries(
        {"task_id": st.sampled_from(task_ids)},
        optional={"action": st.sampled_from(["continue", "finish", "retry", "cancel"])}))
    headers = _latin1({"X-User-Id": user} if user is not None else {})
    check(send(server, "post", "/continue", body=body, headers=headers), "/continue", "post")


@pytest.fixture(scope="module")
def prediction_ids(server, task_ids):
    """The predictions of the fuzz tasks' first steps, once the cron has created them."""
    import time

    deadline, found = time.time() + 20, []
    while time.time() < deadline and len(found) < len(task_ids):
        found = [s["prediction_id"] for t in task_ids
                 for s in requests.get(server.url + "/status", params={"task_id": t}, timeout=10,
                                       headers={"X-User-Id": USER}).json()["steps"][:1] if s["prediction_id"]]
        time.sleep(0.2)
    return found


def signed(body_text: str, message_id: str) -> dict:
    from devserver.replicate_sim import Simulator

    signer = Simulator(webhook_secret=SECRET)
    signer.server.server_close()
    stamp = int(__import__("time").time())
    return {"webhook-id": message_id, "webhook-timestamp": str(stamp),
            "webhook-signature": signer.sign(message_id, stamp, body_text.encode())}


@FUZZ
@given(data=st.data(), sign=st.sampled_from(["yes", "yes", "yes", "no", "forged"]))
def test_webhook(server, prediction_ids, data, sign):
    body = data.draw(body_for("/checker", "post") | st.fixed_dictionaries({
        "id": st.sampled_from(prediction_ids),
        "status": st.sampled_from(["starting", "processing", "succeeded", "failed", "canceled", "aborted"]),
    }, optional={
        # An output that is gone (the simulator answers 404): saving it fails for good, not for now.
        "output": st.none() | st.just(f"{server.sim_url}/files/gone/out-0.png"),
        "error": st.none() | st.text(max_size=20),
    }))
    text = body[1] if isinstance(body, tuple) else json.dumps(body)
    headers = {}
    if sign == "yes":
        headers = signed(text, "msg_fuzz")
    elif sign == "forged":
        headers = {**signed(text, "msg_fuzz"), "webhook-signature": "v1,Zm9yZ2Vk"}
    response = requests.post(server.url + "/checker", data=text.encode(), headers=headers, timeout=30)
    check(response, "/checker", "post")


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(["/worker", "/checker"]), secret=st.none() | st.text(max_size=10))
def test_cron_pings(server, path, secret):
    params = {"secret": secret} if secret is not None else None
    check(send(server, "get", path, params=params), path, "get")


@pytest.mark.parametrize("path", list(SPEC["paths"]))
def test_every_path_answers_its_preflight_as_declared(server, path):
    check(send(server, "options", path, headers={"Origin": "https://shop.example.com"}), path, "options")


def test_every_operation_in_the_spec_is_served(server):
    for path, item in SPEC["paths"].items():
        for method in item:
            response = send(server, method, path, body={} if method == "post" else None)
            assert response.status_code != 405, f"{method.upper()} {path} is in the spec but not served"


def _latin1(headers: dict) -> dict:
    """HTTP header values are bytes on the wire; keep what a client could actually send."""
    return {k: v.encode("latin-1", "ignore").decode("latin-1").strip().replace("\r", "").replace("\n", "")
            for k, v in headers.items()}
