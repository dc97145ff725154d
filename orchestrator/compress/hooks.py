"""``CompressionHooks``: pruning + quantization + distillation of one trial, behind ``TrainHooks``.

Step bookkeeping: ``self.step`` counts optimizer steps since ``prepare`` (0 before the first).
Epoch e starts at step e * steps_per_epoch. Mask updates happen at step t0 = start_epoch *
steps_per_epoch (magnitude) and then, for gradual pruning, every ``frequency`` steps and at
t_end = end_epoch * steps_per_epoch, where the cubic target reaches its final value.

Weights between steps: masked (pruned entries exactly 0) and, with QAT, quantized. Around the
optimizer step they are the float masters, masked again afterwards and re-quantized::

    backward -> after_backward: float masters back in, accumulate importance
    optimizer.step()
    after_optimizer_step: mask update when due, zero pruned entries, quantize
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
from torch import nn

from orchestrator.compress.config import CompressionConfig
from orchestrator.compress.distill import Distiller
from orchestrator.compress.prune import Pruner, cubic_sparsity, prunable_count
from orchestrator.compress.quantize import QatWeights, prepare_qat, quantize_ptq
from orchestrator.compress.size import ArtifactInfo, dense_size_bytes, export_artifact
from orchestrator.train.hooks import TrainHooks


class CompressionHooks(TrainHooks):
    """All compression of one trial. Build it once per trial, then let the loop call it.

    ``teacher_logits``: (train rows, classes), indexed by the batch's row indices (needed
    with distillation). ``calibration_batches``: input tensors for PTQ activation ranges.
    """

    def __init__(self, config: CompressionConfig, epochs: int, steps_per_epoch: int,
                 teacher_logits: torch.Tensor | None = None,
                 calibration_batches: Iterable[torch.Tensor] | None = None):
        if epochs < 1 or steps_per_epoch < 1:
            raise ValueError(f"epochs={epochs} and steps_per_epoch={steps_per_epoch} must be >= 1")
        self.config, self.epochs, self.steps_per_epoch = config, epochs, steps_per_epoch
        self.calibration_batches = calibration_batches
        self.step = 0
        self.pruner: Pruner | None = None
        self.qat: QatWeights | None = None
        self.target_sparsity = 0.0
        self._pruned_final = False
        self.distiller = None
        self.dense_bytes = self.dense_weights = None
        if config.distillation is not None:
            if teacher_logits is None:
                raise ValueError("compression.distillation is set but no teacher_logits were given")
            self.distiller = Distiller(config.distillation, teacher_logits)
        q = config.quantization
        if q is not None and q.mode == "ptq" and q.activations and calibration_batches is None:
            raise ValueError("quantization.mode='ptq' with activations=true needs calibration_batches")
        if config.pruning is not None:
            self._check_pruning_epochs()

    def _check_pruning_epochs(self) -> None:
        p = self.config.pruning
        end = self.epochs if p.end_epoch is None else p.end_epoch
        if p.start_epoch >= self.epochs:
            raise ValueError(f"pruning.start_epoch={p.start_epoch} must be < epochs={self.epochs}")
        if p.schedule == "gradual" and end > self.epochs:
            raise ValueError(f"pruning.end_epoch={p.end_epoch} must be <= epochs={self.epochs}")
        self.t0 = p.start_epoch * self.steps_per_epoch
        self.t_end = end * self.steps_per_epoch
        data_dependent = p.method != "magnitude"
        self.t_oneshot = self.t0 + (p.frequency if data_dependent else 0)

    # ------------------------------------------------------------------ loop hooks

    def prepare(self, model: nn.Module) -> nn.Module:
        self.dense_bytes, self.dense_weights = dense_size_bytes(model), prunable_count(model)
        if self.config.pruning is not None:
            self.pruner = Pruner(model, self.config.pruning)
            self.pruner.attach()
            self._maybe_prune()  # before quantizing: weight = fake_quant(mask * master)
        q = self.config.quantization
        if q is not None and q.mode == "qat":
            model, self.qat = prepare_qat(model, q)
        return model

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        if self.distiller is None:
            return super().loss(logits, targets, indices)
        return self.distiller.loss(logits, targets, indices)

    def after_backward(self, model: nn.Module, step: int) -> None:
        if self.qat is not None:
            self.qat.restore_float_()
        if self.pruner is not None and not self._pruned_final and self.step >= self.t0:
            self.pruner.accumulate()

    def after_optimizer_step(self, model: nn.Module, step: int) -> None:
        self.step += 1
        self._maybe_prune()
        if self.pruner is not None:
            self.pruner.apply_()
        if self.qat is not None:
            self.qat.quantize_()

    def end_epoch(self, model: nn.Module, epoch: int) -> dict[str, float]:
        metrics: dict[str, float] = {"bits": float(self._bits())}
        if self.pruner is not None:
            metrics["sparsity"] = self.pruner.sparsity()
            metrics["target_sparsity"] = self.target_sparsity
        return metrics

    def finish_training(self, model: nn.Module) -> None:
        """Final masks (if the schedule has not reached them) on the model as trained; under
        FSDP every rank calls this, and the QAT masters are gathered for ``make_permanent``."""
        if self.pruner is not None and not self._pruned_final:
            if self.qat is not None:
                self.qat.restore_float_()
            self._update(self.config.pruning.sparsity)
            self._pruned_final = True
            if self.qat is not None:
                self.qat.quantize_()
        if self.qat is not None:
            self.qat.gather_masters()

    def make_permanent(self, model: nn.Module) -> nn.Module:
        """QAT convert, masks baked in (+ channels removed), then PTQ. ``model`` is the trained
        model or a whole copy of it (FSDP: gathered on rank 0)."""
        q = self.config.quantization
        if self.qat is not None:
            model = self.qat.convert(model)
        if self.pruner is not None:
            model = self.pruner.make_permanent(model)
        if q is not None and q.mode == "ptq":
            model = quantize_ptq(model, q, self.calibration_batches)
        return model

    def state_dict(self) -> dict:
        """Schedule position, masks and pruning bookkeeping, float master weights; activation
        observers live in the model's own state (their buffers)."""
        state = {"step": self.step, "target_sparsity": self.target_sparsity, "pruned_final": self._pruned_final}
        if self.pruner is not None:
            state["pruner"] = self.pruner.state_dict()
        if self.qat is not None:
            state["qat"] = self.qat.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.step, self.target_sparsity = int(state["step"]), float(state["target_sparsity"])
        self._pruned_final = bool(state["pruned_final"])
        if self.pruner is not None:
            self.pruner.load_state_dict(state["pruner"])
        if self.qat is not None:
            self.qat.load_state_dict(state["qat"])

    def size_bytes(self, model: nn.Module) -> int | None:
        return None  # only the exported artifact gives real bytes (see export)

    def export(self, model: nn.Module, path: str | os.PathLike) -> ArtifactInfo:
        """``export_artifact`` against the dense size recorded in ``prepare``."""
        return export_artifact(model, path, dense_bytes=self.dense_bytes, dense_weights=self.dense_weights)

    # ------------------------------------------------------------------ pruning schedule

    def _bits(self) -> int:
        q = self.config.quantization
        return 32 if q is None else q.bits

    def _update(self, sparsity: float | None) -> None:
        self.pruner.update(sparsity)
        self.target_sparsity = sparsity if sparsity is not None else self.pruner.sparsity()

    def _maybe_prune(self) -> None:
        p = self.config.pruning
        if self.pruner is None or self._pruned_final or self.step < self.t0:
            return
        if p.schedule == "oneshot":
            if self.step >= self.t_oneshot:
                self._update(p.sparsity)
                self._pruned_final = True
            return
        due = (self.step - self.t0) % p.frequency == 0 or self.step >= self.t_end
        if not due or (p.method != "magnitude" and self.pruner.batches == 0):
            return
        self._update(cubic_sparsity(self.step, p.initial_sparsity, p.sparsity, self.t0, self.t_end))
        self._pruned_final = self.step >= self.t_end
