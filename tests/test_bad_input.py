"""Bad input: a clear 4xx JSON error with CORS headers, nothing written, nothing sent to Replicate."""

import base64
import json
import re
import uuid

import pytest

from tests.conftest import GARMENTS, PERSON, make_event, png_bytes, run_sql

HTTPS_IMAGE = "https://cdn.example.com/shirt.png"
GIF = "data:image/gif;base64," + base64.b64encode(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;").decode()
HTML_AS_PNG = "data:image/png;base64," + base64.b64encode(b"<html><script>alert(1)</script></html>").decode()
TOO_BIG = "data:image/png;base64," + base64.b64encode(png_bytes() + b"\0" * (3 * 1024 * 1024)).decode()


def start_case(body, status=400, headers=None, code=None):
    return ("start", "POST", body, {"X-User-Id": "user-1", **(headers or {})}, None, status, code)


START_CASES = {
    "not json": start_case("{person_image:", code="invalid_json"),
    "json array": start_case("[1, 2]", code="invalid_json"),
    "json string": start_case('"hello"', code="invalid_json"),
    "empty object": start_case({}, code="missing_field"),
    "no person": start_case({"garments": [HTTPS_IMAGE]}, code="missing_field"),
    "no garments": start_case({"person_image": HTTPS_IMAGE}, code="missing_field"),
    "garments not a list": start_case({"person_image": HTTPS_IMAGE, "garments": HTTPS_IMAGE}),
    "garments empty": start_case({"person_image": HTTPS_IMAGE, "garments": []}),
    "six garments": start_case({"person_image": HTTPS_IMAGE, "garments": [HTTPS_IMAGE] * 6}, code="too_many_garments"),
    "person a number": start_case({"person_image": 42, "garments": [HTTPS_IMAGE]}, code="invalid_image"),
    "garment a number": start_case({"person_image": HTTPS_IMAGE, "garments": [7]}),
    "garment object without image": start_case({"person_image": HTTPS_IMAGE, "garments": [{"category": "dresses"}]}),
    "unknown category": start_case({"person_image": HTTPS_IMAGE, "garments": [{"image": HTTPS_IMAGE, "category": "hats"}]}),
    "description not text": start_case({"person_image": HTTPS_IMAGE, "garments": [{"image": HTTPS_IMAGE, "description": ["x"]}]}),
    "description too long": start_case({"person_image": HTTPS_IMAGE, "garments": [{"image": HTTPS_IMAGE, "description": "x" * 301}]}),
    "prompt hints not text": start_case({"person_image": HTTPS_IMAGE, "garments": [HTTPS_IMAGE], "prompt_hints": {"a": 1}}),
    "plain http url": start_case({"person_image": "http://example.com/me.png", "garments": [HTTPS_IMAGE]}, code="invalid_image"),
    "ftp url": start_case({"person_image": "ftp://example.com/me.png", "garments": [HTTPS_IMAGE]}, code="invalid_image"),
    "javascript url": start_case({"person_image": "javascript:alert(1)", "garments": [HTTPS_IMAGE]}, code="invalid_image"),
    "file url": start_case({"person_image": "file:///etc/passwd", "garments": [HTTPS_IMAGE]}, code="invalid_image"),
    "path traversal as image": start_case({"person_image": "../../etc/passwd", "garments": [HTTPS_IMAGE]}, code="invalid_image"),
    "credentials in url": start_case({"person_image": "https://admin:hunter2@example.com/me.png", "garments": [HTTPS_IMAGE]}, code="invalid_image"),
    "url with spaces": start_case({"person_image": "https://example.com/my photo.png", "garments": [HTTPS_IMAGE]}, code="invalid_image"),
    "header injection in url": start_case({"person_image": "https://example.com/a.png\r\nX-Evil: 1", "garments": [HTTPS_IMAGE]}, code="invalid_image"),
    "url too long": start_case({"person_image": "https://example.com/" + "a" * 3000, "garments": [HTTPS_IMAGE]}, code="invalid_image"),
    "broken base64": start_case({"person_image": "data:image/png;base64,@@@not-base64@@@", "garments": [HTTPS_IMAGE]}, code="invalid_image"),
    "data uri without base64": start_case({"person_image": "data:image/png,rawbytes", "garments": [HTTPS_IMAGE]}, code="invalid_image"),
    "data uri not an image type": start_case({"person_image": "data:text/html;base64,PGgxPg==", "garments": [HTTPS_IMAGE]}, code="invalid_image"),
    "html pretending to be png": start_case({"person_image": HTML_AS_PNG, "garments": [HTTPS_IMAGE]}, code="invalid_image"),
    "gif is not accepted": start_case({"person_image": GIF, "garments": [HTTPS_IMAGE]}, code="invalid_image"),
    "image over 3 MB": start_case({"person_image": TOO_BIG, "garments": [HTTPS_IMAGE]}, code="invalid_image"),
    "no user at all": start_case({"person_image": PERSON, "garments": GARMENTS[:1]}, status=401, headers={"X-User-Id": ""}, code="user_required"),
    "user id with sql": start_case({"person_image": PERSON, "garments": GARMENTS[:1]}, headers={"X-User-Id": "x'; DROP TABLE replicate_tasks; --"}, code="invalid_user_id"),
    "body user id not text": ("start", "POST", {"person_image": PERSON, "garments": GARMENTS[:1], "user_id": 5}, {}, None, 400, "invalid_user_id"),
    "script in user id": start_case({"person_image": PERSON, "garments": GARMENTS[:1]}, headers={"X-User-Id": "<script>alert(1)</script>"}, code="invalid_user_id"),
    "bad idempotency key": start_case({"person_image": PERSON, "garments": GARMENTS[:1]}, headers={"Idempotency-Key": "a b"}, code="invalid_idempotency_key"),
    "deeply nested json": start_case("[" * 100000 + "]" * 100000, code="invalid_json"),
    "start with GET": ("start", "GET", None, {"X-User-Id": "user-1"}, None, 405, "method_not_allowed"),
    "start with PUT": ("start", "PUT", {"person_image": PERSON, "garments": GARMENTS[:1]}, {"X-User-Id": "user-1"}, None, 405, None),
}

TASK = str(uuid.uuid4())
OTHER_CASES = {
    "status without task id": ("status", "GET", None, {}, {}, 400, "missing_field"),
    "status with sql in task id": ("status", "GET", None, {}, {"task_id": "1' OR '1'='1"}, 404, "task_not_found"),
    "status with path traversal id": ("status", "GET", None, {}, {"task_id": "../../etc/passwd"}, 404, "task_not_found"),
    "status with POST": ("status", "POST", {"task_id": TASK}, {}, None, 405, None),
    "status of an unknown task": ("status", "GET", None, {}, {"task_id": TASK}, 404, "task_not_found"),
    "continue without task id": ("continue_", "POST", {}, {}, None, 400, "missing_field"),
    "continue with numeric task id": ("continue_", "POST", {"task_id": 12345}, {}, None, 404, "task_not_found"),
    "continue with unknown action": ("continue_", "POST", {"task_id": TASK, "action": "explode"}, {}, None, 400, "invalid_action"),
    "continue with action not text": ("continue_", "POST", {"task_id": TASK, "action": ["finish"]}, {}, None, 400, "invalid_action"),
    "continue with bad json": ("continue_", "POST", "{task_id", {}, None, 400, "invalid_json"),
    "continue with GET": ("continue_", "GET", None, {}, {"task_id": TASK}, 405, None),
    "continue on an unknown task": ("continue_", "POST", {"task_id": TASK}, {}, None, 404, "task_not_found"),
    "worker with DELETE": ("worker", "DELETE", None, {}, None, 405, None),
}


def table_counts(url):
    return run_sql(url, "SELECT (SELECT count(*) FROM replicate_tasks), (SELECT count(*) FROM replicate_task_steps)")[0]


@pytest.mark.parametrize("case", list(START_CASES) + list(OTHER_CASES))
def test_bad_request_is_a_clear_4xx_json_error_with_cors_and_no_side_effect(fn, sim, env, case):
    name, method, body, headers, query, status, code = {**START_CASES, **OTHER_CASES}[case]
    if not isinstance(body, (str, type(None))):
        body = json.dumps(body)
    reply = fn.call(name, method, body=body, headers=headers, query=query)
    assert reply.status == status, reply
    assert set(reply.body) >= {"error", "code"}
    assert isinstance(reply.body["error"], str) and 5 < len(reply.body["error"]) < 300
    assert "Traceback" not in reply.raw["body"] and "psycopg2" not in reply.raw["body"]
    if code:
        assert reply.body["code"] == code
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert reply.headers["Content-Type"].startswith("application/json")
    assert table_counts(env["DATABASE_URL"]) == (0, 0)
    assert sim.stats["create_calls"] == 0


def test_an_error_names_the_field_that_is_wrong(fn):
    reply = fn.start({"person_image": PERSON, "garments": [GARMENTS[0], {"image": "http://example.com/x.png"}]})
    assert reply.status == 400
    assert reply.body["error"].startswith("garments[1].image must use https://")


def test_a_body_over_the_size_limit_is_a_413(fn, env, monkeypatch):
    monkeypatch.setenv("MAX_IMAGE_BYTES", "10000")
    monkeypatch.setenv("MAX_GARMENTS", "1")
    reply = fn.start({"person_image": PERSON, "garments": GARMENTS[:1], "prompt_hints": "x" * 200_000})
    assert reply.status == 413
    assert reply.body["code"] == "payload_too_large"
    # A cap under a megabyte is still stated as a size a person can use, not "0 MB".
    assert re.fullmatch(r"The request is larger than 0\.0\d+ MB\. Send smaller images or image URLs\.", reply.body["error"])
    assert table_counts(env["DATABASE_URL"]) == (0, 0)


def test_a_base64_body_that_is_not_base64_is_a_400(fn):
    event = make_event("POST", body="not base64 !!!", headers={"X-User-Id": "u"})
    event["isBase64Encoded"] = True
    reply = fn.call("start", event=event)
    assert reply.status == 400 and reply.body["code"] == "invalid_body"


def test_an_event_that_is_not_an_object_is_a_400_not_a_crash(fn):
    reply = fn.call("status", event=["not", "an", "event"])
    assert reply.status == 400
