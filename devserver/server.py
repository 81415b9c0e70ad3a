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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from devserver.functions import load
from shared.endpoints import FUNCTIONS

ROUTES = {function.path: function.folder for function in FUNCTIONS}
PLATFORM_MAX_REQUEST = int(3.5 * 1024 * 1024)  # Yandex Cloud Functions' request limit
FUNCTION_TIMEOUT_S = 60.0
WEB_DIR = Path(__file__).resolve().parent.parent / "web"


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
    def __init__(self, files_dir: Path | None, instances_per_function: int = 4, log=print):
        self.files_dir = files_dir.resolve() if files_dir else None
        self.log = log
        self.handlers = {name: load(name) for name in ROUTES.values()}
        self.pools = {
            name: concurrent.futures.ThreadPoolExecutor(instances_per_function, thread_name_prefix=f"fn-{name}")
            for name in ROUTES.values()
        }

    def invoke(self, name: str, event: dict) -> dict:
        context = Context(name, event["requestContext"]["requestId"], FUNCTION_TIMEOUT_S)
        future = self.pools[name].submit(self.handlers[name], event, context)
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


def make_server(host: str, port: int) -> ThreadingHTTPServer:
    """The HTTP front; set `server.platform` before serving."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "tryon-devserver"

        def log_message(self, *args):
            pass

        def _reply(self, status: int, headers: dict, body: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _function(self, name: str, parts) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > PLATFORM_MAX_REQUEST:
                self.close_connection = True
                body = json.dumps({"error": "The request is larger than 3.5 MB, the platform's limit.",
                                   "code": "payload_too_large"}).encode()
                return self._reply(413, {"Content-Type": "application/json", "Access-Control-Allow-Origin": "*"}, body)
            raw = self.rfile.read(length) if length else b""
            headers: dict[str, list[str]] = {}
            for key, value in self.headers.items():
                headers.setdefault(key, []).append(value)
            event = to_event(self.command, parts.path, parts.query, headers, raw, self.client_address[0])
            result = self.server.platform.invoke(name, event)  # type: ignore[attr-defined]
            text = result.get("body") or ""
            data = base64.b64decode(text) if result.get("isBase64Encoded") else text.encode()
            self._reply(result["statusCode"], result.get("headers") or {}, data)

        def _static(self, path: Path, base: Path) -> None:
            try:
                resolved = path.resolve()
                resolved.relative_to(base)
                data = resolved.read_bytes()
            except (ValueError, OSError):
                return self._reply(404, {"Content-Type": "text/plain"}, b"Not found")
            content_type = mimetypes.guess_type(resolved.name)[0] or "application/octet-stream"
            self._reply(200, {"Content-Type": content_type, "Cache-Control": "no-cache"}, data)

        def _route(self) -> None:
            parts = urlsplit(self.path)
            path = parts.path.rstrip("/") or "/"
            if path in ROUTES:
                return self._function(ROUTES[path], parts)
            if self.command not in ("GET", "HEAD"):
                return self._reply(405, {"Content-Type": "text/plain"}, b"Method not allowed")
            if path == "/":
                return self._static(WEB_DIR / "index.html", WEB_DIR)
            files_dir = self.server.platform.files_dir  # type: ignore[attr-defined]
            if path.startswith("/files/") and files_dir is not None:
                return self._static(files_dir / unquote(path[len("/files/"):]), files_dir)
            if path.count("/") == 1 and "." in path:
                return self._static(WEB_DIR / path.lstrip("/"), WEB_DIR)
            self._reply(404, {"Content-Type": "text/plain"}, b"Not found")

        do_GET = do_POST = do_OPTIONS = do_PUT = do_DELETE = do_PATCH = do_HEAD = _route

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.platform = None  # type: ignore[attr-defined]
    return server


class Pinger(threading.Thread):
    """The built-in cron: pings worker, then checker, every `interval` seconds over HTTP."""

    def __init__(self, base_url: str, interval: float, cron_secret: str = ""):
        super().__init__(name="pinger", daemon=True)
        self.base_url, self.interval, self.cron_secret = base_url, interval, cron_secret
        self.stopped = threading.Event()

    def run(self) -> None:
        import requests

        headers = {"X-Cron-Secret": self.cron_secret} if self.cron_secret else {}
        while not self.stopped.wait(self.interval):
            for name in ("worker", "checker"):
                try:
                    requests.get(f"{self.base_url}/{name}", headers=headers, timeout=FUNCTION_TIMEOUT_S + 5)
                except requests.RequestException as error:
                    print(f"[devserver] cron ping of {name} failed: {error}", file=sys.stderr)

    def stop(self) -> None:
        self.stopped.set()
