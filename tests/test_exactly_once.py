"""Guarantee 1: exactly one Replicate prediction per step attempt, under concurrent worker and
checker pings, status polls with force_check, and double-clicked Continue, from 4 processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg2

from tests.conftest import look

ROOT = Path(__file__).resolve().parent.parent


def test_four_processes_pinging_and_double_clicking_create_one_prediction_per_step(fn, sim, env):
    sim.set_faults(read_failure_rate=0.2)
    tasks = [fn.start(look(3), user=f"shopper-{i}").body["task_id"] for i in range(8)]
    # status/continue from the pinger carry X-User-Id user-1: let them see every shopper's task.
    with psycopg2.connect(env["DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute("UPDATE replicate_tasks SET user_id = 'user-1'")
    conn.close()
    processes = [
        subprocess.Popen([sys.executable, "-m", "tests.pinger", "60", *tasks], cwd=ROOT, env=os.environ.copy(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    reports = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-2000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))

    views = [fn.status(task_id).body for task_id in tasks]
    assert [v["status"] for v in views] == ["completed"] * len(tasks)
    steps_run = sum(len(v["steps"]) for v in views)
    assert steps_run == 24
    assert sim.stats["predictions_created"] == steps_run
    assert sim.stats["create_calls"] == steps_run
    prediction_ids = [s["prediction_id"] for v in views for s in v["steps"]]
    assert len(set(prediction_ids)) == steps_run
    # The double clicks really raced: more Continue calls than steps that needed one.
    assert sum(r["continue"] for r in reports) > 16
    assert sum(r["continue_ok"] for r in reports) == 16
