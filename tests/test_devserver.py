"""`python -m devserver` as `make run` starts it: embedded PostgreSQL, the simulator, local files,
the built-in cron, the web page, and the seed's procedure over real HTTP."""

import re
import signal

import psutil
import requests

from tests.conftest import GARMENTS, PERSON, start_devserver, wait_until


def user(name="curl-user"):
    return {"X-User-Id": name}


def test_it_serves_the_web_page_and_its_assets(devserver):
    page = requests.get(devserver.url + "/", timeout=10)
    assert page.status_code == 200 and 'data-testid="start"' in page.text
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    for asset in ("app.js", "config.js", "style.css"):
        served = requests.get(f"{devserver.url}/{asset}", timeout=10)
        assert served.status_code == 200 and served.headers["X-Content-Type-Options"] == "nosniff"
    assert requests.get(devserver.url + "/../README.md", timeout=10).status_code == 404
    assert requests.get(devserver.url + "/files/../../etc/passwd", timeout=10).status_code == 404
    for folder in ("/files/", "/files/tasks/", "/files/looks/"):  # stored images are never listed
        assert requests.get(devserver.url + folder, timeout=10).status_code == 404


def test_the_seed_procedure_runs_over_http_with_the_built_in_cron(devserver):
    created = requests.post(devserver.url + "/start", headers=user(),
                            json={"person_image": PERSON, "garments": GARMENTS[:3]}, timeout=10)
    assert created.status_code == 200
    task_id = created.json()["task_id"]

    def status():
        return requests.get(devserver.url + "/status", params={"task_id": task_id}, headers=user(), timeout=10).json()

    for step in (1, 2):
        view = wait_until(lambda step=step: (v := status())["status"] == "waiting_continue" and v["current_step"] == step and v,
                          timeout=30)
        image = requests.get(view["intermediate_result"], timeout=10)
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
        # A stored file is taken for the type it is sent as (image/png), never sniffed as HTML.
        assert image.headers["Content-Type"] == "image/png" and image.headers["X-Content-Type-Options"] == "nosniff"
        assert requests.post(devserver.url + "/continue", headers=user(), json={"task_id": task_id}, timeout=10).status_code == 200
    final = wait_until(lambda: (v := status())["status"] == "completed" and v, timeout=30)
    assert final["result_url"].startswith(devserver.url + "/files/looks/")
    checker = requests.get(devserver.url + "/checker", timeout=30).json()
    assert checker["message"].startswith("Checked ")


def test_each_request_becomes_a_platform_event_and_cors_and_options_work(devserver):
    preflight = requests.options(devserver.url + "/start", headers={"Origin": "https://site.example"}, timeout=10)
    assert preflight.status_code == 200
    assert "X-User-Id" in preflight.headers["Access-Control-Allow-Headers"]
    missing = requests.get(devserver.url + "/status", timeout=10)
    assert missing.status_code == 400 and missing.json() == {"error": "task_id is required", "code": "missing_field"}
    assert missing.headers["Access-Control-Allow-Origin"] == "*"


def test_ctrl_c_stops_everything_it_started_and_a_second_run_keeps_the_data(tmp_path):
    first = start_devserver(tmp_path, "--no-cron")
    task_id = requests.post(first.url + "/start", headers=user(), timeout=10,
                            json={"person_image": PERSON, "garments": GARMENTS[:1]}).json()["task_id"]
    assert first.stop(signal.SIGINT) == 0

    def postgres_running():
        return [p for p in psutil.process_iter(["name", "cmdline"])
                if p.info["name"] == "postgres" and str(tmp_path) in " ".join(p.info["cmdline"] or [])]

    wait_until(lambda: not postgres_running(), timeout=15)
    second = start_devserver(tmp_path, "--no-cron", timeout=60)
    try:
        view = requests.get(second.url + "/status", params={"task_id": task_id}, headers=user(), timeout=10).json()
        assert view["task_id"] == task_id and view["total_steps"] == 1
        assert re.search(r"cron +off \(--no-cron\)", "".join(second.output))
    finally:
        second.stop()
    wait_until(lambda: not postgres_running(), timeout=15)


def test_a_handler_that_raises_is_a_bare_502_as_on_the_platforms_and_the_log_says_why():
    from devserver.server import Platform, to_event

    logged = []
    platform = Platform(None, instances_per_function=1, log=logged.append)
    try:
        def broken(event, context):
            raise ValueError("handler bug")

        platform.handlers["status"] = broken
        event = to_event("GET", "/status", "task_id=x", {"Host": ["localhost"]}, b"", "127.0.0.1")
        response = platform.invoke("status", event)
    finally:
        platform.shutdown()
    assert response["statusCode"] == 502
    assert "Access-Control-Allow-Origin" not in response["headers"]
    assert "ValueError: handler bug" in logged[0]


def test_binary_bodies_reach_the_handler_base64_encoded():
    from devserver.server import to_event

    event = to_event("POST", "/start", "", {"Content-Type": ["application/octet-stream"]}, b"\xff\xd8\xff\x00", "127.0.0.1")
    assert event["isBase64Encoded"] is True and event["body"] == "/9j/AA=="
    text = to_event("POST", "/start", "a=1&a=2", {}, b'{"x": 1}', "127.0.0.1")
    assert (text["isBase64Encoded"], text["body"]) == (False, '{"x": 1}')
    assert text["multiValueQueryStringParameters"] == {"a": ["1", "2"]}
    assert text["requestContext"]["requestId"]
