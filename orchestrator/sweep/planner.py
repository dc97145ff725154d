"""Resource planning: how much each trial asks for, and how many run at once, so that trial
drivers plus their Train workers always fit and no sweep deadlocks.

Ray Tune counts only a trial's own resources; the Train workers a trial launches ask for
theirs later. If Tune starts more trial drivers than there are CPUs for their workers, every
driver waits for workers that never come. So concurrency is derived from what one whole trial
(driver + workers) needs and what the cluster offers, and ``max_concurrent_trials`` caps it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from orchestrator.recipe.schema import Recipe

# A driver that only waits on its TorchTrainer still needs a non-zero CPU share: Tune rejects
# trials that ask for nothing.
DRIVER_CPU = 0.01


@dataclass(frozen=True)
class Plan:
    trial_resources: dict  # what Tune reserves for the trial function itself
    cpus_per_worker: float  # what each Train worker reserves (workers > 1)
    gpus_per_worker: float
    workers: int
    max_concurrent: int
    total_trials: int
    notes: list[str] = field(default_factory=list)

    @property
    def cpus_per_trial(self) -> float:
        if self.workers == 1:
            return self.trial_resources["cpu"]
        return DRIVER_CPU + self.workers * self.cpus_per_worker

    @property
    def gpus_per_trial(self) -> float:
        return self.workers * self.gpus_per_worker


class PlanError(ValueError):
    """The recipe asks for resources that the cluster can never offer."""


def plan_resources(recipe: Recipe, cluster_cpus: float, cluster_gpus: float, total_trials: int,
                   *, local: bool, max_node_cpus: float | None = None, max_node_gpus: float | None = None) -> Plan:
    """Plan one sweep. ``local``: an embedded Ray on this machine, where a per-worker CPU ask
    that cannot fit is scaled down (it is a scheduling token, not a thread count); on a
    cluster the same mismatch is an error, since the autoscaler may add nodes of a known size."""
    par, notes = recipe.parallel, []
    gpw = par.gpus_per_worker if par.use_gpu else 0.0
    cpw = par.cpus_per_worker
    node_cpus = max_node_cpus if max_node_cpus is not None else cluster_cpus
    node_gpus = max_node_gpus if max_node_gpus is not None else cluster_gpus
    if gpw > 0 and gpw > node_gpus:
        raise PlanError(f"parallel.gpus_per_worker={gpw} but no node offers more than {node_gpus:g} GPUs")
    if gpw > 1 and not float(gpw).is_integer():
        raise PlanError(f"parallel.gpus_per_worker={gpw}: above 1, ask for whole GPUs")

    if par.workers == 1:
        if cpw > node_cpus:
            if not local:
                raise PlanError(f"parallel.cpus_per_worker={cpw} but no node has more than {node_cpus:g} CPUs")
            notes.append(f"cpus_per_worker {cpw:g} > {node_cpus:g} CPUs here: reserving {node_cpus:g}")
            cpw = node_cpus
        trial = {"cpu": cpw, "gpu": gpw}
        per_trial_cpu = cpw
    else:
        fit = math.floor((cluster_cpus - DRIVER_CPU) / par.workers * 100) / 100
        if cpw * par.workers + DRIVER_CPU > cluster_cpus:
            if not local:
                raise PlanError(
                    f"parallel.workers={par.workers} × cpus_per_worker={cpw} (+{DRIVER_CPU} for the trial driver) "
                    f"exceeds the cluster's {cluster_cpus:g} CPUs"
                )
            if fit <= 0:
                raise PlanError(f"parallel.workers={par.workers} cannot fit {cluster_cpus:g} CPUs")
            notes.append(f"cpus_per_worker {cpw:g} → {fit:g} so that {par.workers} workers and the trial driver fit {cluster_cpus:g} CPUs")
            cpw = fit
        trial = {"cpu": DRIVER_CPU, "gpu": 0.0}
        per_trial_cpu = DRIVER_CPU + par.workers * cpw

    by_cpu = math.floor(cluster_cpus / per_trial_cpu + 1e-9)
    concurrency = by_cpu
    if gpw > 0:
        by_gpu = math.floor(cluster_gpus / (gpw * par.workers) + 1e-9) if cluster_gpus else 0
        concurrency = min(concurrency, by_gpu) if by_gpu else 1  # autoscaler will add GPU nodes
    concurrency = max(1, min(concurrency, total_trials))
    requested = recipe.search.max_concurrent_trials
    if requested is not None:
        if requested > concurrency:
            notes.append(f"search.max_concurrent_trials {requested} > {concurrency} that fit: using {concurrency}")
        concurrency = min(requested, concurrency)
    return Plan(trial, cpw, gpw, par.workers, concurrency, total_trials, notes)
