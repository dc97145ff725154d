"""Run the training loop on N Ray Train workers: data parallel (DDP, FSDP2) or pipelined.
The one module that touches ``ray.train``.

``parallel.workers: 1`` never comes here: the sweep runs the loop inside the Tune trial
process, because a TorchTrainer would only add worker start-up (~7 s on 2 cores) to every
trial. With more workers, the Tune trial is a thin driver that builds a Train V2
``TorchTrainer`` and fits it; metrics reach Tune through ``TuneReportCallback``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any

import ray
import ray.train
import ray.train.torch
import torch
from ray.train.v2._internal.callbacks import DatasetsCallback
from ray.tune.integration.ray_train import TuneReportCallback

from orchestrator.recipe.schema import Recipe
from orchestrator.models import build_model
from orchestrator.train.engines import DataParallelEngine, PipelineEngine
from orchestrator.train.loop import train_model
from orchestrator.train.model_parallel import shard_model

STATE_FILE = "model.pt"  # the final weights (the baseline's: teacher and starting point)
TRAINING_STATE_FILE = "training_state.pt"  # everything needed to continue training


def load_training_state(checkpoint) -> dict | None:
    """The training state in a Ray checkpoint, if it holds one. ``weights_only``: a
    checkpoint is data and never runs code when loaded."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as path:
        file = os.path.join(path, TRAINING_STATE_FILE)
        return torch.load(file, weights_only=True) if os.path.exists(file) else None

# Ray Train settings for short trials on few cores, set here because this module is imported
# in the Tune trial process that calls fit(); Train passes them on to its controller and workers.
TRAIN_ENV = {
    # The controller polls its workers this often; the 2 s default adds ~2 s to every report.
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2",
    # One more actor process per run, started while training starts (+~1 s to the first
    # report on 2 cores); it only observes node drains, and trials run with max_failures=0.
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
}
for _name, _value in TRAIN_ENV.items():
    os.environ.setdefault(_name, _value)


@dataclass(frozen=True)
class WorkerTask:
    """What every Train worker needs; shipped through ``train_loop_config``."""

    recipe: Recipe
    splits_ref: Any  # ObjectRef[Splits]: fetched from the object store, not pickled per worker
    initial_state_ref: Any  # ObjectRef[dict] | None
    compression: Any  # sweep.compression.TrialCompression | None: hooks + export on rank 0
    trial_id: str
    epochs: int
    save_final_state: bool  # report the final weights as a checkpoint (the baseline does)
    cpus_per_worker: float


def _worker_loop(config: dict) -> None:
    task: WorkerTask = config["task"]
    torch.set_num_threads(max(1, min(task.recipe.train.threads, int(task.cpus_per_worker) or 1)))
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    splits = ray.get(task.splits_ref)
    initial_state = ray.get(task.initial_state_ref) if task.initial_state_ref is not None else None
    hooks = task.compression.hooks(task.recipe, splits, task.epochs) if task.compression else None
    device = ray.train.torch.get_device()

    # DDP: every rank holds the whole state; FSDP: gathered to rank 0 for the checkpoint and
    # re-sharded from it on resume. Pipeline stages are not checkpointed (restart from scratch).
    resumable = task.recipe.parallel.strategy in ("ddp", "fsdp") and task.recipe.train.checkpoint_every > 0
    resume = load_training_state(ray.train.get_checkpoint()) if resumable else None
    pending: dict = {}

    def report(metrics: dict, model: torch.nn.Module, final: bool) -> None:
        if final and hooks is not None and rank == 0:  # only rank 0's metrics reach Tune
            metrics = {**metrics, **task.compression.finalize(hooks, model, task.trial_id, splits.input_shape)}
        files = {}
        if "state" in pending:
            files[TRAINING_STATE_FILE] = pending.pop("state")
        if final and task.save_final_state:
            files[STATE_FILE] = {k: v.detach().cpu() for k, v in model.state_dict().items()} if model is not None else None
        if not files:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if rank == 0:  # one copy: every rank holds the same state
                for name, payload in files.items():
                    torch.save(payload, os.path.join(tmp, name))
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=checkpoint)

    train_model(task.recipe, splits, report, hooks=hooks, initial_state=initial_state, epochs=task.epochs,
                rank=rank, world_size=world_size, device=device,
                make_engine=_engine_factory(task.recipe, splits, device),
                checkpoint=(lambda state: pending.update(state=state)) if resumable else None,
                checkpoint_every=task.recipe.train.checkpoint_every or 1, resume=resume)


def _engine_factory(recipe: Recipe, splits, device: torch.device):
    """How this worker runs the model, by ``parallel.strategy`` (see train/engines.py)."""
    par = recipe.parallel

    def rebuild(state: dict) -> torch.nn.Module:
        model = build_model(recipe.model, splits.input_shape, splits.num_classes)
        model.load_state_dict(state)
        return model

    if par.strategy == "fsdp":
        # Ray's prepare_model(parallel_strategy="fsdp") refuses CPU; FSDP2 shards directly.
        return lambda model: DataParallelEngine(model, wrap=shard_model, rebuild=rebuild)
    if par.strategy == "pipeline":
        return lambda model: PipelineEngine(model, par.microbatches, par.schedule, rebuild, device=device)
    return lambda model: DataParallelEngine(model, wrap=lambda m: ray.train.torch.prepare_model(m, move_to_device=device))


class _TorchTrainer(ray.train.torch.TorchTrainer):
    """A TorchTrainer without the DatasetManager actor: Ray starts one per run even with no
    Ray Datasets, and on 2 cores its process start delays the workers' start-up."""

    def _create_default_callbacks(self):  # private in Ray 2.60 (pinned)
        callbacks = super()._create_default_callbacks()
        if self.datasets:
            return callbacks
        return [cb for cb in callbacks if not isinstance(cb, DatasetsCallback)]


def fit_data_parallel(task: WorkerTask, run_name: str, storage_path: str) -> None:
    """Fit a DDP TorchTrainer from inside a Tune trial; Tune sees every epoch's report."""
    par = task.recipe.parallel
    resources = {"CPU": task.cpus_per_worker}
    if par.use_gpu:
        resources["GPU"] = par.gpus_per_worker
    trainer = _TorchTrainer(
        _worker_loop,
        train_loop_config={"task": task},
        scaling_config=ray.train.ScalingConfig(num_workers=par.workers, use_gpu=par.use_gpu,
                                               resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            name=run_name,
            storage_path=storage_path,
            callbacks=[TuneReportCallback()],
            # A dead worker restarts the worker group from the last checkpoint.
            failure_config=ray.train.FailureConfig(max_failures=task.recipe.search.retries),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
        ),
    )
    trainer.fit()
