"""A process that behaves like every caller at once: the cron pinging worker and checker, a
browser polling status with force_check, and a user who double-clicks Continue.

    python -m tests.pinger SECONDS TASK_ID...    (environment as the functions see it)
Prints one JSON line: how many calls of each kind it made.
"""

import json
import sys
import time

from tests.conftest import Functions


def main() -> None:
    seconds, task_ids = float(sys.argv[1]), sys.argv[2:]
    fn = Functions()
    calls = {"worker": 0, "checker": 0, "status": 0, "continue": 0, "continue_ok": 0}
    deadline = time.time() + seconds
    while time.time() < deadline:
        fn.worker()
        fn.checker()
        calls["worker"] += 1
        calls["checker"] += 1
        done = 0
        for task_id in task_ids:
            view = fn.status(task_id, force=True).body
            calls["status"] += 1
            if view["status"] == "waiting_continue":
                for _ in range(2):  # the double click
                    calls["continue"] += 1
                    calls["continue_ok"] += fn.act(task_id).status == 200
            done += view["status"] in ("completed", "failed")
        if done == len(task_ids):
            break
        time.sleep(0.02)
    print(json.dumps(calls))


if __name__ == "__main__":
    main()
