"""Durable images: every step's output is copied to the project's storage (S3 or a folder)
before anyone sees it, so Continue, Download and the result outlive Replicate's retention."""

import http.server
import json
import re
import threading
import time
import typing
from pathlib import Path

import boto3
import pytest
import requests

from shared import launching
from shared.downloads import download
from shared.images import DownloadError
from shared.output_hosts import OutputHosts
from shared.settings import load
from shared.storage import LocalStorage
from shared.task import Task
from tests.conftest import GARMENTS, PERSON, drive, look, png_bytes, run_sql, wait_until


def test_continue_download_and_the_result_work_after_replicate_deleted_its_outputs(fn, sim):
    task_id = fn.start(look(2)).body["task_id"]
    step_one = drive(fn, task_id, "waiting_continue")["intermediate_result"]
    sim.expire_outputs()  # as Replicate's retention period would, without waiting it out
    expired = [p for p in sim.snapshot() if p["data_removed"]]
    assert len(expired) == 1 and expired[0]["output"] is None
    assert requests.get(step_one, timeout=5).content.startswith(b"\x89PNG")  # Download
    assert fn.act(task_id).status == 200                                       # Continue
    assert sim.created_inputs()[1]["human_img"] == step_one
    final = drive(fn, task_id, "completed")
    sim.expire_outputs()
    assert requests.get(final["result_url"], timeout=5).content.startswith(b"\x89PNG")
    assert sim.stats["expired_file_gets"] == 0  # the project never fetched an expired URL


TAG = "[0-9a-f]{16}"  # each file's tag (shared.storage.file_name)


def test_step_images_are_stored_under_the_looks_folder_by_step_and_attempt(fn, sim, env):
    sim.set_faults(outcomes=["failed"])
    task_id = fn.start(look(1)).body["task_id"]
    drive(fn, task_id, "failed")
    fn.act(task_id, "retry")
    view = drive(fn, task_id, "completed")
    folder = view["result_url"].rsplit("/", 1)[0][len(env["PUBLIC_FILES_URL"]) + 1:]
    assert re.fullmatch(rf"{re.escape(env['PUBLIC_FILES_URL'])}/{folder}/step-1-2-{TAG}\.png", view["result_url"])
    assert folder.startswith("looks/")
    stored = sorted(p.name for p in (Path(env["LOCAL_STORAGE_DIR"]) / folder).iterdir())
    assert [re.sub(f"-{TAG}", "", name) for name in stored] == ["garment-1.png", "person.png", "step-1-2.png"]


def test_local_storage_that_cannot_be_written_is_transient(fn, sim, env, monkeypatch, tmp_path):
    task_id = fn.start(look(1)).body["task_id"]
    fn.worker()
    wait_until(sim.wait_idle)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the storage folder should be")
    monkeypatch.setenv("LOCAL_STORAGE_DIR", str(blocker))
    assert fn.checker().body["errors"] == 1
    assert fn.status(task_id).body["status"] == "processing"  # nothing half-stored is shown
    monkeypatch.setenv("LOCAL_STORAGE_DIR", env["LOCAL_STORAGE_DIR"])
    assert drive(fn, task_id, "completed")["result_url"]


def test_with_local_storage_and_real_replicate_the_next_step_sends_the_image_itself(env, tmp_path):
    storage = LocalStorage(str(tmp_path), "http://127.0.0.1:8000/files")
    person = storage.put("tasks/00000000-0000-4000-8000-000000000000/person.png", png_bytes(), "image/png")
    settings = load({**env, "REPLICATE_BASE_URL": "", "REPLICATE_API_TOKEN": "r8_real"})
    task = Task.from_row({
        "id": "00000000-0000-4000-8000-000000000000", "user_id": "u", "status": "processing", "current_step": 1,
        "person_image": person, "intermediate_result": None, "prompt_hints": None,
        "garments": '[{"image": "https://cdn.example.com/shirt.png", "category": "upper_body"}]'})
    model_input = launching.step_input(settings, storage, task)
    assert model_input["human_img"].startswith("data:image/png;base64,")
    assert model_input["garm_img"] == "https://cdn.example.com/shirt.png"
    local = load({**env, "REPLICATE_BASE_URL": "http://127.0.0.1:9999"})
    assert launching.step_input(local, storage, task)["human_img"] == person


# --- downloads of outputs ------------------------------------------------------------------------

