"""How one training step and one evaluation forward run, per parallel strategy.

The loop (``loop.py``) is the same for every strategy; an engine hides what differs:

- ``DataParallelEngine``: one process, DDP or FSDP2. Each rank trains on its share of every
  global batch; gradients are averaged across ranks (by DDP's all-reduce or FSDP's
  reduce-scatter), so the update equals the whole batch's.
- ``PipelineEngine``: the model split into one stage per rank (``torch.distributed.pipelining``);
  every rank sees the whole batch, cut into microbatches.

Plain PyTorch: no Ray here.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from orchestrator.train.hooks import TrainHooks


def weight_stats(model: nn.Module) -> dict[str, float]:
    """Non-zero parameters, and the fraction of zeros among Linear/Conv weights (what pruning
    targets), measured on the tensors themselves."""
    nonzero = sum(int(torch.count_nonzero(p)) for p in model.parameters())
    weights = [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    total = sum(w.numel() for w in weights)
    zeros = sum(w.numel() - int(torch.count_nonzero(w)) for w in weights)
    return {"nonzero_params": nonzero, "sparsity": zeros / total if total else 0.0, "bits": 32}


Rebuild = Callable[[dict], nn.Module]  # a full state dict → a plain, unsharded model


class DataParallelEngine:
    """Single process, DDP (``wrap`` = a DDP wrapper) or FSDP2 (``fsdp``: ``wrap`` shards the
    model in place and ``rebuild`` turns the gathered state into a plain model on rank 0)."""

    shards_batches = True

    def __init__(self, model: nn.Module, wrap: Callable[[nn.Module], nn.Module] | None = None,
                 rebuild: Rebuild | None = None):
        self.model = model
        self.trained = wrap(model) if wrap else model
        self.rebuild = rebuild

    def gather(self, model: nn.Module) -> nn.Module | None:
        from orchestrator.train.model_parallel import full_state_dict

        state = full_state_dict(model)  # collective
        return self.rebuild(state) if state else None

    def parameters(self):
        return self.trained.parameters()

    def training_state(self, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
        """(model, optimizer) state dicts for a checkpoint: whole tensors (FSDP: gathered, a
        collective, on rank 0, which writes checkpoints; empty on the other ranks)."""
        if self.rebuild is None:
            return self.model.state_dict(), optimizer.state_dict()
        from orchestrator.train.model_parallel import full_training_state

        return full_training_state(self.model, optimizer)

    def load_training_state(self, model_state: dict, optimizer_state: dict, optimizer: torch.optim.Optimizer) -> None:
        """Inverse of ``training_state``; under FSDP every rank loads the whole state and keeps its shards."""
        if self.rebuild is None:
            self.model.load_state_dict(model_state)
            optimizer.load_state_dict(optimizer_state)
            return
        from orchestrator.train.model_parallel import load_full_training_state

        load_full_training_state(self.model, optimizer, model_state, optimizer_state)

    def accepts(self, rows: int, world_size: int) -> bool:
        return rows >= world_size  # a rank without rows would stall the gradient all-reduce

    def train_mode(self, training: bool) -> None:
        self.trained.train(training)

    def forward_backward(self, x, y, rows, hooks: TrainHooks, weight: float) -> float:
        loss = hooks.loss(self.trained(x), y, rows)
        (loss * weight if weight != 1.0 else loss).backward()
        return loss.item()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.trained(x)

    def stats(self) -> dict[str, float]:
        if self.rebuild is not None:
            full = self.gather(self.model)  # collective; the full model exists on rank 0 only
            return weight_stats(full) if full is not None else {}
        return weight_stats(self.model)

    def finish(self, hooks: TrainHooks) -> nn.Module | None:
        """The final model for export and checkpoints (None on ranks that do not hold it).
        Data parallel: the hooks make compression permanent and the result is evaluated."""
        if self.rebuild is not None:
            hooks.finish_training(self.model)  # collective: final masks, QAT masters gathered
            full = self.gather(self.model)
            return hooks.make_permanent(full) if full is not None else None
        self.model = hooks.finish(self.model)
        self.trained = self.model  # evaluate the finished model itself, unwrapped
        return self.model


class PipelineEngine:
    """One pipeline stage per rank (GPipe or 1F1B). Every rank passes the same whole batch."""

    shards_batches = False

    def __init__(self, model: nn.Module, n_microbatches: int, schedule: str, rebuild: Rebuild, device=None):
        from orchestrator.train.pipeline import PipelineRunner

        self.runner = PipelineRunner(model, F.cross_entropy, n_microbatches=n_microbatches,
                                     schedule=schedule, device=device)
        self.n_microbatches, self.rebuild = n_microbatches, rebuild

    def parameters(self):
        return self.runner.module.parameters()

    def training_state(self, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
        raise NotImplementedError("pipeline trials are not checkpointed: a failed one restarts from scratch")

    def load_training_state(self, model_state: dict, optimizer_state: dict, optimizer: torch.optim.Optimizer) -> None:
        raise NotImplementedError("pipeline trials are not checkpointed: a failed one restarts from scratch")

    def accepts(self, rows: int, world_size: int) -> bool:
        return rows % self.n_microbatches == 0  # equal microbatches keep the whole-batch gradient

    def train_mode(self, training: bool) -> None:
        self.runner.module.train(training)

    def forward_backward(self, x, y, rows, hooks: TrainHooks, weight: float) -> float:
        return float(self.runner.train_step(x, y))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        pad = (-len(x)) % self.n_microbatches  # evaluation batches need not divide evenly
        if pad:
            x = torch.cat([x, x.new_zeros(pad, *x.shape[1:])])
        out = self.runner.eval_step(x)
        return out[: len(out) - pad] if pad else out

    def stats(self) -> dict[str, float]:
        local = weight_stats(self.runner.module)
        weights = [m.weight for m in self.runner.module.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
        total = float(sum(w.numel() for w in weights))
        summed = torch.tensor([local["nonzero_params"], local["sparsity"] * total, total], dtype=torch.float64)
        dist.all_reduce(summed)
        return {"nonzero_params": int(summed[0]), "sparsity": float(summed[1] / summed[2]) if summed[2] else 0.0, "bits": 32}

    def finish(self, hooks: TrainHooks) -> nn.Module | None:
        state = self.runner.full_state_dict()  # collective; the whole model on the first rank
        return self.rebuild(state) if state else None
