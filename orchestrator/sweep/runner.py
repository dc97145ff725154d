"""A whole sweep: start (or join) Ray, train the dense baseline once, run the Tune sweep,
write the Parquet results. The only entry point the CLI needs."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field

import pandas as pd
import ray
import torch
import yaml
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule
from ray.tune.search.basic_variant import BasicVariantGenerator
from rich.console import Console

import orchestrator
from orchestrator.data import load_splits
from orchestrator.recipe import RecipeTemplate
from orchestrator.recipe.schema import Recipe
from orchestrator.results import sweep_frontier
from orchestrator.results.schema import epochs_frame, trial_row, trials_frame
from orchestrator.results.store import SweepDir
from orchestrator.sweep.planner import Plan, plan_resources
from orchestrator.sweep.progress import LiveTrialTable
from orchestrator.sweep.space import count_trials, param_space
from orchestrator.sweep.trial import TrialContext, run_trial
from orchestrator.train.parallel import STATE_FILE

# Tune's own progress output (verbose=0 silences the legacy reporter) would bury the live table.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


class _DropNoise(logging.Filter):
    """Ray warnings that say nothing actionable to a user of this tool."""

    NOISE = ("Token authentication is enabled",)

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(text in record.getMessage() for text in self.NOISE)


@dataclass
class SweepOutcome:
    sweep: SweepDir
    trials: pd.DataFrame
    epochs: pd.DataFrame
    plan: Plan
    wall_s: float
    files: dict = field(default_factory=dict)


@contextlib.contextmanager
def ray_session(address: str | None, state_api: bool = True):
    """Join a running Ray (tests, ``--address``) or start an embedded one for this process.

    ``state_api``: start the dashboard, whose State API Ray Train's placement-group cleaner
    needs to free the workers of a trial that Tune stopped early (without it, later trials
    wait forever for CPUs). Single-worker trials never start Train workers, so they skip
    the dashboard and its ~2.5 s of start-up."""
    if ray.is_initialized():
        yield False
        return
    logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(_DropNoise())
    ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, configure_logging=True,
             include_dashboard=None if (address is not None or state_api) else False)
    try:
        yield address is None
    finally:
        ray.shutdown()


def _scheduler(recipe: Recipe, epochs: int):
    cfg, search = recipe.search.scheduler, recipe.search
    if cfg.name == "asha":
        # max_t one past the last epoch: with max_t == epochs ASHA stops a Train V2 trial at
        # its final report and TorchTrainer.fit() never returns (RAY_NOTES.md).
        return ASHAScheduler(time_attr="training_iteration", metric=search.metric, mode=search.mode,
                             max_t=epochs + 1, grace_period=cfg.grace_period,
                             reduction_factor=cfg.reduction_factor, brackets=cfg.brackets)
    if cfg.name == "median":
        return MedianStoppingRule(time_attr="training_iteration", metric=search.metric, mode=search.mode,
                                  grace_period=cfg.grace_period, min_samples_required=cfg.min_samples_required)
    return FIFOScheduler()


def _run_stage(stage: str, template: RecipeTemplate, sweep: SweepDir, plan: Plan, context: TrialContext,
               console: Console, quiet: bool) -> tune.ResultGrid:
    recipe = template.base
    leaves = template.leaves if stage == "sweep" else ()
    epochs = context.epochs
    trainable = tune.with_resources(tune.with_parameters(run_trial, context=context), plan.trial_resources)
    callbacks = []
    live = None
    if not quiet:
        title = f"{recipe.name} · {stage} · sweep {sweep.sweep_id}"
        live = LiveTrialTable(console, title, [leaf.path for leaf in leaves], recipe.search.metric,
                              recipe.search.mode, epochs)
        callbacks.append(live)
    tuner = tune.Tuner(
        trainable,
        param_space=param_space(leaves),
        tune_config=tune.TuneConfig(
            scheduler=_scheduler(recipe, epochs) if stage == "sweep" else FIFOScheduler(),
            num_samples=recipe.search.num_samples if stage == "sweep" else 1,
            # The concurrency cap lives in the generator: Tune ignores max_concurrent_trials
            # when search_alg is a BasicVariantGenerator.
            search_alg=BasicVariantGenerator(random_state=recipe.search.seed, max_concurrent=plan.max_concurrent),
            # Reusing the trial process saves its start-up (importing torch) for every trial.
            # Not for multi-worker trials that a scheduler may stop: such a trial is still
            # inside fit(), and its actor must die so that Train releases the workers'
            # resources. Trials that nothing stops return from fit() and can be reused.
            reuse_actors=recipe.parallel.workers == 1 or recipe.search.scheduler.name == "none",
        ),
        run_config=tune.RunConfig(name=stage, storage_path=sweep.ray_storage, verbose=0, callbacks=callbacks,
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )
    try:
        return tuner.fit()
    finally:
        if live is not None:
            live.close()


def _trial_id(result) -> str:
    return str(result.metrics.get("trial_id") or os.path.basename(result.path.rstrip("/")))


def _collect(stage: str, grid: tune.ResultGrid, template: RecipeTemplate, sweep: SweepDir,
             epochs: int) -> tuple[list[dict], list[pd.DataFrame]]:
    rows, histories = [], []
    paths = [leaf.path for leaf in template.leaves] if stage == "sweep" else []
    for result in grid:
        config = {p: result.config.get(p) for p in paths}
        recipe = template.resolve(config) if stage == "sweep" else template.baseline_recipe()
        trial_id = _trial_id(result)
        error = f"{type(result.error).__name__}: {result.error}"[:2000] if result.error else None
        rows.append(trial_row(sweep_id=sweep.sweep_id, recipe_name=recipe.name, recipe_hash=template.hash,
                              trial_id=trial_id, stage=stage, params=config, last=result.metrics or {},
                              epochs_planned=epochs, seed=recipe.train.seed, error=error))
        histories.append(epochs_frame(sweep.sweep_id, trial_id, result.metrics_dataframe))
    return rows, histories


def _baseline_state(grid: tune.ResultGrid) -> dict:
    """The dense baseline's final weights, from the checkpoint its trial reported."""
    result = grid[0]
    if result.error:
        raise RuntimeError(f"the dense baseline failed: {result.error}")
    checkpoint = result.checkpoint
    if checkpoint is None and result.metrics.get("checkpoint_path"):  # multi-worker: Train's checkpoint
        checkpoint = ray.train.Checkpoint(result.metrics["checkpoint_path"])
    if checkpoint is None:
        raise RuntimeError("the dense baseline reported no checkpoint")
    with checkpoint.as_directory() as path:
        return torch.load(os.path.join(path, STATE_FILE), weights_only=True)


