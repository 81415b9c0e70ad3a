"""The simulator's HTTP face: Replicate's `/v1/` paths, its `/files/` downloads, the `/_sim/`
admin calls for tests, and `python -m devserver.replicate_sim`."""

from __future__ import annotations

import argparse
import json
import re
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from devserver.replicate_sim.state import SimError

CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg"}


class SimServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the listen backlog: many clients at once are queued, not reset


def make_server(sim, host: str, port: int) -> SimServer:
    return SimServer((host, port), _handler_for(sim))


def _handler_for(sim):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "replicate-sim"
        # Headers and body go out in two writes: with Nagle's algorithm the body of a second
        # answer on a kept-alive connection waited ~40 ms for the client's delayed ACK.
        disable_nagle_algorithm = True

        def log_message(self, *args):  # quiet: the devserver logs what matters
            pass

        def _send(self, status: int, body, headers: dict | None = None, content_type: str = "application/json",
                  drip_s: float = 0.0) -> None:
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if not drip_s:
                self.wfile.write(payload)
                return
            self.wfile.flush()
            self.close_connection = True
            for index in range(len(payload)):  # one byte every drip_s: a slow network, for deadlines
                if sim._stop.wait(drip_s):
                    return
                try:
                    self.wfile.write(payload[index:index + 1])
                    self.wfile.flush()
                except OSError:
                    return  # the client gave up

        def _body(self):
            length = self.headers.get("Content-Length") or "0"
            if not length.isdigit():
                self.close_connection = True
                raise SimError(400, "Bad request", "Content-Length must be a non-negative integer")
            raw = self.rfile.read(int(length)) if int(length) else b""
            self.body_read = True
            if not raw:
                return {}
            try:
                return json.loads(raw)
            except ValueError:
                raise SimError(400, "Bad request", "The request body is not valid JSON") from None

        def _route(self, method: str) -> None:
            parts = urlsplit(self.path)
            path, query = parts.path.rstrip("/") or "/", {k: v[0] for k, v in parse_qs(parts.query).items()}
            drip, self.body_read = 0.0, False
            try:
                if path.startswith("/_sim/"):
                    return self._admin(method, path)
                if path.startswith("/files/") and method == "GET":
                    return self._file(path[len("/files/"):])
                if not path.startswith("/v1/"):
                    raise SimError(404, "Not found", "Not found.")
                drip = sim.faults.slow_drip_s
                sim.authorize(self.headers.get("Authorization"))
                latency = sim.faults.latency_s
                if latency:
                    time.sleep(latency)
                status, body = self._api(method, path, query)
                self._send(status, body, drip_s=drip)
            except SimError as error:
                if not self.body_read and self.headers.get("Content-Length", "0") != "0":
                    self.close_connection = True  # the unread body must not be taken for the next request
                self._send(error.status, error.body(), error.headers, "application/problem+json", drip_s=drip)

        def _api(self, method: str, path: str, query: dict) -> tuple[int, dict]:
            headers = {k.lower(): v for k, v in self.headers.items()}
            if method == "POST" and path == "/v1/predictions":
                return 201, sim.create(self._body(), headers=headers)
            match = re.fullmatch(r"/v1/models/([^/]+)/([^/]+)/predictions", path)
            if method == "POST" and match:
                return 201, sim.create(self._body(), model=f"{match[1]}/{match[2]}", headers=headers)
            match = re.fullmatch(r"/v1/predictions/([^/]+)(/cancel)?", path)
            if match and method == "GET" and not match[2]:
                return 200, sim.get(match[1])
            if match and method == "POST" and match[2]:
                return 200, sim.cancel(match[1])
            if path == "/v1/predictions" and method == "GET":
                return 200, sim.list(query)
            if path == "/v1/webhooks/default/secret" and method == "GET":
                return 200, {"key": sim.webhook_secret}
            raise SimError(404, "Not found", "Not found.")

        def _file(self, file_id: str) -> None:
            with sim._lock:
                data = sim.files.get(file_id)
                sim.stats["file_gets"] += 1
                if data is None:
                    sim.stats["expired_file_gets"] += 1
                drip = sim.faults.slow_drip_s if sim.faults.slow_drip_files else 0.0
            if data is None:
                raise SimError(404, "Not found", "This file has been removed.")
            self._send(200, data, content_type=CONTENT_TYPES.get(file_id.rsplit(".", 1)[-1], "image/png"), drip_s=drip)

        def _admin(self, method: str, path: str) -> None:
            if method == "POST" and path == "/_sim/faults":
                body = self._body()
                try:
                    sim.set_faults(**body)
                except (TypeError, ValueError) as error:
                    raise SimError(400, "Bad fault", str(error)) from None
                return self._send(200, {"ok": True})
            if method == "POST" and path == "/_sim/reset":
                sim.reset()
                return self._send(200, {"ok": True})
            if method == "POST" and path == "/_sim/expire":
                sim.expire_outputs()
                return self._send(200, {"ok": True})
            if method == "POST" and path.startswith("/_sim/forget/"):
                sim.forget(path.rsplit("/", 1)[1])
                return self._send(200, {"ok": True})
            if method == "GET" and path == "/_sim/stats":
                with sim._lock:
                    return self._send(200, dict(sim.stats))
            if method == "GET" and path == "/_sim/predictions":
                return self._send(200, sim.snapshot())
            raise SimError(404, "Not found", "Not found.")

        def do_GET(self):
            self._route("GET")

        def do_POST(self):
            self._route("POST")

    return Handler


def main() -> None:
    from devserver.replicate_sim import __doc__ as description
    from devserver.replicate_sim.simulator import Simulator

    parser = argparse.ArgumentParser(prog="python -m devserver.replicate_sim", description=description.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds a prediction runs")
    parser.add_argument("--output-ttl", type=float, default=3600.0, help="seconds before outputs are removed")
    parser.add_argument("--token", default=None, help="the only API token accepted (default: any)")
    parser.add_argument("--webhook-secret", default=None)
    args = parser.parse_args()
    sim = Simulator(args.host, args.port, duration_s=args.duration, output_ttl_s=args.output_ttl,
                    token=args.token, webhook_secret=args.webhook_secret).start()
    print(f"Replicate simulator on {sim.url} (webhook secret {sim.webhook_secret})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sim.stop()
