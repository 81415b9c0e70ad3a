"""The checker writes outcomes in batches (issue 13): 1,000 in-flight predictions reconciled from
the simulator's list endpoint in a bounded number of SQL statements, and every statement that
finds an in-flight task by its prediction probes an index even with statistics taken while
nothing was in flight (no scan of the in-flight rows per prediction)."""

import json
import uuid

import psycopg2
import psycopg2.extras
import pytest

from shared import db as shared_db
from shared import queries, step_end

PNG = "https://cdn.example.com/person.png"
GARMENTS = json.dumps([{"image": PNG, "category": "upper_body"}, {"image": PNG, "category": "lower_body"}])


def insert_in_flight(cur, prediction_ids: list[str]) -> list[str]:
    """Tasks at step 1 of 2, each running one of the given predictions."""
    rows = [(str(uuid.uuid4()), prediction_id, PNG, GARMENTS) for prediction_id in prediction_ids]
    psycopg2.extras.execute_values(cur, """
        INSERT INTO replicate_tasks (id, user_id, status, person_image, garments, current_step, total_steps,
                                     prediction_id, step_started_at, updated_at)
        SELECT v.id, 'shopper', 'processing', v.person, v.garments, 1, 2, v.prediction_id, NOW(), NOW()
        FROM (VALUES %s) AS v (id, prediction_id, person, garments)""", rows)
    psycopg2.extras.execute_values(cur, """
        INSERT INTO replicate_task_steps (task_id, step, attempt, status, prediction_id, started_at)
        SELECT v.id, 1, 1, 'processing', v.prediction_id, NOW() FROM (VALUES %s) AS v (id, prediction_id)""",
        [row[:2] for row in rows])
    return [row[0] for row in rows]


@pytest.fixture
def statements(monkeypatch):
    """Counts the SQL statements the functions send (every one goes through Database._run)."""
    sent = []
    real_run = shared_db.Database._run

    def counting_run(self, execute, *, read_only):
        sent.append(read_only)
        return real_run(self, execute, read_only=read_only)

    monkeypatch.setattr(shared_db.Database, "_run", counting_run)
    return sent


def test_a_thousand_finished_predictions_are_reconciled_in_a_few_statements(fn, sim, env, statements):
    from devserver.replicate_sim import IDM_VTON_VERSION

    sim.set_faults(render_outputs=False)
    created = [sim.create({"version": IDM_VTON_VERSION, "input": {"human_img": PNG, "garm_img": PNG}}, headers={})
               for _ in range(1000)]
    conn = psycopg2.connect(env["DATABASE_URL"])
    conn.autocommit = True
    with conn.cursor() as cur:
        tasks = insert_in_flight(cur, [prediction["id"] for prediction in created])
    sim.wait_idle(timeout=120)
    sim.stats.clear()

    reply = fn.checker().body

    assert (reply["ready"], reply["remaining"], reply["errors"]) == (1000, 0, 0)
    assert sim.stats["get_calls"] == 0 and sim.stats["list_calls"] == 10
    assert len(statements) <= 40, f"{len(statements)} statements"
    with conn.cursor() as cur:
        cur.execute("""SELECT t.status, s.status, s.progress_percent, s.predict_time_s IS NOT NULL, s.model
                       FROM replicate_tasks t JOIN replicate_task_steps s ON s.task_id = t.id
                       WHERE t.id = ANY(%s) GROUP BY 1, 2, 3, 4, 5""", (tasks,))
        assert cur.fetchall() == [("waiting_continue", "succeeded", 100, True, "cuuupid/idm-vton")]
    conn.close()


# --- plans with stale statistics ----------------------------------------------------------------

