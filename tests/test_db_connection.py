"""Warm invocations reuse one connection; a dropped one is replaced; none is left mid-transaction."""


import contextlib
import json
import os
import socket
import socketserver
import threading
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg2
import psycopg2.extensions
import pytest

from shared import db
from tests.conftest import look, wait_until


def backend_pid():
    conn = db._local.conn
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return cur.fetchone()[0]


def test_warm_invocations_reuse_one_connection(fn, sim):
    task_id = fn.start(look(1)).body["task_id"]
    first = backend_pid()
    for _ in range(5):
        assert fn.status(task_id).status == 200
    assert backend_pid() == first


def terminate(env, pid):
    admin = psycopg2.connect(env["DATABASE_URL"])
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
            wait_until(lambda: cur.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)) or not cur.fetchone())
    finally:
        admin.close()


def test_a_connection_the_server_dropped_while_idle_is_replaced_before_a_write(fn, sim, env, monkeypatch):
    task_id = fn.start(look(1)).body["task_id"]
    old = backend_pid()
    terminate(env, old)
    probes = []
    real_alive = db._alive
    monkeypatch.setattr(db, "_alive", lambda conn: probes.append(1) or real_alive(conn))
    reply = fn.worker()  # its first statement is the claim, a write: it must not meet the dead connection
    assert reply.status == 200 and reply.body["started"] == 1
    assert probes  # the claim's connection was looked at first
    assert backend_pid() != old
    assert fn.status(task_id).body["status"] == "processing"


def test_a_status_poll_skips_the_probe_and_reads_again_on_a_new_connection(fn, sim, env, monkeypatch):
    """A poll pays for no select(): a dropped connection fails its read, which runs once more."""
    task_id = fn.start(look(1)).body["task_id"]
    old = backend_pid()
    terminate(env, old)
    probes, connects = [], []
    real_connect = db._connect
    monkeypatch.setattr(db, "_alive", lambda conn: probes.append(1) or True)
    monkeypatch.setattr(db, "_connect", lambda *args: connects.append(1) or real_connect(*args))
    reply = fn.status(task_id)
    assert reply.status == 200 and reply.body["status"] == "pending"
    assert probes == [] and connects == [1]
    assert backend_pid() != old


def test_a_read_on_a_connection_that_dies_at_that_moment_is_retried_once(fn, sim, env, monkeypatch):
    task_id = fn.start(look(1)).body["task_id"]
    old = backend_pid()
    terminate(env, old)
    monkeypatch.setattr(db, "_alive", lambda conn: not conn.closed)  # the race: it looked alive
    assert fn.status(task_id).status == 200
    assert backend_pid() != old


def test_a_write_on_a_connection_that_dies_is_not_retried_and_answers_503(fn, sim, env, monkeypatch):
    task_id = fn.start(look(1)).body["task_id"]
    terminate(env, backend_pid())
    monkeypatch.setattr(db, "_alive", lambda conn: not conn.closed)
    reply = fn.worker()  # its first statement is the claim, a write
    assert reply.status == 503 and reply.body["code"] == "database_unavailable"
    assert sim.stats["create_calls"] == 0
    assert fn.status(task_id).body["status"] == "pending"
    assert fn.worker().body["started"] == 1  # the next ping, on a new connection


def test_a_read_whose_connect_fails_is_answered_503_without_connecting_again(fn, sim, env, monkeypatch):
    """Running a read again is for a kept connection that died; a server that cannot be reached now
    would only double the wait (connect_timeout per host: 8 s for a two-host DATABASE_URL)."""
    task_id = fn.start(look(1)).body["task_id"]
    db.close()
    opened = []

    def unreachable(*args):
        opened.append(1)
        raise psycopg2.OperationalError("connection to server timed out")

    monkeypatch.setattr(db, "_open", unreachable)
    reply = fn.status(task_id)
    assert (reply.status, reply.body["code"]) == (503, "database_unavailable")
    assert opened == [1]


@pytest.mark.parametrize("dsn", ["not a url at all", "mysql://u:p@db/x"])
def test_a_database_url_libpq_cannot_read_is_503_not_configured(fn, monkeypatch, dsn):
    db.close()
    monkeypatch.setenv("DATABASE_URL", dsn)
    for reply in (fn.status(str(uuid.uuid4())), fn.worker()):
        assert (reply.status, reply.body["code"]) == (503, "not_configured"), reply


