"""The seam between the plain training loop and anything that changes how it trains.

The loop (``train/loop.py``) knows nothing of pruning, quantization or distillation; it
calls these hooks at fixed points of every step and epoch. ``TrainHooks`` itself is the
dense case: every hook leaves training unchanged. ``orchestrator.compress`` subclasses it.

Order of calls, per run::

    model = hooks.prepare(model)                      # before the optimizer is built
    for epoch in range(epochs):
        hooks.start_epoch(model, epoch)
        for step, (x, y, idx) in batches:             # idx: rows of the train split
            logits = model(x)
            loss = hooks.loss(logits, y, idx)
            loss.backward()
            hooks.after_backward(model, step)         # e.g. accumulate importance
            optimizer.step()
            hooks.after_optimizer_step(model, step)   # e.g. re-apply masks
        metrics.update(hooks.end_epoch(model, epoch)) # e.g. sparsity, bits
    model = hooks.finish(model)                       # make masks/quantization permanent

``finish`` is ``finish_training`` (on the model as trained; collective when it is sharded)
then ``make_permanent`` (on a whole model: FSDP calls it on the model gathered on rank 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from orchestrator.models import dense_fp32_bytes


class TrainHooks:
    """Dense training: plain cross-entropy, no changes to the model."""

    def prepare(self, model: nn.Module) -> nn.Module:
        return model

    def start_epoch(self, model: nn.Module, epoch: int) -> None:
        return None

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets)

    def after_backward(self, model: nn.Module, step: int) -> None:
        return None

    def after_optimizer_step(self, model: nn.Module, step: int) -> None:
        return None

    def end_epoch(self, model: nn.Module, epoch: int) -> dict[str, float]:
        return {}

    def finish(self, model: nn.Module) -> nn.Module:
        self.finish_training(model)
        return self.make_permanent(model)

    def finish_training(self, model: nn.Module) -> None:
        """Last changes to the model as trained (every rank calls it when it is sharded)."""
        return None

    def make_permanent(self, model: nn.Module) -> nn.Module:
        """The trained model, or a whole copy of it, as it will be exported."""
        return model

    def state_dict(self) -> dict:
        """What a checkpoint must hold, beyond the model's and optimizer's state, for training
        to continue exactly as if never interrupted."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None

    def size_bytes(self, model: nn.Module) -> int | None:
        """The model's size as trained so far; None when only an exported artifact can tell
        (compression: the real size is measured on the artifact at the end)."""
        return dense_fp32_bytes(model)
