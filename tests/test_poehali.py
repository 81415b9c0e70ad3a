"""Deploying to the original platform under the seed's function names, and the web page's config
from its func2url.json."""

import json
import os
import subprocess
import sys

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


def test_history_env_points_the_completion_webhook_at_the_sites_history_function(tmp_path):
    func2url = tmp_path / "func2url.json"
    func2url.write_text(json.dumps({"try-on-history-api": "https://functions.poehali.dev/abc"}))
    assert poehali.main(["history-env", str(func2url)]) == 0
    assert poehali.history_env(json.loads(func2url.read_text())) == (
        "COMPLETION_WEBHOOK_URL=https://functions.poehali.dev/abc\nCOMPLETION_WEBHOOK_FORMAT=try-on-history\n")
    func2url.write_text("{}")
    assert poehali.main(["history-env", str(func2url)]) == 1
