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

from orchestrator.errors import UsageError
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


class PlanError(UsageError):
    """The recipe asks for resources that the cluster can never offer."""


def capacity_from_node_types(node_types) -> tuple[float, float, float, float]:
    """(total CPUs, total GPUs, largest node's CPUs, largest node's GPUs) at full scale."""
    cpus = sum(t.cpus * t.max_workers for t in node_types)
    gpus = sum(t.gpus * t.max_workers for t in node_types)
    return cpus, gpus, max((t.cpus for t in node_types), default=0.0), max((t.gpus for t in node_types), default=0.0)


def plan_resources(recipe: Recipe, cluster_cpus: float, cluster_gpus: float, total_trials: int,
                   *, local: bool, max_node_cpus: float | None = None, max_node_gpus: float | None = None,
                   elastic: bool = False) -> Plan:
    """Plan one sweep against what the cluster offers.

    ``local``: an embedded Ray on this machine, where a per-worker CPU ask that cannot fit is
    scaled down (it is a scheduling token, not a thread count). ``elastic``: a running
    cluster whose autoscaler may add nodes that are not there yet (no node types known), so
    nothing is declared infeasible from the current resources. Otherwise (node types known
    from cluster.yaml, or a fixed cluster) a worker no node can hold is a ``PlanError``."""
    par, notes = recipe.parallel, []
    gpw = par.gpus_per_worker if par.use_gpu else 0.0
    cpw = par.cpus_per_worker
    node_cpus = max_node_cpus if max_node_cpus is not None else cluster_cpus
    node_gpus = max_node_gpus if max_node_gpus is not None else cluster_gpus
    if gpw > 1 and not float(gpw).is_integer():
        raise PlanError(f"parallel.gpus_per_worker={gpw}: above 1, ask for whole GPUs")
    if not elastic:
        if gpw > node_gpus:
            raise PlanError(f"parallel.gpus_per_worker={gpw:g} but no node offers more than {node_gpus:g} GPUs")
        if cpw > node_cpus and not local:
            raise PlanError(f"parallel.cpus_per_worker={cpw:g} but no node has more than {node_cpus:g} CPUs")
    if local and cpw > node_cpus and par.workers == 1:
        notes.append(f"cpus_per_worker {cpw:g} > {node_cpus:g} CPUs here: reserving {node_cpus:g}")
        cpw = node_cpus
    if local and par.workers > 1 and cpw * par.workers + DRIVER_CPU > cluster_cpus:
        fit = math.floor((cluster_cpus - DRIVER_CPU) / par.workers * 100) / 100
        if fit <= 0:
            raise PlanError(f"parallel.workers={par.workers} cannot fit {cluster_cpus:g} CPUs")
        notes.append(f"cpus_per_worker {cpw:g} → {fit:g} so that {par.workers} workers and the trial driver fit {cluster_cpus:g} CPUs")
        cpw = fit

    if par.workers == 1:
        trial = {"cpu": cpw, "gpu": gpw}
        per_trial_cpu = cpw
    else:
        trial = {"cpu": DRIVER_CPU, "gpu": 0.0}
        per_trial_cpu = DRIVER_CPU + par.workers * cpw
    concurrency = math.floor(cluster_cpus / per_trial_cpu + 1e-9)
    if gpw > 0:
        concurrency = min(concurrency, math.floor(cluster_gpus / (gpw * par.workers) + 1e-9))
    if concurrency < 1:
        if not elastic:
            raise PlanError(f"one trial needs {per_trial_cpu:g} CPUs and {gpw * par.workers:g} GPUs; "
                            f"the cluster offers {cluster_cpus:g} CPUs and {cluster_gpus:g} GPUs")
        notes.append("a trial does not fit the nodes running now: one trial at a time while the autoscaler "
                     "adds nodes (plan with --cluster cluster.yaml to size concurrency from its node types)")
        concurrency = 1
    concurrency = min(concurrency, total_trials)
    requested = recipe.search.max_concurrent_trials
    if requested is not None:
        if requested > concurrency:
            notes.append(f"search.max_concurrent_trials {requested} > {concurrency} that fit: using {concurrency}")
        concurrency = min(requested, concurrency)
    return Plan(trial, cpw, gpw, par.workers, max(1, concurrency), total_trials, notes)
