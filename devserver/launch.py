"""Starts `python -m devserver` as a separate process, as a user's `make run` would, and waits
until it serves. Used by the tests and the benchmarks."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class RunningDevserver:
    def __init__(self, process: subprocess.Popen, url: str, sim_url: str, output: list[str]):
        self.process, self.url, self.sim_url, self.output = process, url, sim_url, output

    def stop(self, sig=signal.SIGINT) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(data_dir, *args: str, clear_env=(), env_overrides: dict | None = None,
          timeout: float = 90.0) -> RunningDevserver:
    """Runs the devserver with `data_dir` for its database and files; `clear_env` names variables
    to drop so that it starts its own PostgreSQL, simulator and storage."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in clear_env}
    env.update(env_overrides or {})
    env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        [sys.executable, "-m", "devserver", "--port", str(port), "--data-dir", str(data_dir), *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if "Press Ctrl-C to stop." in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(timeout):
        process.kill()
        raise RuntimeError("devserver did not start:\n" + "".join(output[-40:]))
    sim_url = re.search(r"simulator at (http://\S+)", "".join(output))
    return RunningDevserver(process, f"http://127.0.0.1:{port}", sim_url[1] if sim_url else "", output)
