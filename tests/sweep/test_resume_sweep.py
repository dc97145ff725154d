"""SIGKILL the driver of a running sweep, then ``--resume``: every trial ends exactly once."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import tempfile
import time

import pandas as pd
import pytest
import yaml

pytestmark = [pytest.mark.ray, pytest.mark.slow]

EPOCHS = 8
RECIPE = {
    "name": "resume",
    "data": {"name": "digits"},
    # Wide layers so that an epoch takes a noticeable time and the kill lands mid-sweep.
    "model": {"name": "mlp", "hidden": [1024, 1024]},
    "train": {"epochs": EPOCHS, "lr": {"grid": [0.01, 0.02, 0.03, 0.04]}},
    "baseline": {"epochs": 1},
    "search": {"scheduler": {"name": "none"}},
    "results": {"path": "results"},
}


def _reported_epochs(folder: str) -> list[int]:
    counts = []
    for csv in glob.glob(f"{folder}/results/resume/*/_tune/sweep/*/progress.csv"):
        with open(csv) as f:
            counts.append(max(sum(1 for _ in f) - 1, 0))
    return counts


def _kill_ray_of(tmpdir: str) -> None:
    """Ray's own processes of the killed driver (they may outlive its process group)."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    for line in out.splitlines():
        pid, _, args = line.strip().partition(" ")
        if tmpdir in args and int(pid) != os.getpid():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_sigkilled_sweep_resumes_with_every_trial_once(tmp_path):
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(RECIPE))
    ray_tmp = tempfile.mkdtemp(prefix="rs-", dir="/tmp")  # Ray's socket paths must stay < 108 bytes
    env = {**os.environ, "RAY_TMPDIR": ray_tmp, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "orchestrator", "run", "r.yaml", "--quiet"]
    driver = subprocess.Popen(command, cwd=tmp_path, env=env, start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        # Kill once some trial is past its first checkpoint and none has finished.
        while time.monotonic() < deadline and driver.poll() is None:
            done = _reported_epochs(tmp_path)
            if done and max(done) >= 3:
                break
            time.sleep(0.2)
        assert driver.poll() is None, driver.stdout.read().decode()[-3000:]
        killed_at = _reported_epochs(tmp_path)
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    finally:
        _kill_ray_of(ray_tmp)
    assert max(killed_at) < EPOCHS, f"the sweep finished before the kill: {killed_at}"

    resumed = subprocess.run(command + ["--resume"], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=400)
    _kill_ray_of(ray_tmp)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming sweep" in resumed.stdout

    folder = glob.glob(f"{tmp_path}/results/resume/*/")
    assert len(folder) == 1, folder  # resumed in place, no second sweep folder
    trials = pd.read_parquet(f"{folder[0]}/trials.parquet")
    sweep = trials[trials["stage"] == "sweep"]
    assert len(sweep) == 4 and sweep["trial_id"].is_unique
    assert sorted(sweep["param.train.lr"]) == [0.01, 0.02, 0.03, 0.04]
    assert (sweep["status"] == "completed").all() and (sweep["epochs_run"] == EPOCHS).all()
    epochs = pd.read_parquet(f"{folder[0]}/epochs.parquet")
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    assert epochs[epochs["trial_id"].isin(sweep["trial_id"])].groupby("trial_id")["epoch"].apply(
        lambda e: sorted(e) == list(range(1, EPOCHS + 1))).all()