class _Files(http.server.BaseHTTPRequestHandler):
    routes: typing.ClassVar[dict] = {}

    def do_GET(self):
        status, headers, body, delay = self.routes[self.path]
        time.sleep(delay)
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def files():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    png = png_bytes()
    _Files.routes = {
        "/ok.png": (200, {"Content-Length": str(len(png))}, png, 0),
        "/huge.png": (200, {"Content-Length": str(50_000_000)}, png, 0),
        "/endless.png": (200, {}, png + b"\0" * 200_000, 0),
        "/page.html": (200, {}, b"<html>not an image</html>", 0),
        "/png-then-html.png": (200, {}, b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script></html>", 0),
        "/jpeg-then-html.jpg": (200, {}, b"\xff\xd8\xff\xe0<html><script>alert(1)</script></html>", 0),
        "/gone.png": (404, {}, b"", 0),
        "/broken.png": (502, {}, b"", 0),
        "/slow.png": (200, {}, png, 3),
    }
    yield base
    server.shutdown()


@pytest.mark.parametrize("path,transient,message", [
    ("/huge.png", False, "larger than"),
    ("/endless.png", False, "larger than"),
    ("/page.html", False, "not a readable PNG, JPEG or WebP"),
    ("/png-then-html.png", False, "not a readable PNG, JPEG or WebP"),
    ("/jpeg-then-html.jpg", False, "not a readable PNG, JPEG or WebP"),
    ("/gone.png", False, "no longer available"),
    ("/broken.png", True, "answered 502"),
    ("/slow.png", True, "did not finish sending it within 1 s"),
])
def test_an_output_download_is_capped_checked_and_timed_out(files, path, transient, message):
    with pytest.raises(DownloadError) as error:
        download(files + path, max_bytes=100_000, hosts=OutputHosts.of(files, None, ()), timeout=1.0)
    assert error.value.transient is transient
    assert message in str(error.value)


def test_an_output_download_returns_the_bytes_and_their_real_type(files):
    data, content_type = download(files + "/ok.png", max_bytes=100_000, hosts=OutputHosts.of(files, None, ()))
    assert data.startswith(b"\x89PNG") and content_type == "image/png"


# --- S3 (boto3 against moto's S3 server over HTTP) -------------------------------------------------

def use_s3(monkeypatch, endpoint: str) -> None:
    """The functions store images in bucket tryon-test at `endpoint`, not in the local folder."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "S3_BUCKET": "tryon-test", "S3_ENDPOINT_URL": endpoint,
                        "S3_PUBLIC_URL": f"{endpoint}/tryon-test"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("LOCAL_STORAGE_DIR")


@pytest.fixture
def s3(env, monkeypatch):
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    use_s3(monkeypatch, endpoint)
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket="tryon-test")
    # Objects are read by Replicate and browsers through S3_PUBLIC_URL: a public-read bucket policy.
    client.put_bucket_policy(Bucket="tryon-test", Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::tryon-test/*"}]}))
    yield client, endpoint
    server.stop()


def test_with_s3_inputs_and_every_step_image_are_objects_with_their_content_type(fn, sim, s3):
    client, endpoint = s3
    task_id = fn.start(look(2)).body["task_id"]
    drive(fn, task_id, "waiting_continue")
    fn.act(task_id)
    view = drive(fn, task_id, "completed")
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="tryon-test")["Contents"])
    folder = keys[0].rsplit("/", 1)[0]  # looks/<random>: names no task
    assert folder.startswith("looks/") and task_id not in folder
    assert [re.sub(f"-{TAG}", "", key) for key in keys] == [f"{folder}/{name}" for name in
                    ("garment-1.png", "garment-2.png", "person.png", "step-1-1.png", "step-2-1.png")]
    person_key, last_key = keys[2], keys[4]
    assert view["result_url"] == f"{endpoint}/tryon-test/{last_key}"
    head = client.head_object(Bucket="tryon-test", Key=last_key)
    assert head["ContentType"] == "image/png" and head["ContentDisposition"] == "inline"
    assert client.get_object(Bucket="tryon-test", Key=person_key)["Body"].read() == \
        __import__("base64").b64decode(PERSON.split(",", 1)[1])
    assert sim.created_inputs()[1]["human_img"] == view["steps"][0]["image_url"]
    assert requests.get(view["result_url"], timeout=5).content.startswith(b"\x89PNG")  # publicly readable


def test_s3_down_at_start_is_a_503_and_nothing_is_written(fn, sim, s3, monkeypatch):
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:1")
    reply = fn.start(look(1))
    assert reply.status == 503 and reply.body["code"] == "storage_unavailable"
    assert reply.headers["Retry-After"] == "30"
    monkeypatch.setenv("S3_ENDPOINT_URL", s3[1])
    assert fn.checker().body["remaining"] == 0
    assert fn.worker().body["started"] == 0


def test_s3_down_when_a_step_finishes_keeps_the_task_running_until_it_is_back(fn, sim, s3, monkeypatch):
    task_id = fn.start({"person_image": PERSON, "garments": GARMENTS[:1]}).body["task_id"]
    fn.worker()
    wait_until(sim.wait_idle)
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:1")
    assert fn.checker().body["errors"] == 1
    assert fn.status(task_id).body["status"] == "processing"
    monkeypatch.setenv("S3_ENDPOINT_URL", s3[1])
    assert drive(fn, task_id, "completed")["result_url"].startswith(s3[1])


def test_a_step_saved_twice_lands_on_one_key_and_each_upload_on_its_own():
    from shared.storage import file_name

    # Two checks of one prediction (a webhook and the cron) write the same object, not two.
    assert file_name("step-1-1", "pred-a") == file_name("step-1-1", "pred-a") != file_name("step-1-1", "pred-b")
    assert file_name("person") != file_name("person")


@pytest.fixture
def silent_s3(env, monkeypatch):
    """An S3 endpoint that takes connections and never answers (a hung proxy, a dead NAT path)."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []

    def accept():
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
    use_s3(monkeypatch, endpoint)
    yield held
    listener.close()
    for connection in held:
        connection.close()


def test_a_start_whose_storage_never_answers_ends_inside_its_budget_with_a_503(fn, sim, env, monkeypatch, silent_s3):
    from concurrent.futures import ThreadPoolExecutor

    from shared import starting

    monkeypatch.setattr(starting, "BUDGET_S", starting.AFTER_UPLOADS_S + 2.0)
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(fn.start, {"person_image": PERSON, "garments": [PERSON]})
        # boto3 alone would wait 15 s per attempt, 3 attempts a file; these uploads get 2 s.
        reply = answer.result(timeout=30)
    assert (reply.status, reply.body["code"]) == (503, "storage_unavailable"), reply
    assert silent_s3  # the uploads were sent, and never answered
    assert run_sql(env["DATABASE_URL"], "SELECT count(*) FROM replicate_tasks") == [(0,)]
