"""Knowledge distillation as a loss (the teacher's logits are precomputed, no teacher model here).

loss = (1 - alpha) * CE(y, s) + alpha * T^2 * KL(softmax(t / T) || softmax(s / T))

The T^2 factor keeps the soft-target gradients on the scale of the hard-target ones when T
changes (Hinton et al. 2015). KL is averaged over the batch ("batchmean"), the true KL per row.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from orchestrator.compress.config import DistillationConfig


def kd_loss(
    student_logits: torch.Tensor,
    targets: torch.Tensor,
    teacher_logits: torch.Tensor,
    alpha: float,
    temperature: float,
) -> torch.Tensor:
    """The distillation loss above; ``alpha = 0`` is plain cross-entropy."""
    if alpha == 0.0:
        return F.cross_entropy(student_logits, targets)
    soft_targets = soft_log_targets(teacher_logits.to(student_logits), temperature)
    return _kd_from_soft_targets(student_logits, targets, soft_targets, alpha, temperature)


def soft_log_targets(teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """log softmax(t / T): constant for a sweep, so computed once, not in every step."""
    return F.log_softmax(teacher_logits.detach() / temperature, dim=-1)


def _kd_from_soft_targets(student_logits: torch.Tensor, targets: torch.Tensor, soft_log_targets: torch.Tensor,
                          alpha: float, temperature: float) -> torch.Tensor:
    ce = F.cross_entropy(student_logits, targets)
    t = temperature
    kl = F.kl_div(F.log_softmax(student_logits / t, dim=-1), soft_log_targets, reduction="batchmean", log_target=True)
    return (1.0 - alpha) * ce + alpha * t * t * kl


class Distiller:
    """Looks up the precomputed teacher logits of a batch by its row indices."""

    def __init__(self, config: DistillationConfig, teacher_logits: torch.Tensor):
        if teacher_logits.dim() != 2:
            raise ValueError(f"teacher_logits must be (rows, classes), got shape {tuple(teacher_logits.shape)}")
        self.config = config
        self.teacher_logits = teacher_logits.detach()
        self.soft_targets = soft_log_targets(self.teacher_logits.float(), config.temperature)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        if logits.shape[-1] != self.teacher_logits.shape[-1]:
            raise ValueError(
                f"student has {logits.shape[-1]} classes, teacher_logits {self.teacher_logits.shape[-1]}"
            )
        if self.config.alpha == 0.0:
            return F.cross_entropy(logits, targets)
        soft = self.soft_targets[indices.to(self.soft_targets.device)].to(logits)
        return _kd_from_soft_targets(logits, targets, soft, self.config.alpha, self.config.temperature)
