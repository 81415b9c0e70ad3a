"""One HTTP/1.1 call over the standard library's http.client, ended by a wall-clock deadline.

Replicate's JSON API and the worker poke go through here. The `replicate` client would add
httpx, pydantic and asyncio to a cold start (100-160 ms of CPU on the reference machine, more
than three times a bare `import psycopg2; connect`), and the functions used none of what it adds:
its models reject status `aborted`, its retry loop sleeps past a function's timeout, and its
calls have no whole-call deadline. The package stays the reference: the test suite checks the
simulator against it, and this module's requests and the webhook check against its own.

The deadline is a `Watchdog` on the socket: a server that drips one byte at a time cannot hold
a call past it. One keep-alive connection per thread and host is reused only while it has been
idle under REUSE_IDLE_S and has nothing to read (servers drop idle ones; a request written into
a dropped connection fails at once, and only a GET is then sent again on a fresh one). Proxies from the environment
are not used. The TLS context (certifi's CA bundle, as requests and httpx use) is made on the
first https call.
"""

from __future__ import annotations

import functools
import http.client
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from shared.deadlines import Watchdog

REUSE_IDLE_S = 4.0
CONNECT_TIMEOUT_S = 5.0
READ_CHUNK = 64 * 1024

_local = threading.local()
_tls: Any = None
_tls_lock = threading.Lock()


class TimedOut(OSError):
    """The call did not end by its deadline (its socket was shut down, or a read timed out)."""


class TooLarge(Exception):
    """The body is longer than the caller's `max_bytes`."""


class Reply(NamedTuple):
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


def _tls_context() -> Any:
    global _tls
    with _tls_lock:
        if _tls is None:
            import ssl

            import certifi

            _tls = ssl.create_default_context(cafile=certifi.where())
        return _tls


def _pool() -> dict[tuple[str, str], tuple[http.client.HTTPConnection, float]]:
    pool: dict[tuple[str, str], tuple[http.client.HTTPConnection, float]] = _local.__dict__.setdefault("pool", {})
    return pool


def _reused(scheme: str, netloc: str) -> http.client.HTTPConnection | None:
    found = _pool().pop((scheme, netloc), None)
    if found is None:
        return None
    conn, last_used = found
    if time.monotonic() - last_used < REUSE_IDLE_S and conn.sock is not None and _quiet(conn.sock):
        return conn
    conn.close()
    return None


def _quiet(sock: socket.socket) -> bool:
    """Nothing to read on an idle connection. Readable means the server has closed it (a request
    written into it would be lost, and a POST is not sent twice) or sent bytes no request asked
    for (they would be read as the next answer)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return not poller.poll(0)


def _fresh(scheme: str, netloc: str, timeout: float) -> http.client.HTTPConnection:
    if scheme == "https":
        return http.client.HTTPSConnection(netloc, timeout=timeout, context=_tls_context())
    return http.client.HTTPConnection(netloc, timeout=timeout)


def request(method: str, url: str, *, deadline: float, headers: dict[str, str] | None = None,
            body: bytes | None = None, max_bytes: int = 16 * 1024 * 1024,
            on_connect: Callable[[socket.socket], None] | None = None) -> Reply:
    """Sends one request and reads the whole answer by `deadline` (time.monotonic()).

    Raises TimedOut past the deadline, TooLarge for a body over `max_bytes` (a declared
    Content-Length over it is refused before reading), ValueError for a URL that is not
    http(s), and OSError or http.client.HTTPException when the server cannot be reached or
    breaks off. `on_connect(sock)` sees each new connection's socket before anything is sent
    (and may raise to refuse it); a reused connection was seen when it was made."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url[:100]!r}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    key = (parts.scheme, parts.netloc)
    conn = _reused(*key)
    if conn is not None:
        try:
            return _exchange(conn, key, method, target, headers, body, max_bytes, deadline, None)
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
            # The server had dropped the idle connection. Only a GET is safe to send again: a
            # POST may have reached it before the drop.
            if method != "GET":
                raise
    conn = _fresh(*key, timeout=max(min(CONNECT_TIMEOUT_S, deadline - time.monotonic()), 0.01))
    return _exchange(conn, key, method, target, headers, body, max_bytes, deadline, on_connect or _no_check)


