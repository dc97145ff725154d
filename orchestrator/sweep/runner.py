"""A whole sweep: start (or join) Ray, train the dense baseline once, run the Tune sweep,
write the Parquet results. The only entry point the CLI needs."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field

import pandas as pd
import pyarrow.fs as pafs
import ray
import torch
import yaml
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule
from ray.tune.search.basic_variant import BasicVariantGenerator
from rich.console import Console

import orchestrator
from orchestrator.console import output_console
from orchestrator.data import load_splits
from orchestrator.models import build_model
from orchestrator.recipe import RecipeTemplate
from orchestrator.recipe.schema import Recipe
from orchestrator.results import compare_sweeps, plot_comparison, sweep_frontier
from orchestrator.results.schema import epochs_frame, trial_row, trials_frame
from orchestrator.errors import UsageError
from orchestrator.results.store import SweepDir, is_uri, local_path
from orchestrator.sweep.cluster import NodeType, read_node_types
from orchestrator.sweep.planner import Plan, capacity_from_node_types, plan_resources
from orchestrator.sweep.compression import TrialCompression
from orchestrator.sweep.progress import LiveTrialTable
from orchestrator.sweep.space import count_trials, param_space
from orchestrator.sweep.trial import TrialContext, run_trial
from orchestrator.train.parallel import STATE_FILE

# Tune's own progress output (verbose=0 silences the legacy reporter) would bury the live table.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# Tune warns whenever trial checkpoints force experiment snapshots close together, which
# per-epoch checkpoints always do: 0 turns that warning off, as Tune's own message advises.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


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
    frontier: pd.DataFrame | None = None


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
        # time_attr "epoch" (ours), not Tune's training_iteration, which restarts at 1 when a
        # trial is restored from a checkpoint.
        return ASHAScheduler(time_attr="epoch", metric=search.metric, mode=search.mode,
                             max_t=epochs + 1, grace_period=cfg.grace_period,
                             reduction_factor=cfg.reduction_factor, brackets=cfg.brackets)
    if cfg.name == "median":
        return MedianStoppingRule(time_attr="epoch", metric=search.metric, mode=search.mode,
                                  grace_period=cfg.grace_period, min_samples_required=cfg.min_samples_required)
    return FIFOScheduler()


def _run_stage(stage: str, template: RecipeTemplate, sweep: SweepDir, plan: Plan, context: TrialContext,
               console: Console, quiet: bool, resume: bool = False) -> tune.ResultGrid:
    recipe = template.base
    leaves = template.leaves if stage == "sweep" else ()
    epochs = context.epochs
    trainable = tune.with_resources(tune.with_parameters(run_trial, context=context), plan.trial_resources)
    stage_path = f"{sweep.ray_storage}/{stage}"
    if resume and tune.Tuner.can_restore(stage_path):
        # Finished trials keep their results; unfinished and errored ones continue from their
        # last checkpoint. The trainable is rebuilt: object refs of the old Ray are gone.
        console.print(f"resuming {stage} of sweep {sweep.sweep_id} from {stage_path}")
        tuner = tune.Tuner.restore(stage_path, trainable, resume_unfinished=True, resume_errored=True)
        return tuner.fit()
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
                                  # a failed trial restarts from its last checkpoint
                                  failure_config=tune.FailureConfig(max_failures=recipe.search.retries),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
    )
    try:
        return tuner.fit()
    finally:
        if live is not None:
            live.close()


def _history(result) -> pd.DataFrame | None:
    """Every epoch a trial reported. Tune's progress.csv keeps a report that landed just
    before the trial process was killed, which result.json (behind metrics_dataframe) can
    miss once the trial is restored from that report's checkpoint."""
    path = f"{result.path.rstrip('/')}/progress.csv"
    try:
        fs, where = pafs.FileSystem.from_uri(path) if is_uri(path) else (pafs.LocalFileSystem(), path)
        with fs.open_input_stream(where) as f:
            return pd.read_csv(f)
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError):
        return result.metrics_dataframe


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
        histories.append(epochs_frame(sweep.sweep_id, trial_id, _history(result)))
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


