"""`make package`: each dist/<function>.zip unpacked on its own runs `index.handler` against the
database, importing the shared/ inside the zip (not the repository's)."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

from deploy import package
from tests.conftest import look

RUN_HANDLER = """
import json, sys
import index, shared
event = json.loads(sys.argv[1])
response = index.handler(event, None)
print(json.dumps({"shared": shared.__file__, "status": response["statusCode"], "body": json.loads(response["body"])}))
"""


@pytest.fixture(scope="module")
def zips(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    return {name: package.build(name, out) for name in package.FUNCTIONS}


def run_unpacked(zip_path, folder, event) -> dict:
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(folder)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", RUN_HANDLER, json.dumps(event)], cwd=folder, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_zip_holds_its_index_a_copy_of_shared_and_the_requirements(zips):
    shared_files = sorted(p.name for p in (package.ROOT / "shared").glob("*.py"))
    for name, path in zips.items():
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            assert "index.py" in names and "requirements.txt" in names
            assert sorted(n.split("/", 1)[1] for n in names if n.startswith("shared/")) == shared_files
            assert archive.read("index.py") == (package.ROOT / "functions" / name / "index.py").read_bytes()
            assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_zips_are_reproducible(zips, tmp_path):
    again = package.build("status", tmp_path)
    assert again.read_bytes() == zips["status"].read_bytes()


@pytest.mark.parametrize("name,method,body,query,status", [
    ("start", "POST", look(1), None, 200),
    ("worker", "GET", None, None, 200),
    ("checker", "GET", None, None, 200),
    ("continue_", "POST", {"task_id": "00000000-0000-4000-8000-000000000000"}, None, 404),
    ("status", "GET", None, {"task_id": "00000000-0000-4000-8000-000000000000"}, 404),
])
def test_an_unpacked_zip_runs_its_handler_against_the_database(zips, env, tmp_path, name, method, body, query, status):
    from tests.conftest import make_event

    event = make_event(method, body=body, headers={"X-User-Id": "zip-user"}, query=query)
    result = run_unpacked(zips[name], tmp_path, event)
    assert result["shared"].startswith(str(tmp_path))  # the zip's own copy
    assert result["status"] == status, result["body"]


def test_the_unpacked_start_and_status_see_the_same_task(zips, env, tmp_path):
    from tests.conftest import make_event

    created = run_unpacked(zips["start"], tmp_path / "start", make_event("POST", body=look(2), headers={"X-User-Id": "z"}))
    task_id = created["body"]["task_id"]
    seen = run_unpacked(zips["status"], tmp_path / "status",
                        make_event("GET", query={"task_id": task_id}, headers={"X-User-Id": "z"}))
    assert (seen["status"], seen["body"]["status"], seen["body"]["total_steps"]) == (200, "pending", 2)