def _lock_tasks(env):
    """An admin connection holding the tasks table locked (its transaction left open): every read
    of it waits for the lock."""
    admin = psycopg2.connect(env["DATABASE_URL"])
    with admin.cursor() as cur:
        cur.execute("LOCK TABLE replicate_tasks IN ACCESS EXCLUSIVE MODE")
    return admin


def test_a_poll_whose_lock_wait_runs_out_is_answered_503_once_and_keeps_its_connection(fn, sim, env, monkeypatch,
                                                                                       capsys):
    """A lock or statement timeout is not a dropped connection: reading again would double the wait."""
    task_id = fn.start(look(1)).body["task_id"]
    pid = backend_pid()
    with db._local.conn.cursor() as cur:
        cur.execute("SET lock_timeout = 200")
    attempts, connects = [], []
    real_run_once, real_connect = db.Database._run_once, db._connect
    monkeypatch.setattr(db.Database, "_run_once", lambda self, *args: attempts.append(1) or real_run_once(self, *args))
    monkeypatch.setattr(db, "_connect", lambda *args: connects.append(1) or real_connect(*args))
    admin = _lock_tasks(env)
    try:
        reply = fn.status(task_id)
    finally:
        admin.rollback()
        admin.close()
    assert reply.status == 503 and reply.body["code"] == "database_unavailable"
    assert attempts == [1] and connects == []
    assert backend_pid() == pid
    # Logged as load, not as an outage: the on-call reads "busy", not "unavailable".
    said = [json.loads(line)["event"] for line in capsys.readouterr().out.splitlines() if '"database_' in line]
    assert said == ["database_busy"]
    assert fn.status(task_id).status == 200


def test_a_plain_read_whose_lock_wait_runs_out_is_not_run_again(fn, sim, env, monkeypatch):
    fn.start(look(1))
    pid = backend_pid()
    with db._local.conn.cursor() as cur:
        cur.execute("SET lock_timeout = 200")
    attempts = []
    real_run_once = db.Database._run_once
    monkeypatch.setattr(db.Database, "_run_once", lambda self, *args: attempts.append(1) or real_run_once(self, *args))
    admin = _lock_tasks(env)
    try:
        with pytest.raises(psycopg2.errors.LockNotAvailable):
            db.Database(env["DATABASE_URL"]).all("SELECT count(*) AS n FROM replicate_tasks")
    finally:
        admin.rollback()
        admin.close()
    assert attempts == [1]
    assert backend_pid() == pid


def test_a_statement_timeout_inside_a_transaction_rolls_back_and_keeps_the_connection(fn, sim, env):
    task_id = fn.start(look(1)).body["task_id"]
    pid = backend_pid()
    with db._local.conn.cursor() as cur:
        cur.execute("SET statement_timeout = 100")
    with pytest.raises(psycopg2.errors.QueryCanceled), db.Database(env["DATABASE_URL"]).transaction() as cur:
        cur.execute("UPDATE replicate_tasks SET user_id = 'someone-else' WHERE id = %s", (task_id,))
        cur.execute("SELECT pg_sleep(1)")
    assert db._local.conn.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    assert backend_pid() == pid
    assert fn.status(task_id).status == 200  # rolled back: still the shopper's look


def test_a_tcp_connection_gives_up_on_unacknowledged_data_after_ten_seconds(env):
    """Over TCP (as to a managed database or a pooler), the socket carries TCP_USER_TIMEOUT, so a
    connection dropped without a word fails within 10 s instead of when the kernel gives up."""
    unix_dir = parse_qs(urlsplit(env["DATABASE_URL"]).query)["host"][0]
    unix_path = str(next(Path(unix_dir).glob(".s.PGSQL.*")))  # the embedded server listens here only

    class Forward(socketserver.BaseRequestHandler):
        def handle(self):
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(unix_path)

            def pump(source, sink):  # until either side hangs up
                with contextlib.suppress(OSError):
                    while data := source.recv(65536):
                        sink.sendall(data)
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)

            back = threading.Thread(target=pump, args=(upstream, self.request), daemon=True)
            back.start()
            pump(self.request, upstream)
            back.join(timeout=5)
            upstream.close()

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Forward)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        parts = urlsplit(env["DATABASE_URL"])
        dsn = f"postgresql://{parts.username}@127.0.0.1:{server.server_address[1]}{parts.path}"
        conn = db._connect(dsn, "tryon-test")
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                assert cur.fetchone() == (1,)
            sock = socket.socket(fileno=os.dup(conn.fileno()))
            try:
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 10000
            finally:
                sock.close()
        finally:
            conn.close()
    finally:
        server.shutdown()
        server.server_close()
