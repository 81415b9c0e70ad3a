"""My looks (status?mine=true) and share links (continue share/unshare, status?share=<token>)."""

import base64
import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg2
import pytest
import requests

from shared import look_queries
from tests.conftest import drive, look, run_sql


def mine(fn, user="anna", cursor=None, headers=None):
    query = {"mine": "true", **({"cursor": cursor} if cursor else {})}
    return fn.call("status", "GET", query=query, headers={"X-User-Id": user} if user else (headers or {}))


def make_looks(database_url, user, n):
    """n looks of one user, one second apart: the i-th is the i-th newest last."""
    run_sql(database_url, """
        INSERT INTO replicate_tasks (id, user_id, status, person_image, garments, current_step, total_steps,
                                     intermediate_result, created_at, updated_at)
        SELECT gen_random_uuid()::text, %s, 'waiting_continue', 'https://img/p.png', '["https://img/g.png"]', 1, 2,
               'https://img/' || n || '.png', LOCALTIMESTAMP - make_interval(secs => n), LOCALTIMESTAMP
        FROM generate_series(1, %s) AS n""", (user, n))
    return [row[0] for row in run_sql(database_url, "SELECT id FROM replicate_tasks WHERE user_id = %s "
                                                    "ORDER BY created_at DESC, id DESC", (user,))]


# --- my looks --------------------------------------------------------------------------------------

def test_my_looks_pages_newest_first_20_at_a_time(fn, env):
    expected = make_looks(env["DATABASE_URL"], "anna", 45)
    make_looks(env["DATABASE_URL"], "boris", 3)

    seen, cursor, pages = [], None, 0
    while True:
        reply = mine(fn, cursor=cursor)
        assert reply.status == 200, reply
        pages += 1
        assert len(reply.body["looks"]) == (20 if pages < 3 else 5)
        seen += [look["task_id"] for look in reply.body["looks"]]
        cursor = reply.body["next"]
        if cursor is None:
            break
    assert pages == 3 and seen == expected  # every look once, newest first, none of boris's
    created = [look["created_at"] for look in mine(fn).body["looks"]]
    assert created == sorted(created, reverse=True) and len(set(created)) == 20  # what the order follows


def test_a_look_in_the_list_has_its_thumbnail_and_the_actions_of_the_transitions_table(fn, env, task_factory):
    waiting = task_factory("waiting_continue", user_id="anna", intermediate_result="https://img/w.png")
    failed = task_factory("failed", user_id="anna")
    done = task_factory("completed", user_id="anna")
    looks = {look["task_id"]: look for look in mine(fn).body["looks"]}

    assert set(looks[waiting]) == {"task_id", "status", "current_step", "total_steps", "thumbnail", "created_at",
                                   "updated_at", "actions"}
    assert looks[waiting]["thumbnail"] == "https://img/w.png"
    assert looks[waiting]["actions"] == ["continue", "finish"]
    assert looks[failed]["actions"] == ["retry"] and looks[failed]["thumbnail"] is None
    assert looks[done]["actions"] == [] and looks[done]["thumbnail"] == "https://img/2.png"
    assert looks[done]["updated_at"].endswith("Z") and looks[done]["created_at"].endswith("Z")


def test_my_looks_needs_a_user(fn, env):
    reply = mine(fn, user=None)
    assert reply.status == 401 and reply.body["code"] == "user_required"


def test_a_cursor_paged_concurrently_with_new_looks_neither_skips_nor_repeats(fn, env):
    first = make_looks(env["DATABASE_URL"], "anna", 25)
    page = mine(fn).body
    make_looks(env["DATABASE_URL"], "anna", 1)  # a newer look arrives between the pages
    rest = mine(fn, cursor=page["next"]).body
    assert [look["task_id"] for look in page["looks"] + rest["looks"]] == first


@pytest.mark.parametrize("cursor", ["nope", "!!!", base64.urlsafe_b64encode(b'["not a time", "x"]').decode(),
                                    base64.urlsafe_b64encode(b'{"a": 1}').decode()])
def test_a_cursor_we_did_not_give_out_is_a_400(fn, env, cursor):
    reply = mine(fn, cursor=cursor)
    assert reply.status == 400 and reply.body["code"] == "invalid_cursor"


