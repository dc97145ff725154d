"""Learning-rate schedules as pure functions of training progress (nanoGPT's ``get_lr``).

``progress`` is measured in epochs and may be fractional (epoch + step/steps_per_epoch), so
warmup and cosine move every step while exponential and step decay move once per epoch,
exactly as their formulas are usually written: η_t = η0 · decay^t with t the epoch.
"""

from __future__ import annotations

import math

from orchestrator.recipe.schema import LRScheduleConfig


def lr_at(schedule: LRScheduleConfig, base_lr: float, progress: float, total_epochs: int) -> float:
    """The learning rate at ``progress`` epochs into a run of ``total_epochs``."""
    warmup = schedule.warmup_epochs
    if warmup > 0 and progress < warmup:
        return base_lr * progress / warmup
    t = progress - warmup
    epoch = math.floor(t + 1e-9)
    if schedule.name == "constant":
        return base_lr
    if schedule.name == "exponential":
        return base_lr * schedule.decay**epoch
    if schedule.name == "step":
        return base_lr * schedule.gamma ** (epoch // schedule.step_epochs)
    if schedule.name == "cosine":
        span = max(total_epochs - warmup, 1e-9)
        floor = base_lr * schedule.min_lr_ratio
        return floor + 0.5 * (base_lr - floor) * (1 + math.cos(math.pi * min(t / span, 1.0)))
    raise ValueError(f"unknown lr schedule {schedule.name!r}")
