"""Whole tensors and shards: the two helpers that let compression run under FSDP2.

FSDP2 (``fully_shard``) replaces a module's parameters by DTensors, each rank holding one
slice along dim 0. Masks and importance scores are decided on whole tensors (a global top-k
needs every score), and then applied slice by slice. Plain tensors pass straight through,
so nothing changes for one process or DDP.
"""

from __future__ import annotations

import torch
from torch.distributed.tensor import DTensor, distribute_tensor


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor; for a DTensor a collective (every rank must call it, in the same order)."""
    return t.full_tensor() if isinstance(t, DTensor) else t


def like(whole: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``whole`` laid out like ``t``: sharded the same way when ``t`` is a DTensor.

    Every rank holds the same ``whole`` (masks are computed from gathered scores), so each
    keeps its own slice without communication (``src_data_rank=None``).
    """
    if isinstance(t, DTensor):
        return distribute_tensor(whole.to(t.device), t.device_mesh, t.placements, src_data_rank=None)
    return whole.to(t.device)
