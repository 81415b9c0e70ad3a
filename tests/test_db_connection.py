"""Warm invocations reuse one connection; a dropped one is replaced; none is left mid-transaction."""

import uuid

import psycopg2
import pytest

from shared import db
from tests.conftest import look


def backend_pid():
    conn = db._local.conn
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid() AS pid")
        return cur.fetchone()["pid"]


def test_warm_invocations_reuse_one_connection(fn, sim):
    task_id = fn.start(look(1)).body["task_id"]
    first = backend_pid()
    for _ in range(5):
        assert fn.status(task_id).status == 200
    assert backend_pid() == first


def test_a_connection_the_server_dropped_is_replaced_without_an_error(fn, sim, env):
    task_id = fn.start(look(1)).body["task_id"]
    old = backend_pid()
    admin = psycopg2.connect(env["DATABASE_URL"])
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (old,))
    admin.close()
    reply = fn.status(task_id)
    assert reply.status == 200
    assert backend_pid() != old


def test_a_failed_transaction_does_not_poison_the_next_invocation(fn, sim, env):
    database = db.Database(env["DATABASE_URL"])
    with pytest.raises(psycopg2.errors.UndefinedTable):
        with database.transaction() as cur:
            cur.execute("SELECT * FROM no_such_table")
    assert db._local.conn.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    assert fn.status(str(uuid.uuid4())).status == 404