def run_sweep(template: RecipeTemplate, *, address: str | None = None, console: Console | None = None,
              quiet: bool = False) -> SweepOutcome:
    """Run the recipe's baseline and sweep; write trials/epochs Parquet; return what was written."""
    started = time.monotonic()
    console = console or Console()
    recipe = template.base
    sweep = SweepDir.create(recipe.results.path, recipe.name)
    total = count_trials(template.leaves, recipe.search.num_samples)
    with ray_session(address, state_api=recipe.parallel.workers > 1) as local:
        resources = ray.cluster_resources()
        plan = plan_resources(recipe, resources.get("CPU", 0.0), resources.get("GPU", 0.0), total,
                              local=bool(local) or address is None)
        for note in plan.notes:
            console.print(f"[yellow]plan:[/] {note}")
        splits = load_splits(recipe.data)
        sweep.makedirs()
        sweep.write_text("recipe.yaml", yaml.safe_dump(template.data, sort_keys=False))
        meta = {"sweep_id": sweep.sweep_id, "recipe_name": recipe.name, "recipe_hash": template.hash,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "orchestrator_version": orchestrator.__version__, "ray_version": ray.__version__,
                "torch_version": torch.__version__, "trials_planned": total, "status": "running",
                "max_concurrent_trials": plan.max_concurrent, "source": template.source}
        sweep.write_json("sweep.json", meta)
        common = dict(template=template, splits_ref=ray.put(splits), cpus_per_worker=plan.cpus_per_worker,
                      train_storage=f"{sweep.ray_storage}/train")

        rows, histories = [], []
        baseline_ref = None
        if recipe.baseline.enabled:
            epochs = recipe.baseline.epochs or recipe.train.epochs
            context = TrialContext(stage="baseline", epochs=epochs, baseline_ref=None, **common)
            grid = _run_stage("baseline", template, sweep, plan, context, console, quiet)
            stage_rows, stage_hist = _collect("baseline", grid, template, sweep, epochs)
            rows += stage_rows
            histories += stage_hist
            baseline_ref = ray.put(_baseline_state(grid))

        context = TrialContext(stage="sweep", epochs=recipe.train.epochs, baseline_ref=baseline_ref, **common)
        grid = _run_stage("sweep", template, sweep, plan, context, console, quiet)
        stage_rows, stage_hist = _collect("sweep", grid, template, sweep, recipe.train.epochs)
        rows += stage_rows
        histories += stage_hist

    trials = trials_frame(rows)
    epochs_df = pd.concat([h for h in histories if not h.empty], ignore_index=True) if histories else pd.DataFrame()
    files = {"trials": sweep.write_table("trials.parquet", trials),
             "epochs": sweep.write_table("epochs.parquet", epochs_df),
             "frontier": sweep.write_table("frontier.parquet", sweep_frontier(trials))}
    wall = time.monotonic() - started
    sweep.write_json("sweep.json", {**meta, "status": "finished", "wall_s": wall, "trials": len(trials)})
    return SweepOutcome(sweep=sweep, trials=trials, epochs=epochs_df, plan=plan, wall_s=wall, files=files)
