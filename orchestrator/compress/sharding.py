"""Whole tensors and shards: the helpers that let compression run under FSDP2.

FSDP2 (``fully_shard``) replaces a module's parameters by DTensors, each rank holding one
slice along dim 0. Masks and importance scores are decided on whole tensors (a global top-k
needs every score) and applied slice by slice; per-channel quantization needs only the rows a
rank holds, per-tensor quantization one all-reduce of the range. Plain tensors pass straight
through, so nothing changes for one process or DDP.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor, distribute_tensor


def is_sharded(t: torch.Tensor) -> bool:
    return isinstance(t, DTensor)


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor; for a DTensor a collective (every rank must call it, in the same order)."""
    return t.full_tensor() if isinstance(t, DTensor) else t


def local(t: torch.Tensor) -> torch.Tensor:
    """This rank's slice as a plain tensor sharing storage with ``t`` (``t`` itself if plain)."""
    return t.to_local() if isinstance(t, DTensor) else t


def like(whole: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """This rank's slice of ``whole``, cut as ``t`` is cut (a plain tensor).

    Every rank holds the same ``whole`` (masks are computed from gathered scores, masters
    from the same weights), so each keeps its own slice without communication
    (``src_data_rank=None``).
    """
    return local(shard_like(whole, t))


def all_max_(values: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Elementwise max of ``values`` over the ranks that shard ``t`` (in place; no-op if plain)."""
    if isinstance(t, DTensor):
        dist.all_reduce(values, op=dist.ReduceOp.MAX, group=t.device_mesh.get_group())
    return values


def gather_like(part: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The whole tensor whose slices (``part`` on this rank) are cut as ``t`` is. Collective."""
    if isinstance(t, DTensor):
        return DTensor.from_local(part, t.device_mesh, t.placements, shape=t.shape, stride=t.stride()).full_tensor()
    return part


def shard_like(whole: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``whole`` as a tensor laid out like ``t``: a DTensor sharded alike, or plain."""
    if isinstance(t, DTensor):
        return distribute_tensor(whole.to(t.device), t.device_mesh, t.placements, src_data_rank=None)
    return whole.to(t.device)
