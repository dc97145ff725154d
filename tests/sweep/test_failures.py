"""Killed processes mid-trial: the trial restarts from its last checkpoint and its rows come
out right (final metrics, no duplicated epochs)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from rich.console import Console

from orchestrator.recipe import build_template
from orchestrator.sweep.runner import run_sweep

pytestmark = [pytest.mark.ray, pytest.mark.slow]



def _recipe(tmp_path, workers: int, epochs: int) -> dict:
    return {
        "name": f"failures-w{workers}",
        "data": {"name": "digits"},
        "model": {"name": "mlp", "hidden": [1024, 1024]},  # epochs slow enough to aim a kill at
        "train": {"epochs": epochs, "lr": 0.05},
        "parallel": {"workers": workers},
        "baseline": {"enabled": False},
        "search": {"scheduler": {"name": "none"}, "retries": 2},
        "results": {"path": str(tmp_path / "results")},
    }


def _kill_first(class_name: str, after_epoch: int, sweep_root, killed: list, errors: list) -> None:
    """Once a trial has reported ``after_epoch`` epochs, SIGKILL one live actor of that class."""
    import ray
    from ray.util.state import list_actors

    address = ray.get_runtime_context().gcs_address  # this session's Ray, not any other on the machine

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not killed:
        progress = list(sweep_root.glob("*/*/_tune/sweep/*/progress.csv"))
        if progress and sum(1 for _ in open(progress[0])) - 1 >= after_epoch:
            try:
                actors = list_actors(address=address, filters=[("class_name", "=", class_name), ("state", "=", "ALIVE")],
                                     detail=True, limit=10_000)  # the default 100 misses new actors late in a session
            except Exception as exc:  # the State API may be busy while trials start; ask again
                errors.append(repr(exc))
                time.sleep(0.5)
                continue
            pids = [a.pid for a in actors if a.pid]
            errors.append(f"alive {class_name}: {pids}")
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
                return
        time.sleep(0.1)
    errors.append(f"gave up; progress files: {list(sweep_root.glob('**/progress.csv'))}")


# Epochs take ~0.15 s in one process, so the one-worker trial gets more of them: the kill
# must land while it is still training.
@pytest.mark.parametrize(("workers", "victim", "epochs"), [(2, "RayTrainWorker", 10), (1, "ImplicitFunc", 40)],
                         ids=["train-worker", "trial-process"])
def test_a_killed_process_mid_trial_restarts_from_its_checkpoint(ray_local, tmp_path, workers, victim, epochs):
    killed: list[int] = []
    errors: list[str] = []
    killer = threading.Thread(target=_kill_first, args=(victim, 2, tmp_path / "results", killed, errors), daemon=True)
    killer.start()
    outcome = run_sweep(build_template(_recipe(tmp_path, workers, epochs)), quiet=True, console=Console(file=open(os.devnull, "w")))
    killer.join(timeout=5)
    assert killed, f"no {victim} process was killed; State API errors: {errors[-3:]}"

    row = outcome.trials.iloc[0]
    assert row["status"] == "completed" and row["epochs_run"] == epochs, row["error"]
    assert row["val_accuracy"] > 0.9
    history = outcome.epochs
    assert not history.duplicated(["trial_id", "epoch"]).any()
    assert sorted(history["epoch"]) == list(range(1, row["epochs_run"] + 1))
