"""Run the training loop on N Ray Train workers (data parallel). The one module that
touches ``ray.train``.

``parallel.workers: 1`` never comes here: the sweep runs the loop inside the Tune trial
process, because a TorchTrainer would only add worker start-up (~7 s on 2 cores) to every
trial. With more workers, the Tune trial is a thin driver that builds a Train V2
``TorchTrainer`` and fits it; metrics reach Tune through ``TuneReportCallback``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable

import ray
import ray.train
import ray.train.torch
import torch
from ray.train.v2._internal.callbacks import DatasetsCallback
from ray.tune.integration.ray_train import TuneReportCallback

from orchestrator.recipe.schema import Recipe
from orchestrator.train.loop import train_model

STATE_FILE = "model.pt"

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
    make_hooks: Callable[[Recipe, Any], Any] | None  # (recipe, splits) -> TrainHooks
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
    hooks = task.make_hooks(task.recipe, splits) if task.make_hooks else None
    device = ray.train.torch.get_device()

    def report(metrics: dict, model: torch.nn.Module, final: bool) -> None:
        if not (final and task.save_final_state):
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if rank == 0:
                state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
                torch.save(state, os.path.join(tmp, STATE_FILE))
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=checkpoint)

    train_model(task.recipe, splits, report, hooks=hooks, initial_state=initial_state, epochs=task.epochs,
                rank=rank, world_size=world_size, device=device,
                wrap=lambda model: ray.train.torch.prepare_model(model, move_to_device=device))


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
            failure_config=ray.train.FailureConfig(max_failures=0),
        ),
    )
    trainer.fit()
