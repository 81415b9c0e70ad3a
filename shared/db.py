"""PostgreSQL access: one connection per warm instance, reconnected when the server dropped it.

A serverless instance runs one request at a time and keeps module state between warm calls, so
the connection lives in a thread-local (one instance = one thread, also under the devserver).
Statements run in autocommit mode, so a failed call never leaves the connection inside a broken
transaction; multi-statement work uses `transaction()`, which always ends with COMMIT or ROLLBACK.
"""

from __future__ import annotations

import contextlib
import functools
import re
import select
import threading
from collections.abc import Callable, Iterator
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2.extensions import connection as Connection
from psycopg2.extensions import cursor as Cursor

from shared.settings import ConfigError

_local = threading.local()
Row = dict[str, Any]  # a result row by column name

# Errors that mean "the database is unreachable or went away": answered as 503 + Retry-After.
UNAVAILABLE = (psycopg2.OperationalError, psycopg2.InterfaceError)
# Among them, a statement or lock wait that ran out of time: the connection is fine, and running
# the statement again would only double the wait (and the load that caused it).
TIMED_OUT = (psycopg2.errors.QueryCanceled, psycopg2.errors.LockNotAvailable)
CONNECT_TIMEOUT_S = 4


def _connect(dsn: str, application_name: str) -> Connection:
    try:
        conn = _open(dsn, application_name)
    except psycopg2.ProgrammingError:  # libpq could not read it: the operator's to fix, a 503
        raise ConfigError("DATABASE_URL is not a PostgreSQL connection string "
                          "(postgresql://user:password@host/db)") from None
    except UNAVAILABLE as error:
        # Nothing to run again at once: the server is unreachable, not a kept connection gone stale.
        setattr(error, "while_connecting", True)  # noqa: B010 -- psycopg2 errors have no such field
        raise
    conn.autocommit = True
    return conn


def _open(dsn: str, application_name: str) -> Connection:
    return psycopg2.connect(
        dsn,
        # Per host tried: a two-host DATABASE_URL (a managed cluster's) may take twice this.
        connect_timeout=CONNECT_TIMEOUT_S,
        application_name=application_name,
        keepalives=1,
        keepalives_idle=30,
        keepalives_interval=10,
        keepalives_count=3,
        # A connection a NAT or a failover silently dropped: data it sent that goes unacknowledged
        # for 10 s ends it (an error, and a read runs again on a new one) instead of a wait until
        # the kernel gives up, minutes later. Keepalives alone only cover an idle connection.
        tcp_user_timeout=10000,
        # A statement or lock wait must never outlive the function's own timeout.
        options="-c statement_timeout=15000 -c lock_timeout=5000 -c idle_in_transaction_session_timeout=30000",
    )


def _alive(conn: Connection) -> bool:
    """True unless the server closed the connection. No round trip: an idle connection's socket
    only becomes readable when the server sent an error (termination) or closed it."""
    if conn.closed:
        return False
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError, psycopg2.InterfaceError):
        return False
    return not readable


def connection(dsn: str, application_name: str = "tryon", *, probe: bool = True) -> Connection:
    """This instance's connection. `probe` first checks the server has not dropped it (a select(),
    no round trip); a read that will run again on a dropped connection can skip it."""
    if not dsn:
        raise ConfigError("DATABASE_URL is not set")
    conn = getattr(_local, "conn", None)
    if conn is not None and (getattr(_local, "dsn", None) != dsn or conn.closed or (probe and not _alive(conn))):
        with contextlib.suppress(Exception):
            conn.close()
        conn = None
    if conn is not None and conn.get_transaction_status() != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
        conn.rollback()
    if conn is None:
        conn = _connect(dsn, application_name)
        _local.conn, _local.dsn = conn, dsn
    return conn


def _drop_unless_timed_out(error: Exception) -> None:
    if not isinstance(error, TIMED_OUT):
        close()


def close() -> None:
    """Closes this instance's connection (tests and process shutdown)."""
    conn = getattr(_local, "conn", None)
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()
    _local.conn = None


def describe(error: Exception, dsn: str) -> str | None:
    """What PostgreSQL or libpq said, on one line: it tells refused, bad login, missing database and
    too many connections apart. libpq quotes what it misread as a host or a port, which may be a
    piece of a password with an unescaped @ or / in it: every piece of the DSN's password is masked."""
    text = " ".join(str(error).split())
    found = re.search(r"^\w+://[^:@/]*:(.*)@", dsn) or re.search(r"password\s*=\s*(\S+)", dsn)
    for piece in re.split(r"[@/:?#]", found.group(1) if found else ""):
        if len(piece) >= 2:
            text = text.replace(piece, "***")
    return text[:300] or None


