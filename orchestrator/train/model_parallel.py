"""Model parallelism inside one training run: FSDP2 sharding and pipeline stages.

Plain PyTorch, no Ray: ``train/parallel.py`` calls these from inside Ray Train workers,
where ``torch.distributed`` is already initialised (gloo on CPU, nccl on GPU). Everything
here is collective: every rank of the process group calls the same function, in the same
order, with the same arguments.

- FSDP2 (``shard_model``, ``full_state_dict``): data parallel with parameters, gradients and
  optimizer state sharded across ranks; each rank trains on its own share of the batch.
- Pipeline (``split_stages``, ``PipelineRunner``, in ``pipeline.py``): each rank holds a
  contiguous slice of an ``nn.Sequential`` and all ranks see the same batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import fully_shard

from orchestrator.train.pipeline import PipelineError, PipelineRunner, split_stages, stage_io_shapes

__all__ = [
    "PipelineError",
    "PipelineRunner",
    "full_state_dict",
    "full_training_state",
    "load_full_training_state",
    "shard_model",
    "split_stages",
    "stage_io_shapes",
]

# Each of these becomes its own FSDP unit: its parameters are gathered just before it runs
# and freed after, so peak memory holds one layer's full weights, not the whole model's.
# Norms and the rest are small and belong to the root unit.
_SHARDED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)


def _require_distributed() -> None:
    if not dist.is_initialized():
        raise RuntimeError(
            "torch.distributed is not initialised: call this inside a Ray Train worker "
            "(or after dist.init_process_group)."
        )


def shard_model(model: nn.Module, device_mesh: DeviceMesh | None = None, *,
                reshard_after_forward: bool = True) -> nn.Module:
    """Shard ``model`` in place with FSDP2 and return it.

    ``fully_shard`` is applied to every Linear/Conv/Embedding layer, then to the root.
    The default mesh is one dimension over the whole default process group, on "cuda" for
    the nccl backend and "cpu" otherwise; on GPU move the model to the worker's device
    first. Build the optimizer after this call: parameters become DTensors.
    """
    _require_distributed()
    if device_mesh is None:
        device_type = "cuda" if dist.get_backend() == "nccl" else "cpu"
        device_mesh = init_device_mesh(device_type, (dist.get_world_size(),))
    layers = [m for m in model.modules() if m is not model and isinstance(m, _SHARDED_LAYERS)]
    for layer in layers:
        fully_shard(layer, mesh=device_mesh, reshard_after_forward=reshard_after_forward)
    fully_shard(model, mesh=device_mesh, reshard_after_forward=reshard_after_forward)
    return model


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full, unsharded state dict on CPU on rank 0, ``{}`` on the other ranks.

    Keys are the unsharded model's keys, so it loads into a plain ``nn.Module``
    (checkpoints, export, size measurement). Collective: every rank must call it.
    """
    _require_distributed()
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


def full_training_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Whole model and optimizer state (momentum, Adam moments) of a sharded model, on CPU on
    rank 0 (which writes checkpoints); the other ranks get empty dicts. Collective."""
    _require_distributed()
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options), get_optimizer_state_dict(model, optimizer, options=options)


def load_full_training_state(model: nn.Module, optimizer: torch.optim.Optimizer, model_state: dict,
                             optimizer_state: dict) -> None:
    """Load whole states (every rank holds them, read from the same checkpoint) into the
    sharded model and its optimizer; each rank keeps its shards. Collective."""
    _require_distributed()
    options = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, model_state, options=options)
    set_optimizer_state_dict(model, optimizer, optimizer_state, options=options)
