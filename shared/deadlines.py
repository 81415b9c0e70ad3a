"""Wall-clock deadlines for network calls. HTTP clients time each read, not the call: a server
that sends one byte every few seconds never trips a read timeout. A `Watchdog` shuts the call's
socket down when the call's deadline passes, which ends any read blocked on it at once."""

from __future__ import annotations

import socket
import threading
import time


class Watchdog:
    """`with Watchdog(deadline) as dog: dog.watch(sock); ...read...`; afterwards `dog.fired`
    says whether the deadline (time.monotonic()) cut the call short."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.fired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(deadline - time.monotonic(), 0.0), self._fire)
        self._timer.daemon = True

    def __enter__(self) -> Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            self._sock = None

    def watch(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            if self.fired:
                self._shutdown()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            self._shutdown()

    def _shutdown(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed: nothing left to stop
                pass

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()
