"""The shape the code keeps: small modules in shared/, and a status poll that loads no HTTP
client, Replicate client or AWS SDK (cold starts pay for every import)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("replicate", "httpx", "requests", "boto3")

POLL = """
import json, sys
sys.path.insert(0, {root!r})
from devserver.functions import load
status = load("status")
reply = status({{"httpMethod": "GET", "headers": {{"X-User-Id": "user-1"}},
                 "queryStringParameters": {{"task_id": {task_id!r}}}}}, None)
print(json.dumps({{"status": reply["statusCode"], "loaded": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def test_no_module_in_shared_is_over_300_lines():
    sizes = {path.name: len(path.read_text().splitlines()) for path in (ROOT / "shared").glob("*.py")}
    assert sizes and max(sizes.values()) <= 300, sizes


def test_a_status_poll_imports_no_replicate_http_or_aws_client(env, task_factory):
    task_id = task_factory("processing")
    code = POLL.format(root=str(ROOT), task_id=task_id, heavy=HEAVY)
    out = subprocess.run([sys.executable, "-c", code], env={"DATABASE_URL": env["DATABASE_URL"], "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"status": 200, "loaded": []}
