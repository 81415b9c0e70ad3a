"""PostgreSQL access: one connection per warm instance, reconnected when the server dropped it.

A serverless instance runs one request at a time and keeps module state between warm calls, so
the connection lives in a thread-local (one instance = one thread, also under the devserver).
Statements run in autocommit mode, so a failed call never leaves the connection inside a broken
transaction; multi-statement work uses `transaction()`, which always ends with COMMIT or ROLLBACK.
"""

from __future__ import annotations

import contextlib
import select
import threading
from typing import Any, Iterator

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from shared.settings import ConfigError

_local = threading.local()

# Errors that mean "the database is unreachable or went away": answered as 503 + Retry-After.
UNAVAILABLE = (psycopg2.OperationalError, psycopg2.InterfaceError)


def _connect(dsn: str, application_name: str):
    conn = psycopg2.connect(
        dsn,
        connect_timeout=5,
        application_name=application_name,
        keepalives=1,
        keepalives_idle=30,
        keepalives_interval=10,
        keepalives_count=3,
        # A statement or lock wait must never outlive the function's own timeout.
        options="-c statement_timeout=15000 -c lock_timeout=5000 -c idle_in_transaction_session_timeout=30000",
        cursor_factory=psycopg2.extras.RealDictCursor,
    )
    conn.autocommit = True
    return conn


def _alive(conn) -> bool:
    """True unless the server closed the connection. No round trip: an idle connection's socket
    only becomes readable when the server sent an error (termination) or closed it."""
    if conn.closed:
        return False
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError, psycopg2.InterfaceError):
        return False
    return not readable


def connection(dsn: str, application_name: str = "tryon"):
    if not dsn:
        raise ConfigError("DATABASE_URL is not set")
    conn = getattr(_local, "conn", None)
    if conn is not None and (getattr(_local, "dsn", None) != dsn or not _alive(conn)):
        with contextlib.suppress(Exception):
            conn.close()
        conn = None
    if conn is not None and conn.get_transaction_status() != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
        conn.rollback()
    if conn is None:
        conn = _connect(dsn, application_name)
        _local.conn, _local.dsn = conn, dsn
    return conn


def close() -> None:
    """Closes this instance's connection (tests and process shutdown)."""
    conn = getattr(_local, "conn", None)
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()
    _local.conn = None


class Database:
    """Named queries run through here; parameters are always bound, never formatted in."""

    def __init__(self, dsn: str, application_name: str = "tryon"):
        self.dsn = dsn
        self.application_name = application_name

    def _conn(self):
        return connection(self.dsn, self.application_name)

    def one(self, sql: str, params: Any = None) -> dict | None:
        return self._run(sql, params, lambda cur: cur.fetchone() if cur.description else None)

    def all(self, sql: str, params: Any = None) -> list[dict]:
        return self._run(sql, params, lambda cur: cur.fetchall() if cur.description else [])

    def _run(self, sql: str, params: Any, fetch) -> Any:
        try:
            with self._cursor() as cur:
                cur.execute(sql, params)
                return fetch(cur)
        except UNAVAILABLE:
            # The connection died under us (the server restarted or dropped it a moment ago).
            # A plain SELECT has no effects, so it is safe to run once more on a new connection;
            # a write is not retried: it may have committed, and the caller answers 503 instead.
            if not sql.lstrip().upper().startswith("SELECT"):
                raise
        with self._cursor() as cur:
            cur.execute(sql, params)
            return fetch(cur)

    def scalar(self, sql: str, params: Any = None) -> Any:
        row = self.one(sql, params)
        return None if row is None else next(iter(row.values()))

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Any]:
        conn = self._conn()
        try:
            with conn.cursor() as cur:
                yield cur
        except UNAVAILABLE:
            close()
            raise

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor inside BEGIN ... COMMIT; any exception rolls back and propagates."""
        conn = self._conn()
        try:
            with conn.cursor() as cur:
                cur.execute("BEGIN")
                try:
                    yield cur
                except BaseException:
                    if not conn.closed:
                        cur.execute("ROLLBACK")
                    raise
                cur.execute("COMMIT")
        except UNAVAILABLE:
            close()
            raise
