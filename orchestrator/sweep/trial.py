"""The Tune trial: resolve the trial's recipe, train, report every epoch to Tune.

One worker: the loop runs right here, in the trial's own process (no TorchTrainer, no extra
worker start-up). Several workers: this process is a thin driver around a DDP TorchTrainer
(``train/parallel.py``). Either way Tune receives the same metrics once per epoch.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any

import ray
import torch
from ray import tune

from orchestrator.recipe import RecipeTemplate
from orchestrator.sweep.compression import TrialCompression, has_compression
from orchestrator.train.loop import train_model
from orchestrator.train.parallel import (
    STATE_FILE,
    TRAINING_STATE_FILE,
    WorkerTask,
    fit_data_parallel,
    load_training_state,
)


@dataclass(frozen=True)
class TrialContext:
    """Everything a trial needs besides its config; shipped once via ``tune.with_parameters``."""

    template: RecipeTemplate
    stage: str  # "baseline" | "sweep"
    epochs: int
    splits_ref: Any  # ObjectRef[Splits]
    baseline_ref: Any  # ObjectRef[dict] | None: the dense baseline's weights
    cpus_per_worker: float
    train_storage: str  # where Train V2 runs of multi-worker trials keep their state
    compression: TrialCompression  # teacher logits + artifact folder (used if the recipe compresses)


def run_trial(config: dict, context: TrialContext) -> None:
    recipe = context.template.baseline_recipe() if context.stage == "baseline" else context.template.resolve(config)
    from_baseline = context.stage == "sweep" and recipe.train.init == "baseline"
    initial_ref = context.baseline_ref if from_baseline else None
    save_final = context.stage == "baseline"

    trial_id = tune.get_context().get_trial_id()
    compression = context.compression if context.stage == "sweep" and has_compression(recipe) else None
    if recipe.parallel.workers > 1:
        task = WorkerTask(recipe=recipe, splits_ref=context.splits_ref, initial_state_ref=initial_ref,
                          compression=compression, trial_id=trial_id, epochs=context.epochs,
                          save_final_state=save_final, cpus_per_worker=context.cpus_per_worker)
        fit_data_parallel(task, run_name=trial_id, storage_path=context.train_storage)
        return

    torch.set_num_threads(recipe.train.threads)
    splits = ray.get(context.splits_ref)
    initial_state = ray.get(initial_ref) if initial_ref is not None else None
    hooks = compression.hooks(recipe, splits, context.epochs) if compression else None
    resume = load_training_state(tune.get_checkpoint())
    pending: dict = {}

    def report(metrics: dict, model: torch.nn.Module, final: bool) -> None:
        if final and hooks is not None:
            metrics = {**metrics, **compression.finalize(hooks, model, trial_id, splits.input_shape)}
        files = {}
        if "state" in pending:
            files[TRAINING_STATE_FILE] = pending.pop("state")
        if final and save_final:
            files[STATE_FILE] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        if not files:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as tmp:
            for name, payload in files.items():
                torch.save(payload, os.path.join(tmp, name))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

    train_model(recipe, splits, report, hooks=hooks, initial_state=initial_state, epochs=context.epochs,
                device=trial_device(recipe),
                checkpoint=(lambda state: pending.update(state=state)) if recipe.train.checkpoint_every else None,
                checkpoint_every=recipe.train.checkpoint_every or 1, resume=resume)


# Test hook for schedulers: Ray's fake_multinode provider advertises GPUs that do not exist;
# with this set, a GPU trial on a machine without CUDA trains on the CPU instead of failing.
CPU_FALLBACK_ENV = "ORCHESTRATOR_GPU_CPU_FALLBACK"


def trial_device(recipe) -> torch.device | None:
    """Where a one-worker trial trains: the GPU Ray assigned it, or the CPU."""
    if not recipe.parallel.use_gpu:
        return None
    if torch.cuda.is_available():
        return torch.device("cuda")
    if os.environ.get(CPU_FALLBACK_ENV) == "1":
        return None
    raise RuntimeError("parallel.use_gpu is true but CUDA is not available on this node "
                       f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})")

