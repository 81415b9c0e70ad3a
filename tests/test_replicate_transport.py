"""Replicate's API over http.client (shared.replicate_api + shared.plain_http), checked against
the `replicate` client itself: both send their requests to one recording server, which must see
the same method, path, token, JSON body and headers; both read the same answers the same way.
Also: error answers, the token kept to its origin, keep-alive reuse and a dropped idle
connection."""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import replicate

from shared import plain_http, profiles, replicate_api
from shared.replicate_api import PredictionGone, Rejected, ReplicateAPI, Transient
from shared.settings import Settings

TOKEN = "r8_transport_test_token"
IDM_VTON = profiles.active(Settings({})).version
PREDICTION = {
    "id": "p1abc", "status": "succeeded", "model": "cuuupid/idm-vton", "version": IDM_VTON,
    "input": {"garm_img": "https://example.com/g.png"}, "output": "https://replicate.delivery/x/out.png",
    "error": None, "logs": "50%|#####     | 15/30\n", "metrics": {"predict_time": 12.5},
    "created_at": "2026-11-28T06:00:00.000Z", "urls": {"get": "https://api.replicate.com/v1/predictions/p1abc",
                                                      "cancel": "https://api.replicate.com/v1/predictions/p1abc/cancel"},
}


class Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), RecordingHandler)
        self.seen: list[dict] = []
        self.connections: set[tuple] = set()
        self.answers: list[tuple[int, dict, bytes]] = []  # queued; default: PREDICTION
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class RecordingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Replicate's API

    def log_message(self, *args):
        pass

    def _answer(self):
        server: Recorder = self.server  # type: ignore[assignment]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        server.connections.add(self.client_address)
        server.seen.append({"method": self.command, "path": self.path, "body": json.loads(body) if body else None,
                            "headers": {k.lower(): v for k, v in self.headers.items()}})
        status, headers, payload = server.answers.pop(0) if server.answers else (
            200, {"Content-Type": "application/json"}, json.dumps(PREDICTION).encode())
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer


@pytest.fixture
def recorder():
    server = Recorder()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def fresh_connections(monkeypatch):
    """No kept connection from another test."""


def api_at(base_url: str, **settings: str) -> ReplicateAPI:
    return ReplicateAPI(Settings({"REPLICATE_API_TOKEN": TOKEN, "REPLICATE_BASE_URL": base_url, **settings}))


@pytest.fixture
def ours(recorder):
    return api_at(recorder.url)


def theirs(recorder) -> replicate.Client:
    return replicate.Client(api_token=TOKEN, base_url=recorder.url)


def comparable(request: dict) -> dict:
    headers = request["headers"]
    return {"method": request["method"], "path": request["path"], "body": request["body"],
            "authorization": headers.get("authorization"), "content-type": headers.get("content-type")}


def test_a_create_is_the_request_the_replicate_client_sends(recorder, ours):
    model_input = {"human_img": "https://example.com/p.png", "garm_img": "https://example.com/g.png",
                   "garment_des": "a red shirt", "category": "upper_body"}
    ours.create(model_input, webhook="https://site.example/checker?t=abc", cancel_after_s=600)
    theirs(recorder).predictions.create(version=IDM_VTON, input=model_input,
                                        webhook="https://site.example/checker?t=abc",
                                        webhook_events_filter=["start", "completed"])
    mine, client = (comparable(request) for request in recorder.seen)
    assert mine == client
    assert mine["authorization"] == f"Bearer {TOKEN}" and mine["path"] == "/v1/predictions"
    # The deadline Replicate enforces (the client has no way to send it).
    assert recorder.seen[0]["headers"]["cancel-after"] == "600s"


def test_an_official_models_create_goes_through_the_models_endpoint_as_the_clients(recorder):
    api = api_at(recorder.url, MODEL_PROFILE="nano-banana")
    model_input = {"prompt": "Dress the person", "image_input": ["https://e.com/a.png", "https://e.com/b.png"],
                   "output_format": "png"}
    api.create(model_input)
    theirs(recorder).models.predictions.create(model="google/nano-banana", input=model_input)
    mine, client = (comparable(request) for request in recorder.seen)
    assert mine == client and mine["path"] == "/v1/models/google/nano-banana/predictions"


