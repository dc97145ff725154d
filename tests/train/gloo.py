"""Helpers for tests that run 2 gloo ranks as spawned processes on 127.0.0.1."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_rank(rank: int, world: int, port: int) -> None:
    """Inside a spawned rank: one intra-op thread, a gloo process group on 127.0.0.1:port."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)


def spawn_ranks(worker: Callable[[int, int, str], None], world: int, out: Path) -> list[dict]:
    """Run ``worker(rank, port, out)`` on ``world`` spawned ranks; each saves ``out/rank{r}.pt``
    with torch.save; return what every rank saved, by rank."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(worker, args=(free_port(), str(out)), nprocs=world, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(world)]
