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
    ce = F.cross_entropy(student_logits, targets)
    if alpha == 0.0:
        return ce
    t = temperature
    kl = F.kl_div(
        F.log_softmax(student_logits / t, dim=-1),
        F.log_softmax(teacher_logits.detach().to(student_logits) / t, dim=-1),
        reduction="batchmean",
        log_target=True,
    )
    return (1.0 - alpha) * ce + alpha * t * t * kl


class Distiller:
    """Looks up the precomputed teacher logits of a batch by its row indices."""

    def __init__(self, config: DistillationConfig, teacher_logits: torch.Tensor):
        if teacher_logits.dim() != 2:
            raise ValueError(f"teacher_logits must be (rows, classes), got shape {tuple(teacher_logits.shape)}")
        self.config = config
        self.teacher_logits = teacher_logits.detach()

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        if logits.shape[-1] != self.teacher_logits.shape[-1]:
            raise ValueError(
                f"student has {logits.shape[-1]} classes, teacher_logits {self.teacher_logits.shape[-1]}"
            )
        teacher = self.teacher_logits[indices.to(self.teacher_logits.device)].to(logits.device)
        return kd_loss(logits, targets, teacher, self.config.alpha, self.config.temperature)