def test_get_cancel_and_list_are_the_clients_requests_and_read_the_same(recorder, ours):
    client = theirs(recorder)
    got, their_got = ours.get("p1abc"), client.predictions.get("p1abc")
    ours.cancel("p1abc")
    client.predictions.cancel("p1abc")
    page = {"results": [PREDICTION], "next": recorder.url + "/v1/predictions?cursor=c2", "previous": None}
    recorder.answers = [(200, {"Content-Type": "application/json"}, json.dumps(page).encode())] * 2
    listed, next_url = ours.list_page()
    their_page = client.predictions.list()
    get_mine, get_theirs, cancel_mine, cancel_theirs, list_mine, list_theirs = map(comparable, recorder.seen)
    assert (get_mine, cancel_mine, list_mine) == (get_theirs, cancel_theirs, list_theirs)
    assert (get_mine["path"], cancel_mine["path"], list_mine["path"]) == (
        "/v1/predictions/p1abc", "/v1/predictions/p1abc/cancel", "/v1/predictions")
    read = {"id": got.id, "status": got.status, "output": got.output, "error": got.error, "logs": got.logs,
            "predict_time": got.predict_time_s}
    assert read == {"id": their_got.id, "status": their_got.status, "output": their_got.output,
                    "error": their_got.error, "logs": their_got.logs,
                    "predict_time": their_got.metrics["predict_time"]}
    assert [p.id for p in listed] == [p.id for p in their_page.results] and next_url == their_page.next


def test_the_next_page_of_a_list_is_read_only_on_the_token_s_origin(recorder, ours):
    elsewhere = Recorder()
    try:
        with pytest.raises(Transient, match="another host"):
            ours.list_page(elsewhere.url + "/v1/predictions?cursor=c2")
        assert elsewhere.seen == [] and recorder.seen == []
    finally:
        elsewhere.shutdown()
        elsewhere.server_close()


def problem(status: int, detail: str, **headers) -> tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/problem+json", **headers}, json.dumps(
        {"title": "Error", "detail": detail, "status": status}).encode()


@pytest.mark.parametrize(("answer", "kind", "words"), [
    (problem(422, "- input.human_img: Does not match format 'uri'"), Rejected,
     "did not accept this step's images: - input.human_img: Does not match format 'uri'"),
    (problem(401, "Unauthenticated"), Rejected, "could not sign in to Replicate"),
    (problem(402, "Payment required"), Rejected, "run out of Replicate credit"),
    (problem(404, "Not found"), PredictionGone, "no longer has this prediction"),
    (problem(400, "Bad thing"), Rejected, "refused this step (400: Bad thing)"),
    (problem(500, "Internal"), Transient, "Replicate answered 500"),
    ((200, {"Content-Type": "text/html"}, b"<html>maintenance</html>"), Transient, "not JSON"),
])
def test_answers_are_classified_as_the_step_needs(recorder, ours, answer, kind, words):
    recorder.answers = [answer]
    with pytest.raises(kind) as raised:
        ours.get("p1abc")
    assert type(raised.value) is kind and words in str(raised.value)


def test_a_429_pauses_every_call_for_its_retry_after_and_is_not_retried(recorder, ours):
    recorder.answers = [problem(429, "Too many requests", **{"Retry-After": "7"})]
    before = time.monotonic()
    with pytest.raises(Transient) as raised:
        ours.get("p1abc")
    assert (raised.value.status, raised.value.retry_after, len(recorder.seen)) == (429, 7.0, 1)
    assert ours.reads.next_free >= before + 7.0


def drop_kept_connection(recorder) -> None:
    """As if the server had dropped the idle connection this thread keeps to it."""
    kept = plain_http._pool()[("http", recorder.url.split("//")[1])][0]
    assert kept.sock is not None
    kept.sock.close()
    kept.sock = _DeadSocket()


def test_a_kept_alive_connection_is_reused_and_a_dropped_one_costs_a_get_nothing(recorder, ours):
    ours.get("p1abc")
    ours.get("p1abc")
    assert (len(recorder.seen), len(recorder.connections)) == (2, 1)
    drop_kept_connection(recorder)
    assert ours.get("p1abc").id == "p1abc"  # sent again, once, on a new connection
    assert (len(recorder.seen), len(recorder.connections), ours.calls) == (3, 2, 3)


def test_a_post_on_a_dropped_connection_is_not_sent_twice(recorder, ours):
    ours.get("p1abc")
    drop_kept_connection(recorder)
    with pytest.raises(Transient, match="could not be reached"):
        ours.cancel("p1abc")
    assert [request["method"] for request in recorder.seen] == ["GET"]


