"""An attacker's pass: values that pass a first look but broke the database driver or the UTF-8
encoder, and so became 500s (Guarantee 5: bad input never yields a 500)."""

import base64
import json

import pytest

SECRET = "s3cret-value"


def forged_cursor(created: str, task_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created, task_id]).encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    forged_cursor("2020-01-01 00:00:00", "a\u0000b"),  # psycopg2: a NUL in a string literal
    forged_cursor("2020-01-01 00:00:00", "\ud800"),  # not encodable as UTF-8
    forged_cursor("2020-W01-1", "x"),  # Python's fromisoformat reads ISO weeks; PostgreSQL does not
    forged_cursor("20200101T000000", "x"),
    base64.urlsafe_b64encode(b"[" * 2000).decode(),  # json.loads: RecursionError
])
def test_a_forged_cursor_is_a_400_not_a_500(fn, env, cursor):
    reply = fn.call("status", "GET", query={"mine": "true", "cursor": cursor}, headers={"X-User-Id": "anna"})
    assert reply.status == 400 and reply.body["code"] == "invalid_cursor", reply


@pytest.mark.parametrize("name", ["worker", "checker"])
@pytest.mark.parametrize("where", ["header", "query"])
def test_a_cron_secret_that_is_not_text_is_refused_not_a_500(fn, sim, monkeypatch, name, where):
    monkeypatch.setenv("CRON_SECRET", SECRET)
    given = {"X-Cron-Secret": "\ud800"} if where == "header" else {}
    calls = dict(sim.stats)
    reply = fn.call(name, "GET", headers=given, query={} if where == "header" else {"secret": "\ud800"})
    assert reply.status in (400, 401), reply
    assert dict(sim.stats) == calls  # no run: nothing was asked of Replicate


@pytest.mark.parametrize("query", [
    {"task": "\ud800", "step": "1", "attempt": "1", "token": "0" * 40},
    {"task": "t", "step": "1", "attempt": "1", "token": "\ud800"},
])
def test_a_webhook_url_query_that_is_not_text_is_refused_not_a_500(fn, sim, query):
    calls = dict(sim.stats)
    reply = fn.call("checker", "POST", body={"id": "abc", "status": "succeeded"}, query=query)
    assert reply.status in (400, 401), reply
    assert dict(sim.stats) == calls
