"""The seed's timestamps have no time zone (TIMESTAMP DEFAULT NOW()), so they hold the server's
local time. With a database whose zone is far from UTC, the API still answers in UTC, the step
deadline still counts real seconds, and the seed's `sec_ago` still reads 0, not hours."""

from datetime import datetime, timezone

import psycopg2
import pytest

from shared import db as shared_db
from tests.conftest import drive, look, recheck_due


@pytest.fixture
def far_zone(env):
    conn = psycopg2.connect(env["DATABASE_URL"])
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT current_database()")
        cur.execute(f'ALTER DATABASE "{cur.fetchone()[0]}" SET timezone TO \'Pacific/Kiritimati\'')  # UTC+14
    conn.close()
    shared_db.close()  # new connections pick the zone up
    return env


def test_status_times_are_utc_whatever_the_servers_zone(fn, sim, far_zone):
    task_id = fn.start(look(1)).body["task_id"]
    view = drive(fn, task_id, "completed")
    now = datetime.now(timezone.utc)
    for stamp in (view["created_at"], view["updated_at"], view["steps"][0]["started_at"], view["steps"][0]["completed_at"]):
        assert stamp.endswith("Z")
        assert abs((now - datetime.fromisoformat(stamp.replace("Z", "+00:00"))).total_seconds()) < 60


def test_the_seeds_sec_ago_is_seconds_not_the_zones_offset(fn, sim, far_zone):
    fn.start(look(1))
    conn = psycopg2.connect(far_zone["DATABASE_URL"])
    with conn.cursor() as cur:
        cur.execute("SELECT ROUND(EXTRACT(EPOCH FROM (NOW() - updated_at))) as sec_ago FROM replicate_tasks")
        assert 0 <= cur.fetchone()[0] < 60
    conn.close()


def test_a_fresh_step_is_not_mistaken_for_an_overdue_one(fn, sim, env, far_zone, monkeypatch):
    monkeypatch.setenv("STEP_TIMEOUT_S", "60")
    sim.set_faults(duration_s=5)
    task_id = fn.start(look(1)).body["task_id"]
    fn.worker()
    recheck_due(env)  # the launch counts as a check; the next one is due after RECHECK_INTERVAL_S
    assert fn.checker().body["running"] == 1
    assert fn.status(task_id).body["status"] == "processing"
