"""``orchestrator plan``: what a sweep will ask for and roughly how long it will take, before
anything starts. The time estimate is measured, not guessed: one epoch of the recipe's
first trial is trained here (plain loop, no Ray) and scaled."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from orchestrator.data import load_splits
from orchestrator.recipe import RecipeTemplate
from orchestrator.sweep.planner import Plan

# Measured with bench/overhead.py on a 2-core machine: seconds a trial costs on top of its
# training (trial start, reporting, teardown), for one in-process worker and for a Ray Train
# worker group.
OVERHEAD_S = {"single": 1.2, "train_workers": 26.0}


@dataclass(frozen=True)
class Estimate:
    epoch_s: float  # one epoch of one trial, measured here
    trial_s: float  # a full-length trial, overhead included
    wall_s: float  # every trial at full length, ``concurrency`` at a time (ASHA only shortens it)
    gpu_hours: float


def estimate(template: RecipeTemplate, plan: Plan) -> Estimate:
    recipe = template.base
    from orchestrator.sweep.compression import make_hooks
    from orchestrator.train.loop import train_model

    torch.set_num_threads(recipe.train.threads)
    splits = load_splits(recipe.data)
    # Stand-in teacher logits: a distillation step costs the same, and no baseline exists yet.
    hooks = make_hooks(recipe, splits, recipe.train.epochs, torch.zeros(len(splits.train_y), splits.num_classes))
    # Two epochs, the faster one counts: the first pays one-off start-up (kernel selection,
    # allocator warm-up) that a trial pays once, not per epoch.
    timings: list[float] = []
    train_model(recipe, splits, lambda metrics, *_: timings.append(metrics["epoch_s"]), hooks=hooks, epochs=2)
    epoch_s = min(timings)
    per_worker_speedup = max(1, plan.workers) ** 0.8  # DDP on separate cores; measured ~1.7x for 2
    overhead = OVERHEAD_S["single" if plan.workers == 1 else "train_workers"]
    trial_s = epoch_s * recipe.train.epochs / per_worker_speedup + overhead
    baseline_s = 0.0
    if recipe.baseline.enabled:
        baseline_s = epoch_s * (recipe.baseline.epochs or recipe.train.epochs) + overhead
    wall_s = baseline_s + math.ceil(plan.total_trials / plan.max_concurrent) * trial_s
    gpu_hours = plan.gpus_per_trial * (trial_s * plan.total_trials + baseline_s) / 3600
    return Estimate(epoch_s, trial_s, wall_s, gpu_hours)
