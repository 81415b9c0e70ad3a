"""The local platform: HTTP request -> the event a serverless platform would pass -> the very same
`handler(event, context)` -> the returned dict as the HTTP response, as `chalice local` does.

Each function has a small pool of "instances" (threads). Like a warm container, an instance runs
one request at a time and keeps its module state (its database connection) between requests.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import mimetypes
import sys
import threading
import time
import traceback
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from devserver.functions import load
from shared.endpoints import FUNCTIONS
from shared.http import Response, cors_headers, to_event_response
from shared.settings import load as load_settings

ROUTES = {function.path: function.folder for function in FUNCTIONS}
ENDPOINTS_SENTENCE = f"the functions are {', '.join(sorted(ROUTES))} (lower case), the page is /."
PLATFORM_MAX_REQUEST = int(3.5 * 1024 * 1024)  # Yandex Cloud Functions' request limit
FUNCTION_TIMEOUT_S = 60.0
IDLE_TIMEOUT_S = 30.0
PINGER_AGENT = "tryon-devserver-cron"
WEB_DIR = Path(__file__).resolve().parent.parent / "web"
# Browsers must take a served file for the type it is sent as, never guess (a PNG that holds HTML).
NO_SNIFF = {"X-Content-Type-Options": "nosniff"}


class Context:
    """What the platform passes as `context` (Yandex names, plus AWS's remaining-time method)."""

    def __init__(self, function_name: str, request_id: str, timeout_s: float):
        self.function_name = function_name
        self.function_version = "local"
        self.memory_limit_in_mb = 256
        self.request_id = self.aws_request_id = request_id
        self.token = None
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def to_event(method: str, path: str, query: str, headers: dict[str, list[str]], body: bytes, source_ip: str) -> dict:
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    multi_query = dict(parse_qs(query, keep_blank_values=True).items())
    now = time.time()
    request_id = str(uuid.uuid4())
    return {
        "httpMethod": method,
        "path": path,
        "headers": {k: v[-1] for k, v in headers.items()},
        "multiValueHeaders": headers,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()},
        "multiValueQueryStringParameters": multi_query,
        "requestContext": {
            "identity": {"sourceIp": source_ip, "userAgent": headers.get("User-Agent", [""])[-1]},
            "httpMethod": method,
            "requestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


class Platform:
    def __init__(self, files_dir: Path | None, instances_per_function: int = 4, log=print, quiet_pings: bool = False):
        """`quiet_pings`: the log lines of a cron ping that did nothing are dropped (see `PingFilter`)."""
        self.files_dir = files_dir.resolve() if files_dir else None
        self.log = log
        self.handlers = {name: load(name) for name in ROUTES.values()}
        self.pools = {name: concurrent.futures.ThreadPoolExecutor(instances_per_function,
                                                                  thread_name_prefix=f"fn-{name}")
                      for name in ROUTES.values()}
        self.ping_filter = PingFilter.install() if quiet_pings else None

    def invoke(self, name: str, event: dict) -> dict:
        context = Context(name, event["requestContext"]["requestId"], FUNCTION_TIMEOUT_S)
        handler = self.handlers[name]
        if self.ping_filter is not None and event["headers"].get("User-Agent") == PINGER_AGENT:
            handler = self.ping_filter.wrap(handler)
        future = self.pools[name].submit(handler, event, context)
        try:
            result = future.result(timeout=FUNCTION_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            self.log(f"[devserver] {name} timed out after {FUNCTION_TIMEOUT_S:.0f} s")
            return {"statusCode": 504, "headers": {"Content-Type": "application/json"},
                    "body": json.dumps({"message": "Gateway Timeout"})}
        except Exception:
            # As the platforms do: a raised exception is a bare 502 without CORS headers.
            self.log(f"[devserver] {name} raised:\n{traceback.format_exc()}")
            return {"statusCode": 502, "headers": {"Content-Type": "application/json"},
                    "body": json.dumps({"message": "Internal server error"})}
        if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
            self.log(f"[devserver] {name} returned something that is not a response: {type(result).__name__}")
            return {"statusCode": 502, "headers": {"Content-Type": "application/json"},
                    "body": json.dumps({"message": "Malformed function response"})}
        return result

    def shutdown(self) -> None:
        for pool in self.pools.values():
            pool.shutdown(wait=False, cancel_futures=True)


def make_server(host: str, port: int) -> DevHTTPServer:
    """The HTTP front; set `server.platform` before serving."""

    class Handler(BaseHTTPRequestHandler):
        server: DevHTTPServer
        protocol_version = "HTTP/1.1"
        server_version = "tryon-devserver"
        # Headers and body go out in two writes: with Nagle's algorithm the body of a second
        # answer on a kept-alive connection waited ~40 ms for the client's delayed ACK.
        disable_nagle_algorithm = True
        timeout = IDLE_TIMEOUT_S  # a silent client (idle keep-alive, a body that never comes) frees its thread

        def log_message(self, *args):
            pass

        def _reply(self, status: int, headers: dict, body: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _refuse(self, status: int, error: str, code: str) -> None:
            """Answers without reading the body, then closes: the unread bytes must not be taken
            for the next request."""
            self.close_connection = True
            # Answered as the functions answer (headers, CORS), so a page on another origin can read it.
            request_headers = getattr(self, "headers", None)  # none yet after a bad request line
            origin = request_headers.get("Origin") if request_headers else None
            answer = to_event_response(Response(status, {"error": error, "code": code}),
                                       cors_headers(load_settings().allowed_origins, origin))
            self._reply(status, answer["headers"], answer["body"].encode())

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """What the standard library answers itself (an unknown method such as TRACE, a bad
            request line, a URI or header too long) is JSON like every other answer."""
            self.request_version = self.protocol_version  # a bad request line leaves "HTTP/0.9": no status line
            status = HTTPStatus(code)
            code_name = status.phrase.lower().replace(" ", "_").replace("-", "_")
            self._refuse(code, f"{status.phrase}: {message or status.description}.".replace("..", "."), code_name)

        def _function(self, name: str, parts) -> None:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                return self._refuse(411, "Send the body with a Content-Length; chunked bodies are not accepted.",
                                    "length_required")
            declared = self.headers.get("Content-Length") or "0"
            if not declared.isdigit():  # "abc" used to drop the connection, "-1" to read until the client gave up
                return self._refuse(400, "Content-Length must be a whole number of bytes.", "bad_content_length")
            length = int(declared)
            if length > PLATFORM_MAX_REQUEST:
                return self._refuse(413, "The request is larger than 3.5 MB, the platform's limit.",
                                    "payload_too_large")
            try:
                raw = self.rfile.read(length) if length else b""
            except TimeoutError:
                return self._refuse(408, "The request body did not arrive in time.", "request_timeout")
            if len(raw) < length:
                self.close_connection = True
                return  # the client closed before sending its body: nobody is left to answer
            headers: dict[str, list[str]] = {}
            for key, value in self.headers.items():
                headers.setdefault(key, []).append(value)
            event = to_event(self.command, parts.path, parts.query, headers, raw, self.client_address[0])
            result = self.server.platform.invoke(name, event)
            body = result.get("body") or ""
            data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
            self._reply(result["statusCode"], result.get("headers") or {}, data)

        def _static(self, path: Path, base: Path) -> None:
            try:
                resolved = path.resolve()
                resolved.relative_to(base)
                data = resolved.read_bytes()
            except (ValueError, OSError):
                return self._reply(404, {"Content-Type": "text/plain", **NO_SNIFF}, b"Not found")
            content_type = mimetypes.guess_type(resolved.name)[0] or "application/octet-stream"
            self._reply(200, {"Content-Type": content_type, "Cache-Control": "no-cache", **NO_SNIFF}, data)

        def _route(self) -> None:
            parts = urlsplit(self.path)
            path = parts.path.rstrip("/") or "/"
            if path in ROUTES:
                return self._function(ROUTES[path], parts)
            if self.headers.get("Content-Length", "0") != "0" or self.headers.get("Transfer-Encoding"):
                self.close_connection = True  # a body nobody reads must not become the next request
            if self.command not in ("GET", "HEAD"):
                return self._refuse(405, f"{self.command} is not answered here: {ENDPOINTS_SENTENCE}",
                                    "method_not_allowed")
            if path == "/":
                return self._static(WEB_DIR / "index.html", WEB_DIR)
            files_dir = self.server.platform.files_dir
            if path.startswith("/files/") and files_dir is not None:
                return self._static(files_dir / unquote(path[len("/files/"):]), files_dir)
            if path.count("/") == 1 and "." in path:
                return self._static(WEB_DIR / path.lstrip("/"), WEB_DIR)
            self._refuse(404, f"There is nothing at {path}: {ENDPOINTS_SENTENCE}", "not_found")

        do_GET = do_POST = do_OPTIONS = do_PUT = do_DELETE = do_PATCH = do_HEAD = _route

    return DevHTTPServer((host, port), Handler)


class DevHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    platform: Platform  # set by whoever serves (devserver/__main__.py, tests) before serve_forever
    # The listen backlog: at the default 5, ~50 clients at once saw connections reset.
    request_queue_size = 512


class PingFilter:
    """Holds back the log lines a cron ping's function writes, and lets them through only if the
    ping did something: a count in ACTIVITY above 0, a status other than 200, or any line besides
    the closing `invocation` one (a transition, an error). Idle pings every few seconds would
    otherwise bury the banner. Lines of every other request pass straight through."""

    ACTIVITY = ("started", "failed", "deferred", "lost", "checked", "errors")

    def __init__(self, stream):
        self.stream = stream
        self.held = threading.local()

    @classmethod
    def install(cls) -> PingFilter:
        current = sys.stdout
        if isinstance(current, _HoldingStdout):
            return current.filter
        ping_filter = cls(current)
        sys.stdout = _HoldingStdout(ping_filter)
        return ping_filter

    def wrap(self, handler):
        def held_handler(event, context):
            self.held.lines = lines = []
            result = None
            try:
                result = handler(event, context)
                return result
            finally:
                self.held.lines = None
                if self.did_something(result, lines):
                    self.stream.write("".join(lines))
                    self.stream.flush()

        return held_handler

    @classmethod
    def did_something(cls, result, lines: list[str]) -> bool:
        if not isinstance(result, dict) or result.get("statusCode") != 200:
            return True
        if any('"event": "invocation"' not in line for line in "".join(lines).splitlines()):
            return True
        try:
            body = json.loads(result.get("body") or "{}")
        except ValueError:
            return True
        return not isinstance(body, dict) or any(isinstance(body.get(key), int) and body[key] > 0
                                                 for key in cls.ACTIVITY)


class _HoldingStdout:
    """sys.stdout while a `PingFilter` is installed: a thread running a held handler writes to its
    list, every other thread to the real stream."""

    def __init__(self, ping_filter: PingFilter):
        self.filter = ping_filter

    def write(self, text: str) -> int:
        lines = getattr(self.filter.held, "lines", None)
        if lines is None:
            return self.filter.stream.write(text)
        lines.append(text)
        return len(text)

    def flush(self) -> None:
        if getattr(self.filter.held, "lines", None) is None:
            self.filter.stream.flush()

    def __getattr__(self, name):
        return getattr(self.filter.stream, name)


class Pinger(threading.Thread):
    """The built-in cron: pings worker, then checker, every `interval` seconds over HTTP."""

    def __init__(self, base_url: str, interval: float, cron_secret: str = ""):
        super().__init__(name="pinger", daemon=True)
        self.base_url, self.interval, self.cron_secret = base_url, interval, cron_secret
        self.stopped = threading.Event()

    def run(self) -> None:
        import requests

        headers = {"User-Agent": PINGER_AGENT, **({"X-Cron-Secret": self.cron_secret} if self.cron_secret else {})}
        while not self.stopped.wait(self.interval):
            for name in ("worker", "checker"):
                try:
                    requests.get(f"{self.base_url}/{name}", headers=headers, timeout=FUNCTION_TIMEOUT_S + 5)
                except requests.RequestException as error:
                    print(f"[devserver] cron ping of {name} failed: {error}", file=sys.stderr)

    def stop(self) -> None:
        self.stopped.set()
