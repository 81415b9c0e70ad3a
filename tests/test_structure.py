"""The shape the code keeps: small modules in shared/, and a status poll that loads no HTTP
client, Replicate client or AWS SDK (cold starts pay for every import), nor the standard
library's slow imports that a poll or a start does not need."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("replicate", "httpx", "requests", "boto3")
# dataclasses imports inspect (with ast, dis, tokenize): 8 ms of a cold start; uuid loads platform.
NOT_FOR_A_START = ("dataclasses", "inspect", "uuid", "platform")
# hashlib and hmac load OpenSSL's hashes; urllib.parse loads ipaddress; shared.images and
# shared.start_request are the start's.
NOT_FOR_A_POLL = (*NOT_FOR_A_START, "hashlib", "hmac", "secrets", "urllib.parse", "ipaddress",
                  "shared.images", "shared.start_request")

# A fresh interpreter runs one handler once, imported as a platform does (its folder and shared/
# on the path, nothing else of ours), then names the watched modules it has loaded.
CALL = """
import json, sys
sys.path[:0] = [{folder!r}, {root!r}]
import index
reply = index.handler({event!r}, None)
print(json.dumps({{"status": reply["statusCode"], "body": json.loads(reply["body"]),
                  "loaded": sorted(m for m in {watch!r} if m in sys.modules)}}))
"""


def call_in_fresh_process(env: dict, function: str, method: str = "GET", *, query=None, body=None,
                          watch: tuple[str, ...] = HEAVY) -> dict:
    """The handler's answer, and which of the `watch` modules the process has loaded."""
    event = {"httpMethod": method, "headers": {"X-User-Id": "user-1"}, "queryStringParameters": query or {},
             "body": json.dumps(body) if body is not None else None,
             "requestContext": {"requestId": "structure-test"}}  # as platforms send it
    code = CALL.format(folder=str(ROOT / "functions" / function), root=str(ROOT), event=event, watch=watch)
    out = subprocess.run([sys.executable, "-c", code], env={**env, "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_no_module_in_shared_is_over_300_lines():
    sizes = {path.name: len(path.read_text().splitlines()) for path in (ROOT / "shared").glob("*.py")}
    assert sizes and max(sizes.values()) <= 300, sizes


def test_a_status_poll_imports_no_replicate_http_or_aws_client(env, task_factory):
    task_id = task_factory("processing")
    result = call_in_fresh_process(env, "status", query={"task_id": task_id})
    assert (result["status"], result["body"]["status"], result["loaded"]) == (200, "processing", [])


def test_a_status_poll_imports_none_of_the_slow_modules_it_does_not_need(env, task_factory):
    task_id = task_factory("processing")
    result = call_in_fresh_process(env, "status", query={"task_id": task_id}, watch=NOT_FOR_A_POLL)
    assert (result["status"], result["body"]["status"], result["loaded"]) == (200, "processing", [])


def test_a_start_imports_no_dataclasses_or_uuid(env):
    look = {"person_image": "https://example.com/person.jpg", "garments": ["https://example.com/shirt.jpg"]}
    start = call_in_fresh_process(env, "start", "POST", body=look, watch=(*NOT_FOR_A_START, "hashlib"))
    # hashlib is watched to show the start ran its path (the request's fingerprint needs it).
    assert (start["status"], start["body"]["status"], start["loaded"]) == (200, "pending", ["hashlib"])


def test_idle_worker_and_checker_pings_import_no_heavy_module(env):
    worker = call_in_fresh_process(env, "worker")
    checker = call_in_fresh_process(env, "checker")
    assert (worker["status"], worker["body"]["started"], worker["loaded"]) == (200, 0, [])
    assert (checker["status"], checker["body"]["checked"], checker["loaded"]) == (200, 0, [])


# A worker, checker or continue that creates, reads or downloads: none of the HTTP clients,
# dataclasses, nor (one prediction due) the checker's thread pool.
NOT_FOR_A_STEP = (*HEAVY, "dataclasses", "inspect", "secrets", "concurrent.futures")


def test_a_look_from_start_to_step_two_loads_no_heavy_module(env, task_factory, sim):
    """Replicate's API and the output's download go over http.client (shared.plain_http): a
    create, a read of a prediction and a download load none of replicate, httpx or requests."""
    task_id = task_factory("pending")
    early = call_in_fresh_process(env, "continue_", "POST", body={"task_id": task_id, "action": "continue"},
                                  watch=NOT_FOR_A_STEP)
    assert (early["status"], early["body"]["code"], early["loaded"]) == (409, "wrong_state", [])
    worker = call_in_fresh_process(env, "worker", watch=NOT_FOR_A_STEP)
    assert (worker["status"], worker["body"]["started"], worker["loaded"]) == (200, 1, [])
    assert sim.wait_idle(30)
    checker = call_in_fresh_process(env, "checker", watch=NOT_FOR_A_STEP)
    assert (checker["body"]["ready"], checker["loaded"]) == (1, [])
    step_two = call_in_fresh_process(env, "continue_", "POST", body={"task_id": task_id, "action": "continue"},
                                     watch=NOT_FOR_A_STEP)
    assert (step_two["status"], step_two["body"]["current_step"], step_two["loaded"]) == (200, 2, [])


def test_a_start_with_image_urls_imports_no_heavy_module(env):
    look = {"person_image": "https://example.com/person.jpg", "garments": ["https://example.com/shirt.jpg"]}
    start = call_in_fresh_process(env, "start", "POST", body=look)
    assert (start["status"], start["body"]["status"], start["loaded"]) == (200, "pending", [])


def test_no_function_imports_the_replicate_client():
    """Lambda zips leave the `replicate` package out (deploy/package.py NOT_IMPORTED): nothing a
    function runs may import it, or httpx and pydantic that come with it."""
    import ast

    from deploy import package

    left_out = {*package.NOT_IMPORTED, "httpx", "pydantic"}
    found = []
    for path in [*(ROOT / "shared").glob("*.py"), *(ROOT / "functions").glob("*/index.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(ROOT)}: {name}" for name in names if name.split(".")[0] in left_out]
    assert found == []