@pytest.fixture
def stale_in_flight(database_url):
    """10,000 finished looks (a step each), ANALYZE while nothing is in flight, then 1,000 in flight: the
    planner believes there are no processing rows."""
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute(f"""
        INSERT INTO replicate_tasks (id, user_id, status, person_image, garments, current_step, total_steps,
                                     result_url, intermediate_result, prediction_id, created_at, updated_at)
        SELECT gen_random_uuid()::text, 'old-' || (n % 500), 'completed', '{PNG}', '{GARMENTS}', 2, 2,
               '{PNG}', '{PNG}', 'done-' || n, NOW() - make_interval(mins => n), NOW()
        FROM generate_series(1, 10000) AS n""")
    cur.execute("""
        INSERT INTO replicate_task_steps (task_id, step, attempt, status, prediction_id, image_url, model,
                                          created_at, started_at, completed_at)
        SELECT id, 2, 1, 'succeeded', prediction_id, result_url, 'cuuupid/idm-vton',
               created_at, created_at, created_at + INTERVAL '40 seconds'
        FROM replicate_tasks""")
    cur.execute("ANALYZE replicate_tasks")
    cur.execute("ANALYZE replicate_task_steps")
    predictions = [f"live-{n}" for n in range(1000)]
    tasks = insert_in_flight(cur, predictions)
    yield cur, tasks, predictions
    conn.close()


def analyzed(cur, sql, params) -> list[dict]:
    """EXPLAIN ANALYZE in a transaction that is rolled back: every plan node, flattened."""
    cur.execute("BEGIN")
    try:
        cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
        root = cur.fetchone()[0][0]["Plan"]
    finally:
        cur.execute("ROLLBACK")
    nodes, todo = [], [root]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo.extend(node.get("Plans", []))
    return nodes


def assert_no_in_flight_scan(nodes):
    """No scan of replicate_tasks but by index, and no node that throws rows away per prediction
    (the quadratic plan: an index probe per prediction that filters every in-flight row)."""
    for node in nodes:
        table = node.get("Relation Name")
        if table == "replicate_tasks":
            assert node["Node Type"] != "Seq Scan", node
        if table in ("replicate_tasks", "replicate_task_steps") and node.get("Actual Loops", 1) > 1:
            assert node.get("Rows Removed by Filter", 0) <= 1, (table, node.get("Index Name"), node.get("Filter"))
        if table == "replicate_tasks":
            assert node.get("Rows Removed by Filter", 0) <= 1, (node.get("Index Name"), node.get("Filter"))


@pytest.mark.parametrize("batch", [1, 250])
def test_step_end_writes_probe_indexes_with_stale_statistics(stale_in_flight, batch):
    cur, tasks, predictions = stale_in_flight
    ids, prediction_ids = tasks[:batch], predictions[:batch]
    nones = [None] * batch
    succeeded = analyzed(cur, step_end.STEPS_SUCCEEDED, {
        "ids": ids, "prediction_ids": prediction_ids, "image_urls": [PNG] * batch, "outputs": [PNG] * batch,
        "predict_times": [1.5] * batch, "models": ["cuuupid/idm-vton"] * batch, "costs": [0.001] * batch})
    failed = analyzed(cur, step_end.STEPS_FAILED, {
        "ids": ids, "prediction_ids": prediction_ids, "step_statuses": ["failed"] * batch,
        "errors": ["The try-on model could not finish step 1."] * batch, "error_codes": ["model_failed"] * batch,
        "error_details": nones, "predict_times": nones, "models": nones, "costs": nones})
    progress = analyzed(cur, step_end.STEPS_PROGRESS, {"prediction_ids": prediction_ids, "percents": [40] * batch})
    for nodes in (succeeded, failed, progress):
        assert_no_in_flight_scan(nodes)
    for nodes in (succeeded, failed):  # each task found by its primary key
        assert any(node.get("Relation Name") == "replicate_tasks" and node.get("Index Name") for node in nodes)


def test_the_webhook_lookup_probes_the_prediction_index_with_stale_statistics(stale_in_flight):
    cur, _, predictions = stale_in_flight
    nodes = analyzed(cur, queries.TASK_BY_PREDICTION, {"prediction_id": predictions[500]})
    assert_no_in_flight_scan(nodes)
    assert [node.get("Index Name") for node in nodes if node.get("Relation Name") == "replicate_tasks"] == [
        "replicate_tasks_prediction"]
    assert nodes[0]["Actual Rows"] == 1


