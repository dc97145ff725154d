"""Data-parallel speed-up: seconds per epoch of a compute-bound CNN (MNIST-1D, 3 × 128-channel
conv layers, 332k parameters, batch 256) with 1 worker vs 2 workers, on this machine's cores.

Three measurements, interleaved ``--repeats`` times so that load drifts hit all alike:

- orchestrated: a one-trial sweep through ``run_sweep`` (Ray Tune + Ray Train, gloo); per-epoch
  time is the trials' own ``epoch_s`` (training + evaluation, start-up excluded), the median
  over epochs 2..;
- raw: the same model, data and batch in plain ``torch.multiprocessing`` processes without
  Ray, training only: 1 process; 2 processes each training on its half of every batch with
  no communication (the machine's ceiling for 2 workers); 2 processes with gloo DDP;
- FSDP2 through the orchestrator, once.

Each worker uses one thread, so 2 workers use 2 cores.

Run: .venv/bin/python bench/ddp_speedup.py [--epochs 6] [--repeats 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import statistics
import tempfile
import time

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from rich.console import Console  # noqa: E402

from orchestrator.data import load_splits  # noqa: E402
from orchestrator.models import build_model  # noqa: E402
from orchestrator.recipe import build_template  # noqa: E402
from orchestrator.sweep.runner import run_sweep  # noqa: E402

MODEL = {"name": "cnn1d", "channels": [128, 128, 128], "kernel_size": 5, "hidden": [256]}
BATCH = 256


def _template(workers: int, epochs: int, results: str, strategy: str = "ddp"):
    return build_template({
        "name": f"ddp-speedup-{strategy}-w{workers}",
        "data": {"name": "mnist1d"},
        "model": MODEL,
        "train": {"epochs": epochs, "batch_size": BATCH, "lr": 0.002, "optimizer": {"name": "adam"}},
        "parallel": {"workers": workers, "strategy": strategy},
        "baseline": {"enabled": False},
        "search": {"scheduler": {"name": "none"}},
        "results": {"path": results},
    })


def epoch_seconds(workers: int, epochs: int, results: str, strategy: str = "ddp") -> float:
    outcome = run_sweep(_template(workers, epochs, results, strategy), quiet=True,
                        console=Console(file=open(os.devnull, "w")))
    assert (outcome.trials["status"] == "completed").all(), outcome.trials["error"].tolist()
    return float(outcome.epochs[outcome.epochs["epoch"] > 1]["epoch_s"].median())


def _raw_worker(rank: int, world: int, mode: str, port: int, epochs: int, out: str) -> None:
    torch.set_num_threads(1)
    recipe = _template(1, epochs, out).base
    splits = load_splits(recipe.data)
    model = build_model(recipe.model, splits.input_shape, splits.num_classes, seed=0)
    if mode == "ddp":
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.002)
    times = []
    for epoch in range(epochs):
        started = time.perf_counter()
        order = torch.randperm(len(splits.train_y), generator=torch.Generator().manual_seed(epoch))
        for batch in order.split(BATCH):
            rows = batch[rank::world]
            optimizer.zero_grad()
            F.cross_entropy(model(splits.train_x[rows]), splits.train_y[rows]).backward()
            optimizer.step()
        times.append(time.perf_counter() - started)
    with open(os.path.join(out, f"{mode}-{rank}"), "w") as f:
        f.write(str(statistics.median(times[1:])))
    if mode == "ddp":
        dist.destroy_process_group()


def raw_epoch_seconds(world: int, mode: str, epochs: int) -> float:
    """Training-only seconds per epoch without Ray; the slowest rank's median."""
    with tempfile.TemporaryDirectory() as out, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        mp.spawn(_raw_worker, args=(world, mode, port, epochs, out), nprocs=world, join=True)
        return max(float(open(os.path.join(out, f"{mode}-{rank}")).read()) for rank in range(world))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rows = []
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    with tempfile.TemporaryDirectory() as results:
        for _ in range(args.repeats):
            rows.append({
                "orch 1w": epoch_seconds(1, args.epochs, results),
                "orch 2w DDP": epoch_seconds(2, args.epochs, results),
                "raw 1p": raw_epoch_seconds(1, "solo", args.epochs),
                "raw 2p no comm": raw_epoch_seconds(2, "nocomm", args.epochs),
                "raw 2p DDP": raw_epoch_seconds(2, "ddp", args.epochs),
            })
        fsdp = epoch_seconds(2, args.epochs, results, "fsdp")
    ray.shutdown()
    print(f"cores: {os.cpu_count()}; s/epoch per repeat, speed-ups within the repeat")
    for i, r in enumerate(rows, 1):
        print(f"  repeat {i}: orchestrated 1w {r['orch 1w']:.3f}, 2w DDP {r['orch 2w DDP']:.3f} "
              f"({r['orch 1w'] / r['orch 2w DDP']:.2f}x) | raw 1p {r['raw 1p']:.3f}, "
              f"2p no comm {r['raw 2p no comm']:.3f} ({r['raw 1p'] / r['raw 2p no comm']:.2f}x, the ceiling), "
              f"2p DDP {r['raw 2p DDP']:.3f} ({r['raw 1p'] / r['raw 2p DDP']:.2f}x)")
    median = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(f"median speed-up: orchestrated DDP {median['orch 1w'] / median['orch 2w DDP']:.2f}x, "
          f"raw DDP {median['raw 1p'] / median['raw 2p DDP']:.2f}x, "
          f"ceiling {median['raw 1p'] / median['raw 2p no comm']:.2f}x")
    print(f"2 FSDP workers (orchestrated): {fsdp:.3f} s/epoch, {median['orch 1w'] / fsdp:.2f}x")


if __name__ == "__main__":
    main()
