"""Small HTTP calls over the standard library's http.client: Replicate's JSON API and the worker
poke. Importing httpx + replicate (pydantic) or requests costs a cold start 50-100 ms each, more
than the rest of a function; these calls need none of what they add.

One keep-alive connection per thread and host, reused only while fresh (servers drop idle ones
after a few seconds; a POST on a dropped connection could not safely be sent again). The TLS
context is made on the first https call, with certifi's CA bundle like the clients it replaces.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

REUSE_IDLE_S = 4.0
MAX_BODY_BYTES = 16 * 1024 * 1024

_local = threading.local()
_tls: Any = None
_tls_lock = threading.Lock()


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.body)


def _tls_context() -> Any:
    global _tls
    with _tls_lock:
        if _tls is None:
            import ssl

            import certifi

            _tls = ssl.create_default_context(cafile=certifi.where())
        return _tls


def _connection(scheme: str, netloc: str, timeout: float) -> http.client.HTTPConnection:
    pool: dict[tuple[str, str], tuple[http.client.HTTPConnection, float]] = _local.__dict__.setdefault("pool", {})
    found = pool.pop((scheme, netloc), None)
    if found is not None:
        conn, last_used = found
        if time.monotonic() - last_used < REUSE_IDLE_S:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            return conn
        conn.close()
    if scheme == "https":
        return http.client.HTTPSConnection(netloc, timeout=timeout, context=_tls_context())
    return http.client.HTTPConnection(netloc, timeout=timeout)


def request(method: str, url: str, *, headers: dict[str, str] | None = None, json_body: Any = None,
            timeout: float = 15.0) -> Reply:
    """One call. `timeout` bounds the connect and every read. Raises OSError (timeouts included)
    or http.client.HTTPException when the server cannot be reached or breaks off."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    sent = dict(headers or {})
    payload = None
    if json_body is not None:
        payload = json.dumps(json_body).encode()
        sent["Content-Type"] = "application/json"
    conn = _connection(parts.scheme, parts.netloc, timeout)
    try:
        conn.request(method, target, body=payload, headers=sent)
        response = conn.getresponse()
        body = response.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            raise http.client.HTTPException("the answer is larger than 16 MB")
    except BaseException:
        conn.close()
        raise
    if response.will_close:
        conn.close()
    else:
        _local.pool[(parts.scheme, parts.netloc)] = (conn, time.monotonic())
    return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
