"""Guarantee 2 under fire: worker, checker and continue processes killed with SIGKILL at random
moments; the next pings finish every look, at a cost of at most one extra prediction per kill.
(A short run of `python -m bench.soak crash`.)"""

import pytest

from bench import soak


@pytest.mark.slow
def test_sigkilled_processes_lose_no_look_and_cost_at_most_one_prediction_each():
    result = soak.run(looks=40, steps=2, instances=3, shoppers=1, read_failure_rate=0.2,
                      kill_every=0.4, kill_for=15.0, timeout=150.0, sim_seconds=0.5)
    assert result.kills >= 5
    assert result.completed == result.looks
    assert result.steps_completed == 80
    assert 0 <= result.extra <= result.kills