def test_a_running_steps_eta_reads_recent_steps_of_its_model_by_index(stale_in_flight):
    cur, _, _ = stale_in_flight
    nodes = analyzed(cur, queries.MODEL_STEP_SECONDS, {"model": "cuuupid/idm-vton"})
    assert [node["Node Type"] for node in nodes if node.get("Relation Name") == "replicate_task_steps"] != ["Seq Scan"]
    assert_no_in_flight_scan(nodes)


# --- error codes and progress in the status view ---------------------------------------------------

def test_a_failed_step_records_its_code_and_the_models_own_words(fn, sim, env):
    from tests.conftest import drive, look

    sim.set_faults(outcomes=["failed"], failure_error="CUDA out of memory. Tried to allocate 2.00 GiB")
    task_id = fn.start(look(2)).body["task_id"]
    seen = drive(fn, task_id, "failed")
    assert (seen["error_code"], seen["error_detail"]) == ("model_failed", "CUDA out of memory. Tried to allocate 2.00 GiB")
    assert seen["error_message"].startswith("The try-on model could not finish step 1")
    assert seen["steps"][0]["error_code"] == "model_failed"
    assert "progress" not in seen


def test_cancel_by_the_user_records_its_code(fn, sim, env):
    from tests.conftest import look

    sim.set_faults(duration_s=30)
    task_id = fn.start(look(1)).body["task_id"]
    fn.worker()
    seen = fn.act(task_id, "cancel").body
    assert (seen["status"], seen["error_code"], seen["error_detail"]) == ("failed", "canceled_by_user", None)


def test_progress_of_a_running_step_comes_from_the_logs_a_check_read(fn, sim, env, monkeypatch):
    from shared import progress
    from tests.conftest import look, recheck_due

    monkeypatch.setattr(progress, "_typical", {"cuuupid/idm-vton": (float("inf"), 40.0)})  # fresh for ever
    sim.set_faults(duration_s=30)
    task_id = fn.start(look(1)).body["task_id"]
    fn.worker()
    real_get = sim.get
    tqdm = " 20%|██        | 6/30 [00:02<00:08]\n 40%|████      | 12/30 [00:04<00:06]\n"
    monkeypatch.setattr(sim, "get", lambda prediction_id: {**real_get(prediction_id), "logs": tqdm})
    sim.stats.clear()
    before = fn.status(task_id).body["progress"]
    assert before["percent"] is None and before["eta_s"] <= 40.0
    recheck_due(env)  # as if RECHECK_INTERVAL_S had passed since the launch
    fn.checker()
    reads = sim.stats["get_calls"]
    running = fn.status(task_id).body
    assert running["progress"]["percent"] == 40
    elapsed = running["progress"]["elapsed_s"]
    assert elapsed >= 0 and running["progress"]["eta_s"] == round(max(40.0 - elapsed, 0.0), 1)
    assert sim.stats["get_calls"] == reads == 1  # the status poll made no Replicate call


@pytest.mark.parametrize("logs,percent", [
    ("", None),
    ("Loading pipeline...\n", None),
    (" 40%|████      | 12/30 [00:04<00:06,  2.9it/s]\n", 40),
    (" 10%|█ | 3/30 [00:01<00:09]\r 100%|██████████| 30/30 [00:10<00:00]\nDone.\n", 100),
    ("copied 3/4 files", None),  # not tqdm's bar
])
def test_percent_from_logs(logs, percent):
    from shared.progress import percent_from_logs

    assert percent_from_logs(logs) == percent


def test_eta_is_read_from_the_database_at_most_once_a_minute(database_url, monkeypatch):
    from shared import progress
    from shared.db import Database

    monkeypatch.setattr(progress, "_typical", {})
    reads = []
    db = Database(database_url)
    monkeypatch.setattr(db, "scalar", lambda sql, params: reads.append(params) or 30.0)
    assert progress.typical_seconds(db, "a/model", now=1000.0) == 30.0
    assert progress.typical_seconds(db, "a/model", now=1059.0) == 30.0
    assert len(reads) == 1
    progress.typical_seconds(db, "a/model", now=1061.0)
    assert len(reads) == 2