class _DeadSocket:
    """A socket whose peer has gone without a word (no FIN seen yet: nothing to read while idle):
    every send fails as a dropped connection's does."""

    def __init__(self):
        self.quiet, self.other_end = socket.socketpair()

    def fileno(self):
        return self.quiet.fileno()

    def settimeout(self, value):
        pass

    def sendall(self, data):
        raise BrokenPipeError(32, "Broken pipe")

    def shutdown(self, how):
        pass

    def close(self):
        self.quiet.close()
        self.other_end.close()


def test_a_too_large_answer_is_cut_off(recorder, ours, monkeypatch):
    monkeypatch.setattr(replicate_api, "MAX_ANSWER_BYTES", 1000)
    recorder.answers = [(200, {"Content-Type": "application/json"}, b"{" + b" " * 2000 + b"}")]
    with pytest.raises(Transient, match="larger than"):
        ours.get("p1abc")


def test_plain_http_refuses_what_is_not_http():
    with pytest.raises(ValueError):
        plain_http.request("GET", "file:///etc/passwd", deadline=time.monotonic() + 1)


class HeaderDripHandler(BaseHTTPRequestHandler):
    """Answers with its status line and then one header byte every 0.2 s, for up to 10 s."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        try:
            for _ in range(50):
                self.wfile.write(b"X")
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:  # the client shut its socket
            return


def test_a_server_dripping_its_headers_is_cut_off_at_the_call_s_deadline():
    server = ThreadingHTTPServer(("127.0.0.1", 0), HeaderDripHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = api_at(f"http://127.0.0.1:{server.server_address[1]}", REPLICATE_TIMEOUT_S="1")
        # Without the watchdog the drip would end after 10 s as a broken answer ("could not be reached").
        with pytest.raises(Transient, match="did not finish answering in time"):
            api.get("p1abc")
    finally:
        server.shutdown()
        server.server_close()


def raw_server(on_connection) -> socket.socket:
    """A listener that hands each connection to `on_connection(conn)` on a thread of its own (for
    answers no HTTP server library would send)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def accept_all():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=on_connection, args=(conn,), daemon=True).start()

    threading.Thread(target=accept_all, daemon=True).start()
    return listener


def read_request(reader) -> bytes:
    """The next request line (b"" once the client is gone), its headers read past."""
    request_line = reader.readline()
    while reader.readline() not in (b"\r\n", b""):
        pass
    return request_line


def json_answer(data) -> bytes:
    body = json.dumps(data).encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\n\r\n" + body)


def test_an_informational_answer_is_never_read_as_a_later_call_s_answer():
    """A 103 Early Hints then (a moment later) the real answer: http.client returns the 103 as the
    answer, and a kept connection would hand each later call the answer of the call before it."""
    served = []

    def answer_each(conn):
        reader = conn.makefile("rb")
        while request_line := read_request(reader):
            prediction_id = request_line.split()[1].rsplit(b"/", 1)[1].decode()
            served.append(request_line)
            if len(served) == 1:  # the first request gets a hint first, its answer after it
                conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
                time.sleep(0.3)  # a separate segment: not read along with the hint
            try:
                conn.sendall(json_answer({**PREDICTION, "id": prediction_id}))
            except OSError:  # the client gave up on this connection
                return

    listener = raw_server(answer_each)
    try:
        api = api_at(f"http://127.0.0.1:{listener.getsockname()[1]}")
        with pytest.raises(Transient):
            api.get("first")
        assert [api.get("second").id, api.get("third").id] == ["second", "third"]
    finally:
        listener.close()


def test_a_relative_next_page_cannot_move_the_token_to_another_origin():
    """A `next` that is not an absolute URL nor a path (":port/...", ".other.host/...", "@host/...")
    would change the origin once appended to the base URL."""
    elsewhere = Recorder()
    try:
        api = api_at("http://127.0.0.1")
        with pytest.raises(Transient, match="another host"):
            api.list_page(f":{elsewhere.server_address[1]}/v1/predictions?cursor=c2")
        assert elsewhere.seen == []
    finally:
        elsewhere.shutdown()
        elsewhere.server_close()


@pytest.mark.parametrize("next_url", [".evil.example/v1/predictions", "@evil.example/v1/predictions",
                                      "HTTPS://evil.example/v1/predictions"])
def test_a_next_page_that_is_not_a_path_is_not_appended_to_the_base_url(next_url):
    api = api_at("https://api.replicate.com")
    with pytest.raises(Transient, match="another host"):
        api._url(next_url)


