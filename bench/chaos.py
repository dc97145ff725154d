"""Chaos run: a 12-trial sweep while trial processes and Ray Train workers are SIGKILLed every
~10 s, then the driver itself is SIGKILLed once and the sweep is resumed with --resume.

Prints how many trials finished, how many rows were lost (trials missing from
trials.parquet) and duplicated (a trial or a trial × epoch twice). Uses its own Ray cluster
(`ray start` in a private temp dir) so that kills never touch another Ray on the machine.

Run: .venv/bin/python bench/chaos.py [--interval 10] [--driver-kill-after 40] [--workers 1]
"""

from __future__ import annotations

import argparse
import glob
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pandas as pd
import yaml

TRIALS, EPOCHS = 12, 10


def recipe(results: str, workers: int) -> dict:
    return {
        "name": "chaos",
        "data": {"name": "digits"},
        "model": {"name": "mlp", "hidden": [1024, 1024]},
        "train": {"epochs": EPOCHS, "lr": {"grid": [round(0.01 * (i + 1), 3) for i in range(TRIALS)]}},
        "parallel": {"workers": workers},
        "baseline": {"epochs": 2},
        "search": {"scheduler": {"name": "none"}, "retries": 20},
        "results": {"path": results},
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_cluster(tmp: str) -> None:
    """Kill this run's Ray processes only (`ray stop` would stop every Ray on the machine):
    the ones whose command line names the private temp dir; their workers exit with them."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    for line in out.splitlines():
        pid, _, cmd = line.strip().partition(" ")
        if tmp in cmd and int(pid) != os.getpid():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between process kills")
    parser.add_argument("--driver-kill-after", type=float, default=40.0, help="seconds before the driver is killed")
    parser.add_argument("--workers", type=int, default=1, help="Train workers per trial (2: kill Train workers too)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    tmp = tempfile.mkdtemp(prefix="chaos-", dir="/tmp")
    env = {**os.environ, "RAY_TMPDIR": tmp, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    port = free_port()
    address = f"127.0.0.1:{port}"
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    subprocess.run([ray_bin, "start", "--head", f"--port={port}", "--num-cpus=2", f"--temp-dir={tmp}",
                    "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={free_port()}",
                    "--disable-usage-stats"], env=env, check=True, capture_output=True)
    os.environ.update(RAY_AUTH_MODE="disabled")
    import ray
    from ray.util.state import list_actors

    ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    with open(os.path.join(tmp, "chaos.yaml"), "w") as f:
        yaml.safe_dump(recipe(os.path.join(tmp, "results"), args.workers), f)
    command = [sys.executable, "-m", "orchestrator", "run", os.path.join(tmp, "chaos.yaml"), "--quiet",
               "--address", address]
    kills = {"trial": 0, "train_worker": 0, "driver": 0}
    try:
        driver = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = time.monotonic()
        next_kill = started + args.interval
        while driver.poll() is None:
            now = time.monotonic()
            if kills["driver"] == 0 and now - started > args.driver_kill_after:
                driver.kill()
                driver.wait()
                kills["driver"] += 1
                print(f"[{now - started:5.1f}s] SIGKILL driver; resuming")
                driver = subprocess.Popen(command + ["--resume"], env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL)
            elif now >= next_kill:
                next_kill = now + args.interval
                victims = [a for a in list_actors(address=address, detail=True, limit=10_000)
                           if a.class_name in ("ImplicitFunc", "RayTrainWorker") and a.state == "ALIVE" and a.pid]
                if victims:
                    victim = rng.choice(victims)
                    os.kill(victim.pid, signal.SIGKILL)
                    kind = "trial" if victim.class_name == "ImplicitFunc" else "train_worker"
                    kills[kind] += 1
                    print(f"[{now - started:5.1f}s] SIGKILL {victim.class_name} pid {victim.pid}")
            time.sleep(0.2)
        print(f"driver exit code {driver.returncode} after {time.monotonic() - started:.0f}s")
    finally:
        ray.shutdown()
        stop_cluster(tmp)

    folders = glob.glob(os.path.join(tmp, "results", "chaos", "*", "trials.parquet"))
    if len(folders) != 1:
        print(f"expected one sweep folder, found {folders}")
        return 1
    trials = pd.read_parquet(folders[0])
    epochs = pd.read_parquet(folders[0].replace("trials.parquet", "epochs.parquet"))
    sweep = trials[trials["stage"] == "sweep"]
    lrs = set(sweep["param.train.lr"])
    lost = TRIALS - len(lrs)
    duplicated = int(sweep.duplicated("param.train.lr").sum() + epochs.duplicated(["trial_id", "epoch"]).sum())
    finished = int((sweep["status"] == "completed").sum())
    print(f"kills: {kills}")
    print(f"trials finished: {finished}/{TRIALS}   rows lost: {lost}   rows duplicated: {duplicated}")
    return 0 if finished == TRIALS and lost == 0 and duplicated == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
