"""start: images by URL or data URI, garments as strings or objects, descriptions and categories
into the model input, Idempotency-Key, and the poke that never delays the answer."""

import http.server
import re
import threading
import typing
from pathlib import Path

import psycopg2
import pytest

from tests.conftest import GARMENTS, PERSON, drive, look, wait_until

URL_PERSON = "https://cdn.example.com/people/anna.jpg"
URL_SHIRT = "https://cdn.example.com/garments/shirt.png"


def test_https_url_images_are_kept_as_given_and_sent_to_the_model(fn, sim):
    task_id = fn.start({"person_image": URL_PERSON, "garments": [URL_SHIRT]}).body["task_id"]
    fn.worker()
    model_input = sim.created_inputs()[0]
    assert (model_input["human_img"], model_input["garm_img"]) == (URL_PERSON, URL_SHIRT)
    assert fn.status(task_id).body["steps"][0]["garment"]["image"] == URL_SHIRT


def test_data_uri_images_are_stored_first_and_the_task_keeps_their_urls(fn, sim, env):
    task_id = fn.start(look(2)).body["task_id"]
    conn = psycopg2.connect(env["DATABASE_URL"])
    with conn.cursor() as cur:
        cur.execute("SELECT person_image, garments FROM replicate_tasks WHERE id = %s", (task_id,))
        person, garments = cur.fetchone()
    conn.close()
    assert re.fullmatch(re.escape(env["PUBLIC_FILES_URL"]) + r"/looks/[A-Za-z0-9_-]{22}/person-[0-9a-f]{16}\.png", person)
    assert "data:" not in garments
    folder = person[len(env["PUBLIC_FILES_URL"]) + 1:].rsplit("/", 1)[0]
    assert len(list((Path(env["LOCAL_STORAGE_DIR"]) / folder).glob("garment-2-*.png"))) == 1


def test_without_storage_data_uris_are_kept_as_they_came(fn, sim, env, monkeypatch):
    monkeypatch.delenv("LOCAL_STORAGE_DIR")
    task_id = fn.start(look(1)).body["task_id"]
    fn.worker()
    assert sim.created_inputs()[0]["human_img"] == PERSON
    assert drive(fn, task_id, "completed")["result_url"].startswith(sim.url + "/files/")


def test_garment_objects_carry_description_and_category_into_the_model_input(fn, sim):
    fn.start({
        "person_image": PERSON,
        "prompt_hints": "casual summer look",
        "garments": [
            {"image": GARMENTS[0], "description": "white linen trousers", "category": "lower_body"},
            {"image": GARMENTS[1], "category": "dresses"},
            GARMENTS[2],
        ],
    })
    fn.worker()
    first = sim.created_inputs()[0]
    assert first["category"] == "lower_body"
    assert first["garment_des"] == "white linen trousers. casual summer look"
    assert set(first) == {"human_img", "garm_img", "garment_des", "category"}


def test_categories_default_to_upper_body_and_descriptions_to_a_category_word(fn, sim):
    task_id = fn.start({"person_image": PERSON, "garments": [{"image": GARMENTS[0]}, GARMENTS[1]]}).body["task_id"]
    fn.worker()
    assert sim.created_inputs()[0]["category"] == "upper_body"
    assert sim.created_inputs()[0]["garment_des"] == "top"
    assert [s["garment"]["category"] for s in fn.status(task_id).body["steps"]] == ["upper_body", "upper_body"]


def test_max_garments_is_configurable(fn, monkeypatch):
    monkeypatch.setenv("MAX_GARMENTS", "2")
    assert fn.start(look(2)).status == 200
    reply = fn.start(look(3))
    assert reply.status == 400 and reply.body["error"] == "At most 2 garments can be tried on in one look."


def test_the_same_idempotency_key_returns_the_same_task(fn, sim):
    first = fn.start(look(2), headers={"Idempotency-Key": "click-42"})
    second = fn.start(look(2), headers={"Idempotency-Key": "click-42"})
    assert first.status == second.status == 200
    assert second.body["task_id"] == first.body["task_id"]
    assert second.body["replayed"] is True
    other_user = fn.start(look(2), user="user-2", headers={"Idempotency-Key": "click-42"})
    assert other_user.body["task_id"] != first.body["task_id"]
    assert fn.worker().body["started"] == 2


def test_an_idempotency_key_reused_for_a_different_look_is_a_409(fn, sim):
    fn.start(look(2), headers={"Idempotency-Key": "k1"})
    reply = fn.start(look(1), headers={"Idempotency-Key": "k1"})
    assert reply.status == 409 and reply.body["code"] == "idempotency_key_reused"


def test_concurrent_starts_with_one_idempotency_key_make_one_task(fn, sim, env):
    from tests.conftest import Functions

    results = []

    def start():
        results.append(Functions().start(look(1), headers={"Idempotency-Key": "race"}).body["task_id"])

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1
    conn = psycopg2.connect(env["DATABASE_URL"])
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM replicate_tasks")
        assert cur.fetchone()[0] == 1
    conn.close()


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: typing.ClassVar[list] = []
    answer = threading.Event()  # the fake worker answers once this is set

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).hits.append((self.path, self.headers.get("X-Cron-Secret")))
        type(self).answer.wait(10)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_worker():
    _Recorder.hits = []
    _Recorder.answer.set()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}/worker"
    server.shutdown()


def test_start_pokes_the_worker_url_with_the_cron_secret(fn, monkeypatch, fake_worker):
    monkeypatch.setenv("WORKER_URL", fake_worker[1])
    monkeypatch.setenv("CRON_SECRET", "cron-s3cret")
    assert fn.start(look(1)).status == 200
    wait_until(lambda: _Recorder.hits, timeout=5)
    assert _Recorder.hits == [("/worker", "cron-s3cret")]


def test_a_slow_worker_does_not_delay_start(fn, monkeypatch, fake_worker):
    _Recorder.answer.clear()  # the worker takes the poke and does not answer until the test says so
    monkeypatch.setenv("WORKER_URL", fake_worker[1])
    try:
        assert fn.start(look(1)).status == 200
        wait_until(lambda: _Recorder.hits, timeout=5)  # it was poked, and start answered without waiting
    finally:
        _Recorder.answer.set()


def test_an_unreachable_worker_url_does_not_fail_start(fn, monkeypatch):
    monkeypatch.setenv("WORKER_URL", "http://127.0.0.1:1/worker")
    reply = fn.start(look(1))
    assert reply.status == 200 and reply.body["status"] == "pending"