def _plot_frontier(trials: pd.DataFrame, sweep: SweepDir) -> str | None:
    """frontier.png beside the Parquet files (local results only; the report command draws
    remote ones)."""
    folder = local_path(sweep.path)
    if folder is None or trials["size_bytes"].notna().sum() == 0:
        return None
    path = os.path.join(folder, "frontier.png")
    plot_comparison(compare_sweeps([trials]), path, title=f"{sweep.recipe_name} · {sweep.sweep_id}")
    return path


def needs_teacher(template: RecipeTemplate) -> bool:
    """Whether any trial distils (distillation may itself be swept on or off)."""
    if template.base.compression.distillation is not None:
        return True
    return any(leaf.path.startswith("compression.distillation") or leaf.path == "compression" for leaf in template.leaves)


@torch.no_grad()
def teacher_logits(baseline: Recipe, state: dict, splits) -> torch.Tensor:
    """The dense baseline's logits on the train split: computed once per sweep and shared by
    every distilling trial through the object store, indexed by training-row number."""
    model = build_model(baseline.model, splits.input_shape, splits.num_classes)
    model.load_state_dict(state)
    model.eval()
    return torch.cat([model(x) for x in splits.train_x.split(1024)])


def plan_sweep(template: RecipeTemplate, resources: dict, *, address: str | None,
               node_types: list[NodeType] | None = None) -> Plan:
    """The resource plan for this recipe on a cluster offering ``resources`` (Ray's
    cluster_resources()), or on the node types of a cluster.yaml when given."""
    recipe = template.base
    total = count_trials(template.leaves, recipe.search.num_samples)
    if node_types:
        cpus, gpus, node_cpus, node_gpus = capacity_from_node_types(node_types)
        return plan_resources(recipe, cpus, gpus, total, local=False, max_node_cpus=node_cpus, max_node_gpus=node_gpus)
    return plan_resources(recipe, resources.get("CPU", 0.0), resources.get("GPU", 0.0), total,
                          local=address is None, elastic=address is not None)


def find_sweep(template: RecipeTemplate, sweep_id: str) -> SweepDir:
    """The sweep folder to resume: ``sweep_id``, or the newest sweep of the recipe for
    "latest". It must have been started from this same recipe (hash of the resolved YAML)."""
    recipe = template.base
    if sweep_id == "latest":
        root = SweepDir.create(recipe.results.path, recipe.name, "x")
        fs, base = pafs.FileSystem.from_uri(root.path) if is_uri(root.path) else (pafs.LocalFileSystem(), root.path)
        parent = base.rsplit("/", 1)[0]
        found = fs.get_file_info(pafs.FileSelector(parent, allow_not_found=True))
        ids = sorted(info.base_name for info in found if info.type == pafs.FileType.Directory
                     and not info.base_name.startswith(("_", ".")))
        if not ids:
            raise UsageError(f"--resume: no sweep of recipe {recipe.name!r} under {parent}")
        sweep_id = ids[-1]  # ids start with a UTC timestamp
    sweep = SweepDir.create(recipe.results.path, recipe.name, sweep_id)
    if not sweep.exists("sweep.json"):
        raise UsageError(f"--resume: {sweep.path} is not a sweep folder (no sweep.json)")
    meta = json.loads(sweep.read_text("sweep.json"))
    if meta.get("recipe_hash") != template.hash:
        raise UsageError(f"--resume: sweep {sweep_id} was started from a different recipe (hash "
                         f"{meta.get('recipe_hash')}, this one {template.hash}); pass the same recipe and overrides")
    if meta.get("status") == "finished":
        raise UsageError(f"--resume: sweep {sweep_id} already finished; its results are in {sweep.path}")
    return sweep


