"""Killed processes mid-trial: the trial restarts from its last checkpoint and its rows come
out right (final metrics, no duplicated epochs)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pandas as pd
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


def _live_pids(class_name: str, address: str) -> list[int]:
    from ray.util.state import list_actors

    actors = list_actors(address=address, detail=True, limit=10_000)
    return [a.pid for a in actors if a.class_name == class_name and a.state == "ALIVE" and a.pid]


def _kill_first(class_name: str, after_s: float, sweep_root, killed: list, errors: list) -> None:
    """SIGKILL one process of that kind once it has been training for ``after_s`` seconds:
    the trial process once its progress.csv shows an epoch (Tune's "pid" column names it),
    a Train worker once the State API has shown it alive for that long."""
    import ray

    address = ray.get_runtime_context().gcs_address  # this session's Ray, not any other on the machine
    deadline, first_seen = time.monotonic() + 180, None
    while time.monotonic() < deadline and not killed:
        try:
            if class_name == "ImplicitFunc":
                progress = list(sweep_root.glob("*/*/_tune/sweep/*/progress.csv"))
                rows = pd.read_csv(progress[0]) if progress else pd.DataFrame()
                pids = [int(rows["pid"].iloc[-1])] if len(rows) else []
            else:
                pids = _live_pids(class_name, address)
        except Exception as exc:  # a half-written csv, a busy State API: look again
            errors.append(repr(exc))
            pids = []
        if pids and first_seen is None:
            first_seen = time.monotonic()
        if pids and time.monotonic() - first_seen >= after_s:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                killed.append(pid)
                return
        time.sleep(0.1)
    errors.append(f"gave up; progress files: {list(sweep_root.glob('**/progress.csv'))}")


# Epochs take ~0.15 s in one process, so the one-worker trial gets more of them: the kill
# must land while it is still training.
@pytest.mark.parametrize(("workers", "victim", "epochs"), [(2, "RayTrainWorker", 30), (1, "ImplicitFunc", 40)],
                         ids=["train-worker", "trial-process"])
def test_a_killed_process_mid_trial_restarts_from_its_checkpoint(ray_local, tmp_path, workers, victim, epochs):
    killed: list[int] = []
    errors: list[str] = []
    killer = threading.Thread(target=_kill_first, args=(victim, 1.5, tmp_path / "results", killed, errors), daemon=True)
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
