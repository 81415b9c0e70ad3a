"""Forward-only numbered SQL migrations: `python -m migrations` applies the pending ones.

Files are `NNNN_name.sql` beside this module, applied in order, each in its own transaction, and
recorded in `schema_migrations` with a checksum. A session-level advisory lock makes concurrent
runs wait for each other instead of racing, so the command is safe to run twice or at once from
several deploys. A database made by the original functions (it has `replicate_tasks` but no
`schema_migrations`) is baselined: 0001 is recorded as applied, because it is that very table.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg2

MIGRATIONS_DIR = Path(__file__).resolve().parent
# Any constant works; it only has to be the same for every run of this command.
LOCK_KEY = 7_231_004_117

CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(RuntimeError):
    pass


def available() -> list[Migration]:
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a number")
    return found


def apply(dsn: str, log=print) -> list[int]:
    """Applies pending migrations to `dsn`; returns the versions it applied."""
    conn = psycopg2.connect(dsn, connect_timeout=10, application_name="tryon-migrations")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
            try:
                return _apply_locked(conn, log)
            finally:
                cur.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    finally:
        conn.close()


def _apply_locked(conn, log) -> list[int]:
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('schema_migrations') IS NULL")
        fresh_ledger = cur.fetchone()[0]
        cur.execute(CREATE_LEDGER)
        cur.execute("SELECT to_regclass('replicate_tasks') IS NOT NULL")
        seed_table_exists = cur.fetchone()[0]
        migrations = available()
        if fresh_ledger and seed_table_exists:
            first = migrations[0]
            cur.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (first.version, first.name, first.checksum),
            )
            log(f"baselined {first.version:04d}_{first.name}: replicate_tasks already exists")
        cur.execute("SELECT version, checksum FROM schema_migrations")
        applied = dict(cur.fetchall())

    done = []
    for migration in migrations:
        if migration.version in applied:
            if applied[migration.version] != migration.checksum:
                log(f"warning: {migration.version:04d}_{migration.name} changed after it was applied")
            continue
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            try:
                cur.execute(migration.sql)
                cur.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
                cur.execute("COMMIT")
            except Exception:
                cur.execute("ROLLBACK")
                raise
        log(f"applied {migration.version:04d}_{migration.name}")
        done.append(migration.version)
    return done
