"""Step-ready latency: from the moment the simulator finishes a prediction to the moment the task
shows `waiting_continue`, by webhook (signed, CHECKER_URL set) and by cron only (no webhook, the
devserver's default 5 s ping), measured in one run.

    .venv/bin/python -m bench.step_latency [--tasks 24] [--cron-interval 5]

Each mode runs its own devserver process (embedded PostgreSQL, the simulator) exactly as
`make run` does. Starts are spread over one cron interval so completions fall at random points
of the cron cycle. Latency per task = the step row's completed_at (written in the same statement
that shows waiting_continue) minus the simulator's completed_at for the prediction; both clocks
are this machine's.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import requests

from devserver.launch import start


def png_data_uri(side: int = 256) -> str:
    """A plain photo just large enough for MIN_IMAGE_SIDE."""
    import base64
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (side, side), (200, 180, 160)).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def measure(mode: str, tasks: int, cron_interval: float, sim_seconds: float) -> list[float]:
    overrides = {"CHECKER_URL": ""} if mode == "cron" else {}
    clear = ("DATABASE_URL", "REPLICATE_API_TOKEN", "REPLICATE_BASE_URL", "CHECKER_URL", "WORKER_URL",
             "S3_BUCKET", "LOCAL_STORAGE_DIR", "PUBLIC_FILES_URL", "REPLICATE_WEBHOOK_SECRET", "CRON_SECRET")
    with tempfile.TemporaryDirectory(prefix=f"bench-{mode}-") as data_dir:
        server = start(data_dir, "--cron-interval", str(cron_interval), "--sim-seconds", str(sim_seconds),
                       clear_env=clear, env_overrides={**overrides, "MAX_ACTIVE_TASKS_PER_USER": "100"})
        try:
            session = requests.Session()

            def create(i: int) -> str:
                time.sleep(random.uniform(0, cron_interval))
                image = png_data_uri()
                body = {"person_image": image, "garments": [image, image]}
                reply = session.post(server.url + "/start", json=body, headers={"X-User-Id": f"bench-{i}"}, timeout=30)
                reply.raise_for_status()
                return reply.json()["task_id"]

            with ThreadPoolExecutor(8) as pool:
                task_ids = list(pool.map(create, range(tasks)))

            deadline = time.time() + sim_seconds + cron_interval * 4 + 60
            views: dict[str, dict] = {}
            while len(views) < tasks and time.time() < deadline:
                for i, task_id in enumerate(task_ids):
                    if task_id in views:
                        continue
                    view = session.get(server.url + "/status", params={"task_id": task_id},
                                       headers={"X-User-Id": f"bench-{i}"}, timeout=30).json()
                    if view["status"] == "waiting_continue":
                        views[task_id] = view
                time.sleep(0.2)
            if len(views) < tasks:
                raise RuntimeError(f"{mode}: only {len(views)} of {tasks} tasks reached waiting_continue")
            predictions = {p["id"]: p for p in session.get(server.sim_url + "/_sim/predictions", timeout=30).json()}
            latencies = []
            for view in views.values():
                step = view["steps"][0]
                latencies.append(_ts(step["completed_at"]) - _ts(predictions[step["prediction_id"]]["completed_at"]))
            return latencies
        finally:
            server.stop()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=24)
    parser.add_argument("--cron-interval", type=float, default=5.0)
    parser.add_argument("--sim-seconds", type=float, default=3.0)
    args = parser.parse_args()
    rows = []
    for mode in ("webhook", "cron"):
        values = measure(mode, args.tasks, args.cron_interval, args.sim_seconds)
        rows.append((mode, len(values), statistics.median(values), percentile(values, 0.95), max(values)))
    print(f"step-ready latency, {args.tasks} tasks each, cron every {args.cron_interval:g} s, "
          f"{args.sim_seconds:g} s predictions")
    print(f"{'path':<10}{'tasks':>6}{'p50 s':>9}{'p95 s':>9}{'max s':>9}")
    for mode, count, p50, p95, worst in rows:
        label = "webhook" if mode == "webhook" else "cron only"
        print(f"{label:<10}{count:>6}{p50:>9.3f}{p95:>9.3f}{worst:>9.3f}")
    webhook_p95 = rows[0][3]
    print(f"goal: webhook p95 <= 1 s: {'met' if webhook_p95 <= 1.0 else 'NOT met'} ({webhook_p95:.3f} s)")


if __name__ == "__main__":
    main()
