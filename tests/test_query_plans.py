"""Selecting due work never scans finished tasks: with 100,000 finished rows, the worker's and the
checker's claims and the caps use the partial indexes, not a sequential scan of the table."""

import json

import psycopg2
import pytest

from shared import queries, start_queries


@pytest.fixture
def big_table(database_url):
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("""
        INSERT INTO replicate_tasks (id, user_id, status, person_image, garments, current_step, total_steps,
                                     result_url, prediction_id, created_at, updated_at)
        SELECT gen_random_uuid()::text, 'user-' || (n % 5000),
               CASE WHEN n % 10 = 0 THEN 'failed' ELSE 'completed' END,
               'https://cdn.example.com/p.png', '["https://cdn.example.com/g.png"]', 1, 1,
               CASE WHEN n % 10 = 0 THEN NULL ELSE 'https://cdn.example.com/r.png' END,
               'done-' || n, NOW() - make_interval(mins => n), NOW()
        FROM generate_series(1, 100000) AS n""")
    cur.execute("""
        INSERT INTO replicate_tasks (id, user_id, status, person_image, garments, current_step, total_steps,
                                     prediction_id, step_started_at, updated_at)
        SELECT gen_random_uuid()::text, 'live', CASE WHEN n % 2 = 0 THEN 'pending' ELSE 'processing' END,
               'https://cdn.example.com/p.png', '["https://cdn.example.com/g.png"]', n % 2, 1,
               CASE WHEN n % 2 = 0 THEN NULL ELSE 'live-' || n END,
               CASE WHEN n % 2 = 0 THEN NULL ELSE NOW() END, NOW()
        FROM generate_series(1, 20) AS n""")
    cur.execute("ANALYZE replicate_tasks")
    yield cur
    conn.close()


def plan(cur, sql, params) -> str:
    cur.execute("EXPLAIN (FORMAT JSON) " + sql, params)
    return json.dumps(cur.fetchone()[0])


def scans_of(plan_json: str) -> list[tuple[str, str]]:
    found = []

    def bitmap_indexes(node) -> list[str]:
        names = [node["Index Name"]] if node.get("Node Type") == "Bitmap Index Scan" else []
        for child in node.get("Plans", []):
            names += bitmap_indexes(child)
        return names

    def walk(node):
        if isinstance(node, dict):
            if node.get("Relation Name") == "replicate_tasks":
                if node["Node Type"] == "Bitmap Heap Scan":  # the index is named on its children
                    found.extend(("Bitmap Heap Scan", index) for index in bitmap_indexes(node))
                else:
                    found.append((node["Node Type"], node.get("Index Name", "")))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(plan_json))
    return found


# Partial indexes that hold unfinished tasks only (migrations 0002 and 0003).
UNFINISHED_ONLY = {"replicate_tasks_to_launch", "replicate_tasks_in_flight", "replicate_tasks_active",
                   "replicate_tasks_user_active"}


@pytest.mark.parametrize("name,sql,params", [
    ("worker claim", queries.CLAIM_TO_LAUNCH, {"stale_s": 90, "limit": 16, "token": "t"}),
    ("checker claim", queries.CLAIM_TO_CHECK, {"recheck_s": 3, "limit": 64, "run_started": "2100-01-01"}),
    ("checker due count", queries.DUE_TO_CHECK, {"recheck_s": 3}),
])
def test_due_work_is_found_through_a_partial_index(big_table, name, sql, params):
    scans = scans_of(plan(big_table, sql, params))
    # The claim's UPDATE re-finds its few rows by primary key; what matters is how they are chosen.
    choosing = [scan for scan in scans if scan[0] != "ModifyTable" and scan[1] != "replicate_tasks_pkey"]
    assert choosing, f"{name}: no scan of replicate_tasks in the plan"
    assert all(kind != "Seq Scan" for kind, _ in choosing), f"{name} scans the whole table: {scans}"
    assert all(index in UNFINISHED_ONLY for _, index in choosing), f"{name} reads finished tasks: {scans}"


def every_scan(plan_json: str) -> list[tuple[str, str, str]]:
    """(node type, relation, index) of every scan in a plan."""
    found = []

    def walk(node):
        if "Scan" in node.get("Node Type", ""):
            found.append((node["Node Type"], node.get("Relation Name", ""), node.get("Index Name", "")))
        for child in node.get("Plans", []):
            walk(child)

    walk(json.loads(plan_json)[0]["Plan"])
    return found


@pytest.fixture
def step_history(big_table):
    """100,000 succeeded steps of finished looks, and a few from the last hour."""
    big_table.execute("""
        INSERT INTO replicate_task_steps (task_id, step, attempt, status, prediction_id, image_url,
                                          created_at, started_at, completed_at)
        SELECT id, 1, 1, 'succeeded', prediction_id, result_url, created_at, created_at,
               created_at + INTERVAL '40 seconds'
        FROM replicate_tasks WHERE status = 'completed'""")
    big_table.execute("ANALYZE replicate_task_steps")
    return big_table


START_PARAMS = {"user_id": "user-7", "key": "click-1", "id": "t", "person_image": "p", "garments": "[]",
                "prompt_hints": None, "total_steps": 1, "request_hash": "h", "file_prefix": "f",
                "max_user_active": 3, "max_user_starts": 30, "max_site_active": 1000, "max_site_steps": 2000}


@pytest.mark.parametrize("name,sql", [
    ("start's checks, caps and estimate", start_queries.START_CHECKS),
    ("start's insert with the caps again", start_queries.INSERT_TASK),
    ("the step budget of Continue and Retry, the user's and the site's", queries.STEP_BUDGET),
])
def test_every_query_start_runs_reads_indexes_not_history(step_history, name, sql):
    scans = every_scan(plan(step_history, sql, START_PARAMS))
    assert scans, f"{name}: no scan in the plan"
    assert not [scan for scan in scans if scan[0] == "Seq Scan"], f"{name} scans a whole table: {scans}"
    # A bitmap heap scan names its index on its child, listed too.
    reading_tasks = {index for kind, relation, index in scans
                     if relation == "replicate_tasks" and kind != "Bitmap Heap Scan"}
    # A user's (user_id, created_at ...) indexes read only that user's recent rows; the planner
    # may take either (replicate_tasks_user_newest serves My looks, migration 0009).
    assert reading_tasks <= UNFINISHED_ONLY | {"replicate_tasks_idempotency", "replicate_tasks_user_created",
                                             "replicate_tasks_user_newest"}, scans


def test_the_estimate_reads_only_the_latest_succeeded_steps(step_history):
    scans = every_scan(plan(step_history, start_queries.START_CHECKS, START_PARAMS))
    assert ("Index Scan", "replicate_task_steps", "replicate_task_steps_recent_success") in scans, scans