def run_sweep(template: RecipeTemplate, *, address: str | None = None, console: Console | None = None,
              quiet: bool = False, cluster: str | None = None, resume: str | None = None) -> SweepOutcome:
    """Run the recipe's baseline and sweep; write trials/epochs Parquet; return what was written.
    ``resume``: a sweep id (or "latest") to continue after an interruption."""
    started = time.monotonic()
    console = console or output_console()
    recipe = template.base
    sweep = find_sweep(template, resume) if resume else SweepDir.create(recipe.results.path, recipe.name)
    total = count_trials(template.leaves, recipe.search.num_samples)
    node_types = read_node_types(cluster) if cluster else None
    with ray_session(address, state_api=recipe.parallel.workers > 1):
        plan = plan_sweep(template, ray.cluster_resources(), address=address, node_types=node_types)
        for note in plan.notes:
            console.print(f"[yellow]plan:[/] {note}")
        splits = load_splits(recipe.data)
        sweep.makedirs()
        sweep.write_text("recipe.yaml", yaml.safe_dump(template.data, sort_keys=False))
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        previous = json.loads(sweep.read_text("sweep.json")) if resume else {}
        meta = {"sweep_id": sweep.sweep_id, "recipe_name": recipe.name, "recipe_hash": template.hash,
                "created_at": previous.get("created_at", now),
                "resumed_at": [*previous.get("resumed_at", []), now] if resume else [],
                "orchestrator_version": orchestrator.__version__, "ray_version": ray.__version__,
                "torch_version": torch.__version__, "trials_planned": total, "status": "running",
                "max_concurrent_trials": plan.max_concurrent, "source": template.source}
        sweep.write_json("sweep.json", meta)
        common = dict(template=template, splits_ref=ray.put(splits), cpus_per_worker=plan.cpus_per_worker,
                      train_storage=f"{sweep.ray_storage}/train")
        artifacts = f"{sweep.path}/_artifacts"

        rows, histories = [], []
        baseline_ref = teacher_ref = None
        if recipe.baseline.enabled:
            epochs = recipe.baseline.epochs or recipe.train.epochs
            context = TrialContext(stage="baseline", epochs=epochs, baseline_ref=None,
                                   compression=TrialCompression(None, artifacts), **common)
            grid = _run_stage("baseline", template, sweep, plan, context, console, quiet, resume=bool(resume))
            stage_rows, stage_hist = _collect("baseline", grid, template, sweep, epochs)
            rows += stage_rows
            histories += stage_hist
            baseline_state = _baseline_state(grid)
            baseline_ref = ray.put(baseline_state)
            if needs_teacher(template):
                teacher_ref = ray.put(teacher_logits(template.baseline_recipe(), baseline_state, splits))

        context = TrialContext(stage="sweep", epochs=recipe.train.epochs, baseline_ref=baseline_ref,
                               compression=TrialCompression(teacher_ref, artifacts), **common)
        grid = _run_stage("sweep", template, sweep, plan, context, console, quiet, resume=bool(resume))
        stage_rows, stage_hist = _collect("sweep", grid, template, sweep, recipe.train.epochs)
        rows += stage_rows
        histories += stage_hist

    trials = trials_frame(rows)
    reported = [h for h in histories if not h.empty]  # a trial that failed at once reported nothing
    epochs_df = pd.concat(reported, ignore_index=True) if reported else pd.DataFrame()
    frontier = sweep_frontier(trials)
    files = {"trials": sweep.write_table("trials.parquet", trials),
             "epochs": sweep.write_table("epochs.parquet", epochs_df),
             "frontier": sweep.write_table("frontier.parquet", frontier)}
    plot = _plot_frontier(trials, sweep)
    if plot:
        files["plot"] = plot
    wall = time.monotonic() - started
    sweep.write_json("sweep.json", {**meta, "status": "finished", "wall_s": wall, "trials": len(trials)})
    return SweepOutcome(sweep=sweep, trials=trials, epochs=epochs_df, plan=plan, wall_s=wall, files=files,
                        frontier=frontier)
