"""Resource planning: trials plus their workers always fit, and impossible asks are errors."""

from __future__ import annotations

import pytest

from orchestrator.recipe import build_template
from orchestrator.sweep.cluster import nodes_needed, read_node_types
from orchestrator.sweep.planner import DRIVER_CPU, PlanError, capacity_from_node_types, plan_resources


def _recipe(**parallel):
    return build_template({"name": "p", "parallel": parallel}).base


def test_single_worker_trials_fill_the_cpus():
    plan = plan_resources(_recipe(), 2, 0, total_trials=12, local=True)
    assert plan.trial_resources == {"cpu": 1.0, "gpu": 0.0} and plan.max_concurrent == 2


def test_ddp_trial_is_shrunk_to_fit_a_laptop_and_never_oversubscribes():
    plan = plan_resources(_recipe(workers=2), 2, 0, total_trials=4, local=True)
    assert plan.trial_resources["cpu"] == DRIVER_CPU
    assert plan.max_concurrent * plan.cpus_per_trial <= 2
    assert plan.max_concurrent == 1 and plan.notes


@pytest.mark.parametrize("cpus,workers,cpw", [(2, 2, 1.0), (8, 3, 1.0), (16, 4, 2.0), (5, 2, 0.5)])
def test_concurrent_trials_and_their_workers_fit(cpus, workers, cpw):
    plan = plan_resources(_recipe(workers=workers, cpus_per_worker=cpw), cpus, 0, total_trials=100, local=True)
    assert plan.max_concurrent >= 1
    assert plan.max_concurrent * plan.cpus_per_trial <= cpus + 1e-9


def test_concurrency_never_exceeds_trials_or_the_recipes_cap():
    assert plan_resources(_recipe(), 64, 0, total_trials=3, local=True).max_concurrent == 3
    capped = build_template({"name": "p", "search": {"max_concurrent_trials": 1}}).base
    assert plan_resources(capped, 64, 0, total_trials=10, local=True).max_concurrent == 1


def test_gpu_trials_without_a_gpu_are_an_error_before_the_sweep():
    with pytest.raises(PlanError, match="gpus_per_worker"):
        plan_resources(_recipe(use_gpu=True, gpus_per_worker=1), 2, 0, total_trials=2, local=True)


def test_fractional_gpus_pack_several_trials_on_one_gpu():
    plan = plan_resources(_recipe(use_gpu=True, gpus_per_worker=0.25), 16, 1, total_trials=8, local=True)
    assert plan.max_concurrent == 4


def test_an_autoscaling_cluster_with_no_gpu_yet_runs_one_trial_at_a_time():
    plan = plan_resources(_recipe(use_gpu=True, gpus_per_worker=1), 0, 0, total_trials=4, local=False, elastic=True)
    assert plan.max_concurrent == 1 and plan.notes


def test_cluster_yaml_node_types_size_the_sweep():
    types = read_node_types("cluster.yaml")
    gpu_types = [t for t in types if t.gpus > 0]
    assert gpu_types and all(t.min_workers == 0 for t in gpu_types)
    cpus, gpus, node_cpus, node_gpus = capacity_from_node_types(types)
    plan = plan_resources(_recipe(use_gpu=True, gpus_per_worker=0.25), cpus, gpus, total_trials=6, local=False,
                          max_node_cpus=node_cpus, max_node_gpus=node_gpus)
    assert plan.max_concurrent == 6
    added = nodes_needed(types, 6, plan.cpus_per_worker, plan.gpus_per_worker)
    smallest = min(gpu_types, key=lambda t: t.gpus)
    assert added == {smallest.name: 2}  # 4 quarter-GPU trials per 1-GPU node
    with pytest.raises(PlanError):  # more GPUs per worker than any node type has
        plan_resources(_recipe(use_gpu=True, gpus_per_worker=8), cpus, gpus, total_trials=1, local=False,
                       max_node_cpus=node_cpus, max_node_gpus=node_gpus)


def test_on_a_ray_up_head_the_launcher_config_is_found(tmp_path, monkeypatch):
    """`ray up` leaves its config on the head as ~/ray_bootstrap_config.yaml: `run --address`
    plans from it without --cluster; an embedded local Ray never does."""
    from orchestrator.sweep.cluster import default_cluster_file

    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cluster_file("auto") is None  # not a cluster head
    (tmp_path / "ray_bootstrap_config.yaml").write_text(open("cluster.yaml").read())
    found = default_cluster_file("auto")
    assert found == tmp_path / "ray_bootstrap_config.yaml"
    assert default_cluster_file(None) is None
    assert read_node_types(found) == read_node_types("cluster.yaml")