@pytest.fixture
def million_looks(database_url):
    """1,000,000 looks: 10,000 users with 100 each, one user with 100,000."""
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("""
        INSERT INTO replicate_tasks (id, user_id, status, person_image, garments, current_step, total_steps,
                                     result_url, created_at, updated_at)
        SELECT md5(n::text), CASE WHEN n <= 100000 THEN 'heavy' ELSE 'user-' || (n % 10000) END, 'completed',
               'p', '[]', 1, 1, 'r', LOCALTIMESTAMP - make_interval(secs => n), LOCALTIMESTAMP
        FROM generate_series(1, 1000000) AS n""")
    cur.execute("ANALYZE replicate_tasks")
    yield cur
    conn.close()


def actual_rows_read(cur, sql, params):
    cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
    plan = cur.fetchone()[0][0]["Plan"]
    nodes, rows_read = [], 0
    stack = [plan]
    while stack:
        node = stack.pop()
        nodes.append(node["Node Type"])
        if node.get("Relation Name") == "replicate_tasks":
            rows_read += node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
        stack += node.get("Plans", [])
    return nodes, rows_read


def test_a_page_of_my_looks_reads_one_page_of_rows_at_a_million_looks(million_looks):
    cur = million_looks
    cur.execute("SELECT created_at::text, id FROM replicate_tasks WHERE user_id = 'heavy' "
                "ORDER BY created_at DESC, id DESC OFFSET 50000 LIMIT 1")
    created, task_id = cur.fetchone()
    for sql, params in ((look_queries.MY_LOOKS, {"user_id": "heavy", "limit": 21}),
                        (look_queries.MY_LOOKS_AFTER, {"user_id": "heavy", "limit": 21, "created": created, "id": task_id})):
        nodes, rows_read = actual_rows_read(cur, sql, params)
        assert "Seq Scan" not in nodes and "Sort" not in nodes, nodes
        assert rows_read <= 21, (nodes, rows_read)


# --- share links -----------------------------------------------------------------------------------

def act(fn, task_id, action, user="anna", origin=None):
    headers = {"X-User-Id": user} if user else {}
    if origin:
        headers["Origin"] = origin
    return fn.call("continue_", "POST", body={"task_id": task_id, "action": action}, headers=headers)


def shared(fn, token):
    return fn.call("status", "GET", query={"share": token})


def token_of(share_url):
    return parse_qs(urlsplit(share_url).query)["share"][0]


def test_the_owner_shares_a_read_only_view_without_names_actions_or_prompt(fn, env, task_factory):
    task_id = task_factory("waiting_continue", user_id="anna", prompt_hints="my secret wedding",
                           intermediate_result="https://img/1.png")
    reply = act(fn, task_id, "share", origin="http://shop.example")
    assert reply.status == 200, reply
    url = reply.body["share_url"]
    assert url.startswith("http://shop.example/?share=")
    token = token_of(url)
    assert len(base64.urlsafe_b64decode(token + "==")) * 8 >= 128

    view = shared(fn, token)
    assert view.status == 200
    assert view.body["status"] == "waiting_continue" and view.body["total_steps"] == 2
    assert view.body["intermediate_result"] == "https://img/1.png"
    text = json.dumps(view.body)
    for leaked in (task_id, "anna", "my secret wedding", "actions", "prediction"):
        assert leaked not in text
    # Only a hash of the token is stored.
    assert run_sql(env["DATABASE_URL"], "SELECT count(*) FROM replicate_task_shares WHERE token_hash = %s",
                   (token,)) == [(0,)]


def test_public_page_url_wins_over_the_origin(fn, env, task_factory, monkeypatch):
    monkeypatch.setenv("PUBLIC_PAGE_URL", "https://fitting-room.example/try/")
    task_id = task_factory("completed", user_id="anna")
    url = act(fn, task_id, "share", origin="http://other.example").body["share_url"]
    assert url.startswith("https://fitting-room.example/try/?share=")


