"""Deploying to the original platform under the seed's function names, and the web page's config
from its func2url.json."""

import json
import os
import subprocess
import sys
from urllib.parse import parse_qsl, urlsplit

import pytest

from deploy import poehali
from tests.conftest import look, make_event


def test_export_writes_each_function_under_the_seeds_name_with_its_own_shared(tmp_path):
    poehali.export(tmp_path)
    backend = tmp_path / "backend"
    assert sorted(p.name for p in backend.iterdir()) == sorted(poehali.SEED_NAMES.values())
    for folder, name in poehali.SEED_NAMES.items():
        assert (backend / name / "index.py").read_bytes() == (poehali.ROOT / "functions" / folder / "index.py").read_bytes()
        assert (backend / name / "shared" / "launching.py").exists()
        assert not list((backend / name).rglob("__pycache__"))


def test_an_exported_function_runs_from_its_folder(tmp_path, env):
    poehali.export(tmp_path)
    folder = tmp_path / "backend" / "replicate-async-start"
    event = make_event("POST", body=look(1), headers={"X-User-Id": "seed-user"})
    code = "import json, sys, index; r = index.handler(json.loads(sys.argv[1]), None); print(r['statusCode'])"
    result = subprocess.run([sys.executable, "-c", code, json.dumps(event)], cwd=folder, capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "200", result.stderr


def test_web_config_from_func2url(tmp_path):
    func2url = {name: f"https://functions.poehali.dev/{i:08d}-0000-4000-8000-000000000000"
                for i, name in enumerate(poehali.SEED_NAMES.values())}
    (tmp_path / "func2url.json").write_text(json.dumps(func2url))
    result = subprocess.run([sys.executable, "-m", "deploy.poehali", "web-config", str(tmp_path / "func2url.json")],
                            cwd=poehali.ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert f'start: "{func2url["replicate-async-start"]}"' in result.stdout
    assert f'continue: "{func2url["replicate-continue"]}"' in result.stdout
    assert "window.TRYON_CONFIG" in result.stdout


def test_web_config_says_which_url_is_missing(tmp_path):
    (tmp_path / "func2url.json").write_text(json.dumps({"replicate-async-start": "https://x"}))
    result = subprocess.run([sys.executable, "-m", "deploy.poehali", "web-config", str(tmp_path / "func2url.json")],
                            cwd=poehali.ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "replicate-async-status" in result.stderr


# --- tests.json: the original functions' own platform test cases (and ours) against the port ---

ORIGINAL = json.loads(poehali.ORIGINAL_TESTS.read_text(encoding="utf-8"))


def platform_cases():
    for name in poehali.SEED_NAMES.values():
        for index, case in enumerate(poehali.platform_tests(name)["tests"]):
            yield pytest.param(name, index, id=f"{name}:{case['name']}")


def body_mismatches(expected, actual) -> list[str]:
    """The platform's "partial" matcher: every expected key present; "string" stands for any string."""
    if not isinstance(actual, dict):
        return [f"the body is not an object: {actual!r}"]
    wrong = []
    for key, want in expected.items():
        if key not in actual:
            wrong.append(f"{key} missing")
        elif want == "string" and not isinstance(actual[key], str):
            wrong.append(f"{key}: {actual[key]!r} is not a string")
        elif want != "string" and actual[key] != want:
            wrong.append(f"{key}: {actual[key]!r} != {want!r}")
    return wrong


def test_the_partial_matcher_catches_a_missing_key_a_wrong_type_and_a_wrong_value():
    expected = {"error": "string", "status": "pending", "task_id": "string"}
    assert body_mismatches(expected, {"error": "x", "status": "pending", "task_id": "t"}) == []
    assert body_mismatches(expected, {"error": 1, "status": "failed"}) == [
        "error: 1 is not a string", "status: 'failed' != 'pending'", "task_id missing"]
    assert body_mismatches(expected, []) == ["the body is not an object: []"]


RUN_CASE = """
import json, sys
import index
response = index.handler(json.loads(sys.argv[1]), None)
print(json.dumps({"status": response["statusCode"], "body": response.get("body") or ""}))
"""


def test_tests_json_holds_the_original_cases_unchanged_then_ours(tmp_path):
    poehali.export(tmp_path)
    for name in poehali.SEED_NAMES.values():
        written = json.loads((tmp_path / "backend" / name / "tests.json").read_text(encoding="utf-8"))["tests"]
        original = ORIGINAL[name]["tests"]
        assert written[:len(original)] == original
        assert len(written) > len(original) and all(case["name"].startswith("port: ") for case in written[len(original):])
    continue_cases = ORIGINAL["replicate-continue"]["tests"]
    assert [(c["body"], c["expectedStatus"]) for c in continue_cases] == [({"task_id": "test-task-123"}, 404)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("poehali")
    poehali.export(out)
    return out / "backend"


@pytest.mark.parametrize("name,index", list(platform_cases()))
def test_each_exported_function_passes_its_tests_json(exported, env, name, index):
    case = json.loads((exported / name / "tests.json").read_text(encoding="utf-8"))["tests"][index]
    url = urlsplit(case.get("path", "/"))
    event = make_event(case["method"], body=case.get("body"), headers=case.get("headers"),
                       query=dict(parse_qsl(url.query)) or None)
    result = subprocess.run([sys.executable, "-c", RUN_CASE, json.dumps(event)], cwd=exported / name,
                            capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    body = json.loads(answer["body"]) if answer["body"] else {}
    assert answer["status"] == case["expectedStatus"], body
    assert body_mismatches(case.get("expectedBody", {}), body) == []


def test_history_env_points_the_completion_webhook_at_the_sites_history_function(tmp_path):
    func2url = tmp_path / "func2url.json"
    func2url.write_text(json.dumps({"try-on-history-api": "https://functions.poehali.dev/abc"}))
    assert poehali.main(["history-env", str(func2url)]) == 0
    assert poehali.history_env(json.loads(func2url.read_text())) == (
        "COMPLETION_WEBHOOK_URL=https://functions.poehali.dev/abc\nCOMPLETION_WEBHOOK_FORMAT=try-on-history\n")
    func2url.write_text("{}")
    assert poehali.main(["history-env", str(func2url)]) == 1
