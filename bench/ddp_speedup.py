"""Data-parallel speed-up: seconds per epoch of a compute-bound CNN (MNIST-1D, 3 × 128-channel
conv layers) with 1 worker vs 2 DDP workers (Ray Train, gloo), on this machine's cores.

Per-epoch time comes from the trials' own ``epoch_s`` (training + evaluation, start-up
excluded); the median over epochs 2.. is reported. Each worker uses one thread, so 2
workers use 2 cores.

Run: .venv/bin/python bench/ddp_speedup.py [--epochs 4]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402
from rich.console import Console  # noqa: E402

from orchestrator.recipe import build_template  # noqa: E402
from orchestrator.sweep.runner import run_sweep  # noqa: E402


def epoch_seconds(workers: int, epochs: int, results: str, strategy: str = "ddp") -> float:
    template = build_template({
        "name": f"ddp-speedup-{strategy}-w{workers}",
        "data": {"name": "mnist1d"},
        "model": {"name": "cnn1d", "channels": [128, 128, 128], "kernel_size": 5, "hidden": [256]},
        "train": {"epochs": epochs, "batch_size": 256, "lr": 0.002, "optimizer": {"name": "adam"}},
        "parallel": {"workers": workers, "strategy": strategy},
        "baseline": {"enabled": False},
        "search": {"scheduler": {"name": "none"}},
        "results": {"path": results},
    })
    outcome = run_sweep(template, quiet=True, console=Console(file=open(os.devnull, "w")))
    assert (outcome.trials["status"] == "completed").all(), outcome.trials["error"].tolist()
    return float(outcome.epochs[outcome.epochs["epoch"] > 1]["epoch_s"].median())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    with tempfile.TemporaryDirectory() as results:
        one = epoch_seconds(1, args.epochs, results)
        two = epoch_seconds(2, args.epochs, results)
        fsdp = epoch_seconds(2, args.epochs, results, "fsdp")
    ray.shutdown()
    print(f"cores: {os.cpu_count()}")
    print(f"1 worker:      {one:.3f} s/epoch")
    print(f"2 DDP workers: {two:.3f} s/epoch   speed-up {one / two:.2f}x")
    print(f"2 FSDP workers: {fsdp:.3f} s/epoch  speed-up {one / fsdp:.2f}x")


if __name__ == "__main__":
    main()
