"""Start under hostile input (issue 12.1, 12.7): text that cannot be encoded, files whose header
does not parse, photos too small, HEIC, credentials in URLs. Each is a 400 with a sentence, no row
and no stored file."""

import io
import json
from pathlib import Path

import pytest

from tests.conftest import GARMENTS, PERSON, data_uri, png_bytes, run_sql

HTTPS = "https://cdn.example.com/shirt.png"
LONE_SURROGATE = "\ud800"


def use_cursor(monkeypatch, cursor_class) -> None:
    """The functions' next connection (and every one after) makes its cursors from `cursor_class`."""
    from shared import db

    original = db._connect

    def connect(dsn, application_name):
        conn = original(dsn, application_name)
        conn.cursor_factory = cursor_class
        return conn

    db.close()
    monkeypatch.setattr(db, "_connect", connect)


def stored_files(env) -> list[Path]:
    return [p for p in Path(env["LOCAL_STORAGE_DIR"]).rglob("*") if p.is_file()]


def task_count(env) -> int:
    return run_sql(env["DATABASE_URL"], "SELECT count(*) FROM replicate_tasks")[0][0]


def raw_start(fn, body: dict, headers: dict | None = None):
    # json.dumps writes a lone surrogate as the valid JSON escape "\ud800", as a hostile client would.
    return fn.call("start", "POST", body=json.dumps(body), headers={"X-User-Id": "user-1", **(headers or {})})


def assert_refused(reply, env, code, *words):
    assert reply.status == 400, reply
    assert reply.body["code"] == code
    for word in words:
        assert word in reply.body["error"], reply.body["error"]
    assert task_count(env) == 0
    assert stored_files(env) == []


# --- 12.1: text that cannot be written ---------------------------------------------------------------

@pytest.mark.parametrize("body,field", [
    ({"person_image": PERSON, "garments": GARMENTS[:2], "prompt_hints": "summer" + LONE_SURROGATE}, "prompt_hints"),
    ({"person_image": PERSON + LONE_SURROGATE, "garments": GARMENTS[:2]}, "person_image"),
    ({"person_image": PERSON, "garments": [GARMENTS[0], {"image": GARMENTS[1], "description": "a" + LONE_SURROGATE}]},
     "garments[1].description"),
    ({"person_image": PERSON, "garments": [GARMENTS[0], HTTPS + "?x=" + LONE_SURROGATE]}, "garments[1]"),
    ({"person_image": PERSON, "garments": [{"image": GARMENTS[0], "category": LONE_SURROGATE}]}, "garments[0].category"),
    ({"person_image": PERSON, "garments": GARMENTS[:1], "user_id": "u" + LONE_SURROGATE}, "user_id"),
    ({"person_image": PERSON, "garments": GARMENTS[:1], LONE_SURROGATE: 1}, "field name"),
])
def test_a_lone_surrogate_anywhere_is_a_400_before_anything_is_written(fn, sim, env, body, field):
    reply = raw_start(fn, body)
    assert_refused(reply, env, "invalid_text", field, "not valid text")
    assert sim.stats["create_calls"] == 0


@pytest.mark.parametrize("header,value,code", [
    ("Idempotency-Key", "key-" + LONE_SURROGATE, "invalid_idempotency_key"),
    ("X-User-Id", "user" + LONE_SURROGATE, "invalid_user_id"),
])
def test_a_lone_surrogate_in_a_header_is_a_400(fn, env, header, value, code):
    reply = fn.call("start", "POST", body={"person_image": PERSON, "garments": GARMENTS[:1]},
                    headers={"X-User-Id": "user-1", header: value})
    assert_refused(reply, env, code)


def test_a_lone_surrogate_in_a_task_id_is_a_400_in_a_body_and_not_found_in_a_query(fn, env):
    reply = fn.act("1234" + LONE_SURROGATE)
    assert reply.status == 400 and reply.body["code"] == "invalid_text" and "task_id" in reply.body["error"]
    assert fn.status("x" + LONE_SURROGATE).status == 404