def rows(cur: Cursor) -> list[Row]:
    if not cur.description:
        return []
    names = [column.name for column in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


_NAMED = re.compile(r"%\((\w+)\)s")


class Database:
    """Named queries run through here; parameters are always bound, never formatted in."""

    def __init__(self, dsn: str, application_name: str = "tryon"):
        self.dsn = dsn
        self.application_name = application_name

    def one(self, sql: str, params: Any = None) -> Row | None:
        found = self.all(sql, params)
        return found[0] if found else None

    def all(self, sql: str, params: Any = None) -> list[Row]:
        return self._run(lambda cur: cur.execute(sql, params), read_only=_is_select(sql))

    def scalar(self, sql: str, params: Any = None) -> Any:
        row = self.one(sql, params)
        return None if row is None else next(iter(row.values()))

    def prepared(self, name: str, sql: str, params: Row) -> list[Row]:
        """A hot read as a server-side prepared statement: planned once per connection.
        Behind a transaction pooler (pgbouncer), where the next statement may reach another
        server connection, it falls back to the plain query for the rest of this connection."""
        names, prepare, execute_prepared = _prepared_statement(name, sql)

        def execute(cur: Cursor) -> None:
            prepared = _prepared_names(cur.connection)
            if prepared is None:
                cur.execute(sql, params)
                return
            if name not in prepared:
                try:
                    cur.execute(prepare)
                except psycopg2.errors.DuplicatePreparedStatement:
                    pass
                prepared.add(name)
            try:
                cur.execute(execute_prepared, [params[n] for n in names])
            except psycopg2.errors.InvalidSqlStatementName:
                _local.prepared = None  # a pooler moved us: plain queries from now on
                cur.execute(sql, params)

        # No probe: a poll pays for no select(); a dropped connection fails this read, which runs again.
        return self._run(execute, read_only=True, probe=False)

    def _run(self, execute: Callable[[Cursor], None], *, read_only: bool, probe: bool = True) -> list[Row]:
        try:
            return self._run_once(execute, probe)
        except UNAVAILABLE as error:
            # The connection died under us (the server restarted or dropped it a moment ago).
            # A read has no effects, so it is safe to run once more on a new connection; a write
            # is not retried: it may have committed, and the caller answers 503 instead.
            if not read_only or isinstance(error, TIMED_OUT) or getattr(error, "while_connecting", False):
                raise
        return self._run_once(execute, probe)

    def _run_once(self, execute: Callable[[Cursor], None], probe: bool) -> list[Row]:
        # No @contextmanager here: its generator costs every status poll a few microseconds.
        conn = connection(self.dsn, self.application_name, probe=probe)
        try:
            with conn.cursor() as cur:
                execute(cur)
                return rows(cur)
        except UNAVAILABLE as error:
            _drop_unless_timed_out(error)
            raise

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """A cursor inside BEGIN ... COMMIT; any exception rolls back and propagates.
        Rows come back as dicts through `rows(cur)`."""
        conn = connection(self.dsn, self.application_name)
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
        except UNAVAILABLE as error:
            _drop_unless_timed_out(error)
            raise


@functools.lru_cache(maxsize=64)
def _prepared_statement(name: str, sql: str) -> tuple[list[str], str, str]:
    """`%(name)s` parameters as PREPARE's `$1, $2...`: the names in order, PREPARE and EXECUTE."""
    names = list(dict.fromkeys(_NAMED.findall(sql)))
    positional = _NAMED.sub(lambda m: f"${names.index(m.group(1)) + 1}", sql)
    return names, f"PREPARE {name} AS {positional}", f"EXECUTE {name} ({', '.join(['%s'] * len(names))})"


def _is_select(sql: str) -> bool:
    return sql.lstrip()[:6].upper() == "SELECT"


def _prepared_names(conn: Connection) -> set[str] | None:
    """Statements prepared on this instance's connection; None once a pooler ruled them out."""
    if getattr(_local, "prepared_for", None) is not conn:
        _local.prepared_for, _local.prepared = conn, set()
    prepared: set[str] | None = _local.prepared
    return prepared
