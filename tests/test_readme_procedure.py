"""The README's curl procedure, copied out of the README and run as written (bash, curl, python3)
against the devserver as `make run` starts it (the session's, from conftest): it must set every variable it uses and
take one look through its first step and Continue."""

import json
import re
import shutil
import subprocess

import pytest

from devserver.launch import ROOT

BLOCK = re.compile(r"The seed's test procedure.*?```sh\n(.*?)```", re.S)


def procedure() -> str:
    found = BLOCK.search((ROOT / "README.md").read_text(encoding="utf-8"))
    assert found, "the README has no curl procedure after 'The seed's test procedure'"
    return found[1]


def test_the_procedure_sets_every_variable_before_using_it_and_needs_no_jq():
    script = procedure()
    assigned = set()
    for number, line in enumerate(script.splitlines(), start=1):
        code = line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
        for name in re.findall(r"\$\{?([A-Z_]+)", code):
            assert name in assigned, f"line {number} uses ${name} before setting it: {line}"
        assigned.update(re.findall(r"^\s*([A-Z_]+)=", code))
    assert "jq" not in re.findall(r"\b\w+\b", script)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's procedure needs curl")
def test_the_procedure_runs_as_written(devserver):
    script = procedure().replace("BASE=http://127.0.0.1:8000", f"BASE={devserver.url}", 1)
    result = subprocess.run(["bash", "-eu", "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    started, *_, status, continued = answers
    assert (started["status"], started["total_steps"]) == ("pending", 3)
    assert (status["status"], status["current_step"], "continue" in status["actions"]) == ("waiting_continue", 1, True)
    assert status["intermediate_result"].startswith(devserver.url + "/files/")
    assert (continued["task_id"], continued["status"]) == (started["task_id"], "processing")