def test_when_the_insert_fails_the_files_just_written_are_deleted(fn, env, monkeypatch):
    from shared import start_queries

    monkeypatch.setattr(start_queries, "LOCKED_INSERT_TASK",
                        start_queries.LOCKED_INSERT_TASK.replace("'pending'", "'no-such-status'"))
    reply = fn.start({"person_image": PERSON, "garments": GARMENTS[:2]})
    assert reply.status == 500
    assert task_count(env) == 0
    assert stored_files(env) == []


def test_when_the_commits_answer_is_lost_the_saved_looks_files_stay(fn, env, monkeypatch):
    """COMMIT reached the server, its answer did not: the look is saved, so are its files (the page
    resends with the same Idempotency-Key and gets this look back; its step 1 needs them)."""
    import psycopg2.extensions

    from shared import db

    class LosesTheCommitsAnswer(psycopg2.extensions.cursor):
        def execute(self, query, vars=None):
            result = super().execute(query, vars)
            if query == "COMMIT":
                raise psycopg2.OperationalError("server closed the connection unexpectedly")
            return result

    with monkeypatch.context() as patch:
        use_cursor(patch, LosesTheCommitsAnswer)
        reply = fn.start({"person_image": PERSON, "garments": GARMENTS[:2]}, headers={"Idempotency-Key": "k-lost"})
    db.close()
    assert (reply.status, reply.body["code"]) == (503, "database_unavailable")
    assert task_count(env) == 1
    stored = sorted(path.name.split("-")[0] for path in stored_files(env))
    assert stored == ["garment", "garment", "person"]
    again = fn.start({"person_image": PERSON, "garments": GARMENTS[:2]}, headers={"Idempotency-Key": "k-lost"})
    assert again.status == 200 and again.body["replayed"] is True


# --- 12.7: images whose header must parse --------------------------------------------------------

