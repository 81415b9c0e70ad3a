"""Issue 12's fault soak, short: poisoned looks, a slow-drip Replicate, database connections cut
during creates, PostgreSQL restarted and SIGKILLed instances, all at once
(`python -m bench.soak --faults`)."""

import pytest

from bench import soak


@pytest.mark.slow
def test_under_mixed_faults_no_look_is_stuck_and_no_orphan_keeps_running():
    result = soak.run(looks=16, steps=2, instances=3, shoppers=1, read_failure_rate=0.1, kill_every=1.5,
                      kill_for=12.0, timeout=150.0, sim_seconds=0.5, poisoned=2, drip_every=4.0, db_drop_every=3.0,
                      db_restart_every=5.0)
    assert result.faults["kill"] >= 3 and result.faults["slow_drip"] >= 2 and result.faults["database_drop"] >= 2
    assert result.faults["database_restart"] >= 1
    assert result.stuck == 0
    assert result.orphans_running == 0
    assert result.quarantined == result.poisoned == 2
    assert result.completed == result.looks - result.poisoned
