"""Orchestration overhead: the same trials as plain PyTorch loops vs as a Ray Tune sweep.

Prints, for ``workers: 1`` trials and for 2-worker DDP trials:
  plain_s      the trials' training time as plain loops in this process (1 thread each)
  sweep_s      wall time of the orchestrated sweep (Ray already started; Tune, trial
               processes, reporting, Parquet writing included)
  ideal_s      plain time / the concurrency the planner chose
  ratio        sweep_s / ideal_s
  overhead/trial  (sweep_s × concurrency − plain time) / trials: what each trial costs on
               top of its training, in seconds of a trial slot

Run: .venv/bin/python bench/overhead.py [--trials 12] [--epochs 5] [--ddp-trials 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")

import ray  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402

from orchestrator.data import load_splits  # noqa: E402
from orchestrator.recipe import build_template  # noqa: E402
from orchestrator.sweep.runner import run_sweep  # noqa: E402
from orchestrator.train.loop import train_model  # noqa: E402


def recipe(trials: int, epochs: int, workers: int, results: str) -> dict:
    lrs = [round(0.02 + 0.01 * i, 4) for i in range(trials)]
    return {
        "name": f"bench-overhead-w{workers}",
        "data": {"name": "digits"},
        "model": {"name": "mlp", "hidden": [256, 256]},
        "train": {"epochs": epochs, "batch_size": 64, "lr": {"grid": lrs}},
        "parallel": {"workers": workers},
        "baseline": {"enabled": False},
        "search": {"scheduler": {"name": "none"}},
        "results": {"path": results},
    }


def plain_seconds(template) -> float:
    torch.set_num_threads(1)
    splits = load_splits(template.base.data)
    started = time.perf_counter()
    for value in template.leaves[0].values:
        train_model(template.resolve({"train.lr": value}), splits, lambda *a: None)
    return time.perf_counter() - started


def measure(trials: int, epochs: int, workers: int, results: str) -> dict:
    template = build_template(recipe(trials, epochs, workers, results))
    plain = plain_seconds(template)
    started = time.perf_counter()
    outcome = run_sweep(template, quiet=True, console=Console(file=open(os.devnull, "w")))
    sweep = time.perf_counter() - started
    assert (outcome.trials["status"] == "completed").all(), outcome.trials[["status", "error"]]
    concurrency = outcome.plan.max_concurrent
    ideal = plain / concurrency
    return {"workers": workers, "trials": trials, "concurrency": concurrency, "plain_s": plain,
            "sweep_s": sweep, "ideal_s": ideal, "ratio": sweep / ideal,
            "overhead_per_trial_s": (sweep * concurrency - plain) / trials}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--ddp-trials", type=int, default=3, help="0 skips the DDP measurement")
    args = parser.parse_args()
    ray.init(num_cpus=2, log_to_driver=False, logging_level=logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as results:
        rows.append(measure(args.trials, args.epochs, 1, results))
        if args.ddp_trials:
            rows.append(measure(args.ddp_trials, args.epochs, 2, results))
    ray.shutdown()
    print(f"{'workers':>7} {'trials':>6} {'conc':>4} {'plain_s':>8} {'sweep_s':>8} {'ideal_s':>8} {'ratio':>6} {'overhead/trial_s':>16}")
    for r in rows:
        print(f"{r['workers']:>7} {r['trials']:>6} {r['concurrency']:>4} {r['plain_s']:>8.2f} {r['sweep_s']:>8.2f} "
              f"{r['ideal_s']:>8.2f} {r['ratio']:>6.1f} {r['overhead_per_trial_s']:>16.2f}")


if __name__ == "__main__":
    main()