def jpeg_bytes(size=(300, 400)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(out, format="JPEG")
    return out.getvalue()


def webp_bytes(size=(300, 400), lossless=False) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(out, format="WEBP", lossless=lossless)
    return out.getvalue()


@pytest.mark.parametrize("data,content_type", [
    (jpeg_bytes(), "image/jpeg"),
    (webp_bytes(), "image/webp"),
    (webp_bytes(lossless=True), "image/webp"),
    (png_bytes(size=(256, 256)), "image/png"),
])
def test_real_images_at_or_over_the_minimum_are_accepted(fn, env, data, content_type):
    reply = fn.start({"person_image": data_uri(data, content_type), "garments": [HTTPS]})
    assert reply.status == 200, reply
    assert len(stored_files(env)) == 1


@pytest.mark.parametrize("name,payload,words", [
    ("png magic then html", b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script></html>" + b" " * 64,
     ("not a readable PNG image",)),
    ("jpeg magic then zeros", b"\xff\xd8\xff\xe0" + b"\0" * 64, ("not a readable JPEG image",)),
    ("webp riff without a frame", b"RIFF\x10\x00\x00\x00WEBPJUNKJUNKJUNKJUNK", ("not a readable WEBP image",)),
    ("heic photo", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\0" * 64,
     ("HEIC is not supported", "JPEG or PNG")),
    ("gif", b"GIF89a\x00\x04\x00\x04\x00\x00\x00;", ("GIF is not supported",)),
    ("small person photo", png_bytes(size=(200, 300)), ("200x300 pixels", "at least 256 pixels")),
])
def test_an_image_whose_header_does_not_parse_or_is_too_small_is_a_400(fn, sim, env, name, payload, words):
    reply = fn.start({"person_image": data_uri(payload), "garments": GARMENTS[:1]})
    assert_refused(reply, env, "invalid_image", "person_image", *words)


def test_a_small_garment_is_a_400_naming_its_size(fn, env):
    reply = fn.start({"person_image": PERSON, "garments": [GARMENTS[0], data_uri(png_bytes(size=(256, 100)))]})
    assert_refused(reply, env, "invalid_image", "garments[1]", "256x100 pixels")


def png_claiming(width: int, height: int) -> bytes:
    """A small real PNG whose header claims another size (what a decompression bomb looks like
    before it is decoded)."""
    import struct

    data = bytearray(png_bytes(size=(300, 300)))
    data[16:24] = struct.pack(">II", width, height)  # IHDR's width and height
    return bytes(data)


@pytest.mark.parametrize("width,height", [(30000, 30000), (16385, 300), (8000, 6500)])
def test_an_image_claiming_too_many_pixels_is_a_400_naming_its_size(fn, env, width, height):
    reply = fn.start({"person_image": data_uri(png_claiming(width, height)), "garments": GARMENTS[:1]})
    assert_refused(reply, env, "invalid_image", "person_image", f"{width}x{height} pixels, too large")


def test_a_48_megapixel_phone_photo_is_within_the_size_limit(fn, env):
    assert fn.start({"person_image": data_uri(png_claiming(8064, 6048)), "garments": GARMENTS[:1]}).status == 200


def test_a_heic_data_uri_by_its_declared_type_gets_the_heic_sentence(fn, env):
    reply = fn.start({"person_image": "data:image/heic;base64,AAAAGGZ0eXBoZWlj", "garments": GARMENTS[:1]})
    assert_refused(reply, env, "invalid_image", "HEIC is not supported")


def test_a_line_wrapped_base64_data_uri_is_the_same_image(fn, env):
    # `base64` on the command line and MIME wrap at 76 columns.
    payload = data_uri(png_bytes(size=(300, 300))).split(",", 1)[1]
    wrapped = "\r\n".join(payload[i:i + 76] for i in range(0, len(payload), 76))
    reply = fn.start({"person_image": "data:image/png;base64," + wrapped + "\n", "garments": [HTTPS]})
    assert reply.status == 200, reply
    assert [path.read_bytes() for path in stored_files(env)] == [png_bytes(size=(300, 300))]


def test_whitespace_in_a_data_uri_costs_no_more_memory_than_the_body():
    import tracemalloc

    from shared.images import InvalidImage, parse_image

    body = "data:image/png;base64," + "A " * 1_750_000  # 3.5 MB: the platform's whole request
    tracemalloc.start()
    try:
        with pytest.raises(InvalidImage):
            parse_image(body, max_bytes=3 * 1024 * 1024)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * len(body), peak  # a few copies of the text at most, not a string per token


def test_min_image_side_is_configurable(fn, env, monkeypatch):
    monkeypatch.setenv("MIN_IMAGE_SIDE", "100")
    assert fn.start({"person_image": data_uri(png_bytes(size=(100, 120))), "garments": [HTTPS]}).status == 200


def test_a_url_with_user_and_password_says_why(fn, env):
    reply = fn.start({"person_image": "https://anna:secret@cdn.example.com/me.png", "garments": [HTTPS]})
    assert_refused(reply, env, "invalid_image", "user name or password")


# --- 10.9: ids that are not ours ---------------------------------------------------------------

@pytest.mark.parametrize("task_id", ["test-task-123", "1' OR '1'='1", "../../etc/passwd", "x" * 5000])
def test_a_task_id_that_is_not_ours_is_not_found_without_a_query(fn, env, monkeypatch, task_id):
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none?connect_timeout=1")  # no database
    for reply in (fn.status(task_id), fn.act(task_id), fn.act(task_id, "finish", user=None)):
        assert reply.status == 404, reply
        assert reply.body["code"] == "task_not_found" and isinstance(reply.body["error"], str)


# --- 12.6: a repeated Idempotency-Key before any cap -------------------------------------------------

def test_fifty_concurrent_starts_with_one_key_at_the_cap_all_get_the_same_task(fn, env, monkeypatch, task_factory):
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("MAX_ACTIVE_TASKS_PER_USER", "3")
    task_factory("processing", user_id="user-1", prediction_id="p-a")
    task_factory("processing", user_id="user-1", prediction_id="p-b")
    body = {"person_image": PERSON, "garments": GARMENTS[:2]}
    with ThreadPoolExecutor(50) as pool:
        replies = list(pool.map(lambda _: fn.start(body, headers={"Idempotency-Key": "one-click"}), range(50)))
    assert [r.status for r in replies].count(429) == 0, [r.body for r in replies if r.status != 200][:3]
    assert {r.status for r in replies} == {200}
    assert len({r.body["task_id"] for r in replies}) == 1
    assert task_count(env) == 3
    assert len(stored_files(env)) == 3  # one look's photo and two garments, written once


@pytest.fixture(scope="module")
def slow_devserver(tmp_path_factory):
    from tests.conftest import start_devserver

    # No cron and slow predictions: looks stay in progress while the test runs.
    server = start_devserver(tmp_path_factory.mktemp("slow-devserver"), "--no-cron", "--sim-seconds", "600",
                             env_overrides={"MAX_ACTIVE_TASKS_PER_USER": "3"})
    yield server
    server.stop()


def test_fifty_concurrent_starts_with_one_key_over_http_all_get_the_same_task(slow_devserver):
    from concurrent.futures import ThreadPoolExecutor

    import requests

    url, headers = slow_devserver.url + "/start", {"X-User-Id": "http-user"}
    body = {"person_image": PERSON, "garments": GARMENTS[:1]}
    for _ in range(2):
        assert requests.post(url, json=body, headers=headers, timeout=30).status_code == 200
    with ThreadPoolExecutor(50) as pool:
        replies = list(pool.map(lambda _: requests.post(url, json=body, timeout=60,
                                                        headers={**headers, "Idempotency-Key": "http-click"}),
                                range(50)))
    assert [r.status_code for r in replies] == [200] * 50, [r.text for r in replies if r.status_code != 200][:3]
    assert len({r.json()["task_id"] for r in replies}) == 1
    # The cap still holds for a new key: 3 looks in progress.
    third = requests.post(url, json=body, headers={**headers, "Idempotency-Key": "another"}, timeout=30)
    assert third.status_code == 429 and third.json()["code"] == "too_many_active_tasks"


# --- 10.1: caps count spending, not waiting --------------------------------------------------------

def test_five_looks_abandoned_at_step_one_do_not_block_a_sixth_start_with_default_caps(fn, env, monkeypatch,
                                                                                       task_factory):
    monkeypatch.delenv("MAX_ACTIVE_TASKS_PER_USER")  # the default, 3
    for _ in range(5):
        task_factory("waiting_continue", user_id="user-1")
    assert fn.start({"person_image": PERSON, "garments": GARMENTS[:1]}).status == 200


def test_looks_pending_or_processing_still_count_against_the_cap(fn, env, monkeypatch, task_factory):
    monkeypatch.delenv("MAX_ACTIVE_TASKS_PER_USER")
    task_factory("pending", user_id="user-1")
    task_factory("processing", user_id="user-1")
    task_factory("waiting_continue", user_id="user-1")
    assert fn.start({"person_image": PERSON, "garments": GARMENTS[:1]}).status == 200  # the 3rd in progress
    reply = fn.start({"person_image": PERSON, "garments": GARMENTS[:1]})
    assert reply.status == 429 and reply.body["code"] == "too_many_active_tasks"
    assert "You already have 3 looks in progress." in reply.body["error"]
    assert task_count(env) == 4 and len(stored_files(env)) == 2  # the refused start wrote nothing


def test_site_wide_active_cap_counts_pending_and_processing_only(fn, env, monkeypatch, task_factory):
    monkeypatch.setenv("MAX_ACTIVE_TASKS", "2")
    task_factory("waiting_continue", user_id="someone")
    task_factory("processing", user_id="someone")
    assert fn.start({"person_image": PERSON, "garments": GARMENTS[:1]}).status == 200
    reply = fn.start({"person_image": PERSON, "garments": GARMENTS[:1]}, user="user-2")
    assert reply.status == 429 and reply.body["code"] == "service_busy"


# --- 10.5: stored images reveal nothing ------------------------------------------------------------

def test_no_stored_url_of_a_look_contains_its_task_id(fn, sim, env):
    from tests.conftest import drive

    task_id = fn.start({"person_image": PERSON, "garments": GARMENTS[:2]}).body["task_id"]
    drive(fn, task_id, "waiting_continue")
    fn.act(task_id, "continue")
    view = drive(fn, task_id, "completed")
    person, garments, steps = run_sql(env["DATABASE_URL"], """
        SELECT person_image, garments,
               (SELECT string_agg(image_url, ' ') FROM replicate_task_steps WHERE task_id = t.id)
        FROM replicate_tasks t WHERE id = %s""", (task_id,))[0]
    urls = [person, *[g["image"] for g in json.loads(garments)], *steps.split(), view["result_url"],
            view["intermediate_result"], *[s["image_url"] for s in view["steps"]]]
    assert len(urls) == 9 and all(url.startswith(env["PUBLIC_FILES_URL"] + "/looks/") for url in urls), urls
    assert not any(task_id in url or task_id.replace("-", "") in url for url in urls)
    assert len({url.split("/")[-2] for url in urls}) == 1  # one folder per look
    assert len(stored_files(env)) == 5  # photo, two garments, two steps


def test_images_of_looks_stored_under_the_old_keys_are_still_read(env):
    from shared.settings import load
    from shared.storage import from_settings

    store = from_settings(load())
    old = "tasks/00000000-0000-4000-8000-000000000000/step-1-1.png"
    url = store.put(old, png_bytes(), "image/png")
    assert store.key_of(url) == old and store.get(old) == png_bytes()


# --- 13: start in four round trips ------------------------------------------------------------------

@pytest.fixture
def statements(monkeypatch):
    import psycopg2.extensions

    from shared import db

    executed: list[str] = []

    class Counting(psycopg2.extensions.cursor):
        def execute(self, query, vars=None):
            executed.append(query.strip() if isinstance(query, str) else "?")
            return super().execute(query, vars)

    use_cursor(monkeypatch, Counting)
    yield executed
    db.close()


def test_start_runs_in_four_round_trips(fn, env, statements):
    from shared import start_queries

    reply = fn.start({"person_image": PERSON, "garments": GARMENTS[:3]}, headers={"Idempotency-Key": "k-1"})
    assert reply.status == 200
    assert [sql.split()[0] for sql in statements] == ["BEGIN", "SELECT", "SELECT", "COMMIT"], statements
    # The third: the spending locks, then the INSERT (a second statement, so its snapshot follows them).
    assert statements[2] == start_queries.LOCKED_INSERT_TASK.strip()
    assert statements[2].startswith(start_queries.LOCK_SPENDING) and "INSERT INTO replicate_tasks" in statements[2]
    statements.clear()
    assert fn.start({"person_image": PERSON, "garments": GARMENTS[:3]}, headers={"Idempotency-Key": "k-1"}).status == 200
    assert len(statements) == 3, statements  # a replay: BEGIN, the checks, COMMIT


def test_the_estimate_is_the_median_of_recent_steps(fn, env, task_factory):
    task_id = task_factory("completed")
    run_sql(env["DATABASE_URL"], """
        INSERT INTO replicate_task_steps (task_id, step, attempt, status, image_url, started_at, completed_at)
        SELECT %s, n, 1, 'succeeded', 'https://img/x.png', NOW() - make_interval(secs => 20 + n), NOW()
        FROM generate_series(1, 3) AS n""", (task_id,))
    reply = fn.start({"person_image": PERSON, "garments": GARMENTS[:2]})
    assert reply.body["estimated_time_seconds"] == 22 * 2 + 5