@pytest.mark.parametrize(("page_url", "link"), [
    ("https://shop.example/tryon?lang=en", "https://shop.example/tryon?lang=en&share={}"),
    ("https://shop.example/tryon?", "https://shop.example/tryon?share={}"),
    ("https://shop.example/#/tryon", "https://shop.example/?share={}#/tryon"),
    ("https://shop.example/p?x=1#top", "https://shop.example/p?x=1&share={}#top"),
])
def test_a_page_url_with_a_query_or_fragment_gets_the_token_in_its_query(fn, env, task_factory, monkeypatch,
                                                                          page_url, link):
    monkeypatch.setenv("PUBLIC_PAGE_URL", page_url)
    task_id = task_factory("completed", user_id="anna")
    body = act(fn, task_id, "share").body
    assert body["share_url"] == link.format(body["share_token"])
    assert shared(fn, body["share_token"]).status == 200


def test_a_server_side_caller_gets_the_token_to_build_its_own_link(fn, env, task_factory):
    task_id = task_factory("completed", user_id="anna")
    body = act(fn, task_id, "share").body  # no Origin, no PUBLIC_PAGE_URL: no page to name
    assert body["share_url"] == f"?share={body['share_token']}"
    assert shared(fn, body["share_token"]).status == 200


def test_an_allowed_origin_matches_whatever_its_case(fn, env, task_factory, monkeypatch):
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://Admin.Shop.example/, https://other.example")
    task_id = task_factory("completed", user_id="anna")
    reply = act(fn, task_id, "share", origin="https://admin.shop.example")
    assert reply.headers["Access-Control-Allow-Origin"] == "https://admin.shop.example"
    assert reply.body["share_url"].startswith("https://admin.shop.example/?share=")
    refused = act(fn, task_id, "share", origin="https://evil.example")
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert refused.body["share_url"].startswith("?share=")


def test_unshare_revokes_every_link(fn, env, task_factory):
    task_id = task_factory("completed", user_id="anna")
    tokens = [token_of(act(fn, task_id, "share").body["share_url"]) for _ in range(2)]
    assert all(shared(fn, token).status == 200 for token in tokens)
    assert act(fn, task_id, "unshare").status == 200
    for token in tokens:
        reply = shared(fn, token)
        assert reply.status == 404 and reply.body["code"] == "share_not_found"


def test_a_shared_look_gives_away_none_of_its_other_files(fn, env, sim):
    """A shared view shows step images, and so the look's folder: the person's photo, the garments and
    a step made after the link was revoked must not be a guess away in it."""
    task_id = fn.start(look(2), user="anna").body["task_id"]
    drive(fn, task_id, "waiting_continue", user="anna")
    token = act(fn, task_id, "share").body["share_token"]
    seen = shared(fn, token).body
    folder_url = seen["intermediate_result"].rsplit("/", 1)[0]
    folder = Path(env["LOCAL_STORAGE_DIR"]) / folder_url[len(env["PUBLIC_FILES_URL"]) + 1:]
    assert act(fn, task_id, "unshare").status == 200
    assert act(fn, task_id, "continue").status == 200
    drive(fn, task_id, "completed", user="anna")
    stored = sorted(path.name for path in folder.iterdir())
    assert len(stored) == 5  # the person, two garments, two steps
    assert all(re.fullmatch(r"(person|garment-\d|step-\d-\d)-[0-9a-f]{16}\.png", name) for name in stored), stored
    assert len({name.rsplit("-", 1)[1] for name in stored}) == 5  # no tag repeats: none tells another
    for guess in ("person.png", "garment-1.png", "step-2-1.png"):
        assert requests.get(f"{folder_url}/{guess}", timeout=5).status_code == 404


@pytest.mark.parametrize("token", ["x" * 32, "short", "", "../../etc", "a" * 300])
def test_an_unknown_token_is_a_404(fn, env, token):
    assert shared(fn, token).status == 404


def test_only_the_owner_shares(fn, env, task_factory):
    task_id = task_factory("completed", user_id="anna")
    assert act(fn, task_id, "share", user=None).status == 401
    assert act(fn, task_id, "share", user="boris").status == 404
    assert act(fn, task_id, "unshare", user="boris").status == 404
    assert run_sql(env["DATABASE_URL"], "SELECT count(*) FROM replicate_task_shares") == [(0,)]
