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


def _progress(sweep_root) -> pd.DataFrame:
    """The one trial's raw progress.csv: every report Tune logged, repeats included."""
    try:
        progress = list(sweep_root.glob("*/*/_tune/sweep/*/progress.csv"))
        return pd.read_csv(progress[0]) if progress else pd.DataFrame()
    except Exception:  # empty or half-written while the trial reports
        return pd.DataFrame()


def _kill_first(class_name: str, after_s: float, sweep_root, killed: list, errors: list) -> None:
    """SIGKILL one process of that kind ``after_s`` seconds after the trial's progress.csv
    first shows an epoch (so a checkpoint exists to resume from): the trial process (Tune's
    "pid" column names it) or a Train worker (found through the State API)."""
    import ray

    address = ray.get_runtime_context().gcs_address  # this session's Ray, not any other on the machine
    deadline, first_seen = time.monotonic() + 180, None
    while time.monotonic() < deadline and not killed:
        try:
            rows = _progress(sweep_root)
            if not len(rows):
                pids = []
            elif class_name == "ImplicitFunc":
                pids = [int(rows["pid"].iloc[-1])]
            else:
                pids = _live_pids(class_name, address)
        except Exception as exc:  # a half-written csv, a busy State API: look again
            errors.append(repr(exc))
            pids = []
        if pids and first_seen is None:
            first_seen = time.monotonic()
        if pids and time.monotonic() - first_seen >= after_s:
            reported = len(_progress(sweep_root))  # epochs Tune had logged (it may lag: at least these)
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                killed.append(pid)
                killed.append(reported)
                return
        time.sleep(0.1)
    errors.append(f"gave up; progress files: {list(sweep_root.glob('**/progress.csv'))}")


# Epochs take ~0.15 s in one process, so the one-worker trial gets more of them: the kill
# must land while it is still training.
@pytest.mark.parametrize(("workers", "strategy", "victim", "epochs"),
                         [(2, "ddp", "RayTrainWorker", 30), (2, "fsdp", "RayTrainWorker", 30),
                          (1, "ddp", "ImplicitFunc", 40)],
                         ids=["ddp-train-worker", "fsdp-train-worker", "trial-process"])
def test_a_killed_process_mid_trial_restarts_from_its_checkpoint(ray_local, tmp_path, workers, strategy, victim,
                                                                  epochs):
    killed: list[int] = []
    errors: list[str] = []
    killer = threading.Thread(target=_kill_first, args=(victim, 1.5, tmp_path / "results", killed, errors), daemon=True)
    killer.start()
    recipe = _recipe(tmp_path, workers, epochs)
    recipe["parallel"]["strategy"] = strategy
    outcome = run_sweep(build_template(recipe), quiet=True, console=Console(file=open(os.devnull, "w")))
    killer.join(timeout=5)
    assert killed, f"no {victim} process was killed; State API errors: {errors[-3:]}"
    assert killed[-1] >= 1, "the kill came before the first checkpoint"
    raw = _progress(tmp_path / "results")  # a restart from scratch would report epoch 1 again
    assert (raw["epoch"] == 1).sum() == 1, raw[["epoch", "training_iteration"]].to_string()

    row = outcome.trials.iloc[0]
    assert row["status"] == "completed" and row["epochs_run"] == epochs, row["error"]
    assert row["val_accuracy"] > 0.9
    history = outcome.epochs
    assert not history.duplicated(["trial_id", "epoch"]).any()
    assert sorted(history["epoch"]) == list(range(1, row["epochs_run"] + 1))
