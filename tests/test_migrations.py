"""Migrations: forward-only, recorded, idempotent, safe concurrently, and an original database
(the seed's table, old rows) is adopted without losing or breaking anything."""

import subprocess
import sys
import threading
from pathlib import Path

import migrations
from tests.conftest import Functions, drive, run_sql

ROOT = Path(__file__).resolve().parent.parent
ALL = [m.version for m in migrations.available()]
SEED_TABLE = (ROOT / "migrations" / "0001_replicate_tasks.sql").read_text()


query = run_sql


def test_0001_is_the_seed_create_table_verbatim():
    seed = (ROOT.parent / "shared" / "seed" / "REPLICATE_MANUAL_STEPS.md")
    if seed.exists():
        text = seed.read_text()
        block = text[text.index("CREATE TABLE replicate_tasks"):]
        block = block[:block.index(");") + 2]
        assert SEED_TABLE.strip() == block.strip()
    assert SEED_TABLE.startswith("CREATE TABLE replicate_tasks (")


def test_applying_twice_applies_nothing_the_second_time(empty_database_url):
    assert migrations.apply(empty_database_url, log=lambda *_: None) == ALL
    assert migrations.apply(empty_database_url, log=lambda *_: None) == []
    assert [r[0] for r in query(empty_database_url, "SELECT version FROM schema_migrations ORDER BY 1")] == ALL


def test_concurrent_runs_wait_for_each_other_and_apply_each_migration_once(empty_database_url):
    results, errors = [], []

    def run():
        try:
            results.append(migrations.apply(empty_database_url, log=lambda *_: None))
        except Exception as error:  # recorded and asserted below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results, key=len) == [[], [], [], ALL]


def test_python_m_migrations_uses_database_url(empty_database_url):
    env = {"DATABASE_URL": empty_database_url, "PATH": "/usr/bin:/bin"}
    first = subprocess.run([sys.executable, "-m", "migrations"], cwd=ROOT, env=env, capture_output=True, text=True)
    second = subprocess.run([sys.executable, "-m", "migrations"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert first.returncode == 0 and f"{len(ALL)} migration(s) applied" in first.stdout
    assert second.returncode == 0 and "up to date" in second.stdout
    missing = subprocess.run([sys.executable, "-m", "migrations"], cwd=ROOT, env={"PATH": "/usr/bin:/bin"},
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "DATABASE_URL is not set" in missing.stderr


def test_an_original_database_is_baselined_and_its_old_rows_keep_working(empty_database_url, sim, env, monkeypatch):
    query(empty_database_url, SEED_TABLE)
    old_rows = [
        # Written by the original functions: seed columns only, garments as a JSON list of URLs.
        ("11111111-1111-4111-8111-111111111111", "old-user", "waiting_continue", '["https://cdn.example.com/a.png", "https://cdn.example.com/b.png"]',
         "https://replicate.delivery/old/step1.png", 1, 2),
        ("22222222-2222-4222-8222-222222222222", "old-user", "pending", '["https://cdn.example.com/c.png"]', None, 0, 1),
    ]
    for task_id, user, status, garments, intermediate, step, total in old_rows:
        query(empty_database_url, """
            INSERT INTO replicate_tasks (id, user_id, status, person_image, garments, intermediate_result,
                                         current_step, total_steps, updated_at)
            VALUES (%s, %s, %s, 'https://cdn.example.com/me.png', %s, %s, %s, %s, NOW())""",
              (task_id, user, status, garments, intermediate, step, total))
    assert migrations.apply(empty_database_url, log=lambda *_: None) == ALL[1:]
    assert query(empty_database_url, "SELECT count(*) FROM replicate_tasks")[0][0] == 2

    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    fn = Functions()
    waiting = fn.status(old_rows[0][0], user="old-user").body
    assert (waiting["status"], waiting["current_step"], waiting["total_steps"]) == ("waiting_continue", 1, 2)
    assert waiting["steps"][1]["garment"]["image"] == "https://cdn.example.com/b.png"
    assert fn.act(old_rows[0][0], user="old-user").status == 200
    assert sim.created_inputs()[-1]["human_img"] == "https://replicate.delivery/old/step1.png"
    assert drive(fn, old_rows[1][0], "completed", user="old-user")["status"] == "completed"