@pytest.mark.parametrize(("value", "read_as"), [
    ("7", 7.0), ("99999999999", 300.0), ("-5", None), ("1e9", None), ("soon", None), ("", None),
    ("\u00b2", None),  # a digit to str.isdigit (headers are read as latin-1), not to float()
    ("Sat, 01 Jan 2000 00:00:00 GMT", 0.0), ("Fri, 01 Jan 2100 00:00:00 GMT", 300.0),
])
def test_retry_after_is_read_as_a_bounded_number_of_seconds_or_not_at_all(value, read_as):
    refusal = replicate_api.classify(429, None, value)
    assert isinstance(refusal, Transient) and refusal.retry_after == read_as


def test_connecting_tries_no_further_address_once_the_call_s_deadline_has_passed(monkeypatch):
    """A name with several addresses, the first of which never answers (a listener with a full
    queue): each was tried with its own timeout, so the call went on connecting past its deadline."""
    silent = socket.create_server(("127.0.0.1", 0), backlog=0)
    filler = socket.create_connection(silent.getsockname())  # the queue's one place: later SYNs go unanswered
    second = socket.create_server(("127.0.0.1", 0))
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *args, **kwargs: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", silent.getsockname()),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", second.getsockname())])
    try:
        with pytest.raises(plain_http.TimedOut):
            plain_http.request("GET", "http://replicate.test/v1/predictions/p1", deadline=time.monotonic() + 0.5)
        second.setblocking(False)
        with pytest.raises(BlockingIOError):  # nothing connected to the second address
            second.accept()
    finally:
        for each in (filler, silent, second):
            each.close()


def test_on_connect_refuses_an_https_peer_before_the_tls_hello_is_sent():
    """The downloads' peer check (shared/output_hosts.py) must stop a connection to a private
    address before anything reaches it; over https the handshake's hello was sent first."""
    listener = socket.create_server(("127.0.0.1", 0))
    received = []

    def serve():
        conn, _ = listener.accept()
        conn.settimeout(3)
        try:
            received.append(conn.recv(1024))  # b"" once the client closes without sending
        except OSError:
            received.append(b"")
        conn.close()

    class Refused(Exception):
        pass

    def refuse(sock):
        raise Refused("a private peer")

    served = threading.Thread(target=serve, daemon=True)
    served.start()
    with pytest.raises(Refused):
        plain_http.request("GET", f"https://127.0.0.1:{listener.getsockname()[1]}/x.png",
                           deadline=time.monotonic() + 1.0, on_connect=refuse)
    served.join(5)
    listener.close()
    assert received == [b""]


@pytest.mark.parametrize("after_answer", ["closes", "sends more than it declared"])
def test_a_kept_connection_the_server_closed_or_wrote_more_on_is_not_reused(after_answer):
    """A server that says keep-alive and then closes: a POST written into that connection failed
    (never sent again, so a create waited for the next ping). One that sent bytes past its
    Content-Length: they were read as the next call's answer."""
    connections, done = [], threading.Event()

    def answer_once(conn):
        connections.append(conn)
        reader = conn.makefile("rb")
        request_line = read_request(reader)
        conn.sendall(json_answer({**PREDICTION, "id": request_line.split()[1].split(b"/")[3].decode()}))
        if after_answer == "closes":
            reader.close()
            conn.close()
        else:  # after the answer was read (in one segment, it would be lost with the answer's buffer)
            time.sleep(0.1)
            conn.sendall(json_answer({**PREDICTION, "id": "forged"}))
        done.set()  # on loopback the close or the bytes are at the client once sent

    listener = raw_server(answer_once)
    try:
        api = api_at(f"http://127.0.0.1:{listener.getsockname()[1]}")
        assert api.get("first").id == "first"
        assert done.wait(5)
        assert api.cancel("second").id == "second"
        assert len(connections) == 2
    finally:
        listener.close()
        for each in connections:
            each.close()


def test_a_name_lookup_that_does_not_answer_ends_at_the_call_s_deadline(monkeypatch):
    released = threading.Event()
    looked_up = []

    def hanging_lookup(host, *args, **kwargs):
        looked_up.append(host)
        released.wait(30)  # a resolver retrying a dead server
        raise OSError("resolver gave up")

    monkeypatch.setattr(plain_http.socket, "getaddrinfo", hanging_lookup)
    api = api_at("https://api.replicate.example", REPLICATE_TIMEOUT_S="1")
    try:
        # Without the bound the lookup's own failure would come after 30 s as "could not be reached".
        with pytest.raises(Transient, match="did not finish answering in time"):
            api.get("p1abc")
        assert looked_up == ["api.replicate.example"]
    finally:
        released.set()
