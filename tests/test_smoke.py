"""`make smoke` (`python -m smoke`): a real look through the configured profile, here against the
simulator; without a token it says what it needs and exits 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ENV_NAMES, SIM_TOKEN

ROOT = Path(__file__).resolve().parent.parent


def smoke(env: dict, *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    return subprocess.run([sys.executable, "-m", "smoke", *args], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("profile", "price"), [("idm-vton", r"\$0\.000\d{3}\b"), ("nano-banana", r"\$0\.039000")])
def test_a_look_through_the_simulator(database_url, sim, profile, price):
    result = smoke({"REPLICATE_API_TOKEN": SIM_TOKEN, "REPLICATE_BASE_URL": sim.url, "DATABASE_URL": database_url,
                    "MODEL_PROFILE": profile}, "--poll", "0.1", "--timeout", "60")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert f"profile {profile}" in out
    assert "pending -> processing (the worker)" in out
    assert re.search(r"processing -> completed \((the webhook|the checker)\)", out), out
    assert re.search(r"step 1 succeeded: \S+, step time \d+\.\d s, predict_time \d+\.\d\d s, cost " + price, out), out
    assert re.search(r"first to notice the end: (webhook|checker)", out)
    assert len(sim.created_inputs()) == 1  # one prediction, one look


def test_a_failed_prediction_exits_1_with_the_reason(database_url, sim):
    sim.set_faults(outcomes=["failed"])
    result = smoke({"REPLICATE_API_TOKEN": SIM_TOKEN, "REPLICATE_BASE_URL": sim.url, "DATABASE_URL": database_url},
                   "--poll", "0.1", "--timeout", "60")
    assert result.returncode == 1 and "FAILED: The try-on model could not finish step 1" in result.stdout


def test_without_a_token_it_says_what_it_needs_and_exits_2():
    result = smoke({})
    assert result.returncode == 2
    assert "needs REPLICATE_API_TOKEN" in result.stderr and result.stdout == ""
