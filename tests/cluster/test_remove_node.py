"""A worker node removed mid-sweep: the trial it ran is retried from its checkpoint on
another node and the sweep completes, every trial exactly once.

The scenario (``remove_node_sweep.py`` beside this file) starts its own multi-node Ray, so it
runs as a subprocess, started and cleaned up like the scale-out scenarios."""

from __future__ import annotations

import shutil

import pytest

from tests.cluster.test_scale_out import _explain, run_scenario

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SCRIPT = "remove_node_sweep.py"
EPOCHS = 16  # as in the script
TIMEOUT_S = 180  # measured 30-55 s on a 2-core machine, 80-95 s under load


def _statuses(verdict: dict, source: str) -> dict:
    return {t["trial_id"]: (t["status"], t["epochs_run"]) for t in verdict[source]}


def test_removing_a_busy_worker_node_mid_sweep_loses_no_trial():
    """Head without CPUs + two 1-CPU nodes, 4 trials two at a time, retries 3; once a trial
    has checkpointed 3 epochs its node is removed and a fresh node added."""
    rc, verdict, out = run_scenario(SCRIPT, timeout_s=TIMEOUT_S)
    why = _explain(verdict, out)
    assert not verdict["timed_out"] and "failures" in verdict, f"no verdict (rc={rc})\n{out[-3000:]}"
    assert verdict["failures"] == [], why
    assert rc == 0, why
    removal = verdict["removal"]
    assert removal["removed_after_epoch"] >= 2 and "added_node" in removal, why
    for source in ("trials", "trials_parquet"):
        assert sorted(_statuses(verdict, source).values()) == [("completed", EPOCHS)] * 4, why
    assert verdict["epochs_duplicated"] == 0, why
    assert all(e == list(range(1, EPOCHS + 1)) for e in verdict["epochs_per_trial"].values()), why
    # The victim restarted in a new process and went on from a checkpoint, not from epoch 1.
    history = verdict["victim_history"]
    assert history["restores"] >= 1 and min(history["resumed_at_epochs"]) >= 2, why
    assert history["retrained"] == 0, why  # raw progress.csv: no epoch trained twice
    assert len(history["pids"]) >= 2 and removal["victim_pid"] in history["pids"], why
    # The cluster really shrank (3 → 2 nodes) and grew back.
    counts = [alive for _, alive, _, _ in verdict["timeline"]]
    assert counts[0] == 3 and 2 in counts and counts[-1] == 3, why
    assert verdict["leaked_pids"] == [], why


def test_without_retries_the_trial_on_the_removed_node_fails():
    """Negative control: the same removal with ``search.retries: 0``. The victim must end
    ``failed`` with the node's death as its error and the scenario must say so; the other
    trials still complete. This is what the test above would see if retries broke."""
    rc, verdict, out = run_scenario(SCRIPT, "--retries", "0", timeout_s=TIMEOUT_S)
    why = _explain(verdict, out)
    assert not verdict["timed_out"] and "failures" in verdict, f"no verdict (rc={rc})\n{out[-3000:]}"
    assert rc == 1 and verdict["failures"], why
    victim = verdict["removal"]["victim_trial"]
    for source in ("trials", "trials_parquet"):
        statuses = _statuses(verdict, source)
        assert statuses.pop(victim)[0] == "failed", why
        assert sorted(statuses.values()) == [("completed", EPOCHS)] * 3, why
    error = next(t["error"] for t in verdict["trials"] if t["trial_id"] == victim)
    assert "ActorDiedError" in error and "node" in error, why
    assert any(victim in f and "not completed" in f for f in verdict["failures"]), why
    assert verdict["victim_history"]["restores"] == 0, why
    assert verdict["leaked_pids"] == [], why
    shutil.rmtree(verdict["root"], ignore_errors=True)  # a failed scenario keeps its logs; this one was meant to fail