def _no_check(sock: socket.socket) -> None:
    return None


def _open(address: tuple[str, int], timeout: float, source_address: Any = None, *, deadline: float,
          on_connect: Callable[[socket.socket], None]) -> socket.socket:
    """socket.create_connection, but trying a further address only while the call has time left
    (each address had the whole connect timeout), and leaving the socket a timeout that ends at
    the deadline, so a TLS handshake cannot outlast the call either (the Watchdog is not on the
    socket yet). `on_connect` sees the socket before the TLS hello."""
    host, port = address
    error: OSError = TimedOut("no time left to connect")
    for family, kind, proto, _, sockaddr in _addresses(host, port, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(min(timeout, left))
            sock.connect(sockaddr)
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
        except OSError as failed:
            sock.close()
            error = failed
            continue
        try:
            on_connect(sock)
        except BaseException:
            sock.close()
            raise
        return sock
    raise error


def _addresses(host: str, port: int, deadline: float) -> list[Any]:
    """getaddrinfo by the call's deadline: a resolver that does not answer (its own retries can
    take tens of seconds) must not hold the call past it. The lookup runs on a daemon thread,
    left behind if it is late."""
    found: list[Any] = []
    failed: list[OSError] = []

    def look_up() -> None:
        try:
            found.extend(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))
        except OSError as error:
            failed.append(error)

    lookup = threading.Thread(target=look_up, name="resolve", daemon=True)
    lookup.start()
    lookup.join(max(deadline - time.monotonic(), 0.0))
    if lookup.is_alive():
        raise TimedOut(f"{host} could not be resolved in time")
    if failed:
        raise failed[0]
    return found


def _exchange(conn: http.client.HTTPConnection, key: tuple[str, str], method: str, target: str,
              headers: dict[str, str] | None, body: bytes | None, max_bytes: int, deadline: float,
              on_connect: Callable[[socket.socket], None] | None) -> Reply:
    """`on_connect` is None for a connection that is already open."""
    left = deadline - time.monotonic()
    if left <= 0:
        conn.close()
        raise TimedOut("no time left for the call")
    try:
        with Watchdog(deadline) as dog:
            if on_connect is not None:
                conn._create_connection = functools.partial(  # type: ignore[attr-defined]
                    _open, deadline=deadline, on_connect=on_connect)
                conn.connect()
            assert conn.sock is not None  # a reused connection is open
            conn.sock.settimeout(left)
            dog.watch(conn.sock)
            conn.request(method, target, body=body, headers=headers or {})
            response = conn.getresponse()
            if response.status < 200:  # http.client returns a 103 as the answer; the real one would be left unread
                raise http.client.HTTPException(f"an informational answer ({response.status}) instead of the answer")
            declared = response.getheader("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise TooLarge(f"the answer declares {declared} bytes")
            chunks, size = [], 0
            while chunk := response.read(READ_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"the answer is longer than {max_bytes} bytes")
                chunks.append(chunk)
        if dog.fired:  # a cut connection can look like a short, complete body
            raise TimedOut("the call did not end by its deadline")
    except TimeoutError:
        conn.close()
        raise TimedOut("the call did not end by its deadline") from None
    except (OSError, http.client.HTTPException):
        conn.close()
        if dog.fired:
            raise TimedOut("the call did not end by its deadline") from None
        raise
    except BaseException:
        conn.close()
        raise
    if response.will_close:
        conn.close()
    else:
        _pool()[key] = (conn, time.monotonic())
    return Reply(response.status, {name.lower(): value for name, value in response.getheaders()}, b"".join(chunks))
