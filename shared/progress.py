"""How far a running step has got: its percent from the prediction's logs, and an ETA from the
recent run times of the same model (cached per instance, so a status poll costs no extra query)."""

from __future__ import annotations

import re
import threading
import time

from shared import queries
from shared.db import Database

# tqdm's "k/N" beside its bar: ` 40%|████      | 12/30 [00:04<00:06,  2.9it/s]`.
_TQDM = re.compile(r"\|\s*(\d+)/(\d+)\s*\[")
# Only the end of the logs matters (the last line wins); a long log is not scanned whole.
_TAIL_CHARS = 4096
ETA_REFRESH_S = 60.0


def percent_from_logs(logs: str) -> int | None:
    """The last tqdm-style "k/N" in the logs as 0..100, or None when the model prints none."""
    found = _TQDM.findall(logs[-_TAIL_CHARS:])
    if not found:
        return None
    done, total = int(found[-1][0]), int(found[-1][1])
    if total <= 0 or done > total:
        return None
    return done * 100 // total


_typical: dict[str, tuple[float, float | None]] = {}  # model -> (monotonic read time, median seconds)
_typical_lock = threading.Lock()


def typical_seconds(db: Database, model: str | None, now: float | None = None) -> float | None:
    """The median run time of the model's recent succeeded steps, read at most once a minute."""
    if not model:
        return None
    now = time.monotonic() if now is None else now
    with _typical_lock:
        cached = _typical.get(model)
    if cached is not None and now - cached[0] < ETA_REFRESH_S:
        return cached[1]
    median = db.scalar(queries.MODEL_STEP_SECONDS, {"model": model})
    value = None if median is None else float(median)
    with _typical_lock:
        _typical[model] = (now, value)
    return value


def progress(db: Database, percent: int | None, elapsed_s: float | None, model: str | None) -> dict[str, object]:
    """The status view's `progress` of a running step."""
    elapsed = None if elapsed_s is None else max(round(float(elapsed_s), 1), 0.0)
    typical = typical_seconds(db, model)
    eta = None
    if typical is not None and elapsed is not None:
        eta = round(max(typical - elapsed, 0.0), 1)
    return {"percent": percent, "elapsed_s": elapsed, "eta_s": eta}
