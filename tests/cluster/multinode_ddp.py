"""Scenario: one two-worker DDP trial whose workers must sit on two different nodes.

``ray.cluster_utils.Cluster`` in this process: a head without CPUs and two nodes of 1 CPU
each. The trial asks for 2 workers × 0.9 CPU plus its 0.01-CPU driver, so no node can hold
both workers and Train's placement group has to span the two nodes; DDP (gloo) then talks
across them. Evidence: the node ids of the trial's ``RayTrainWorker`` actors (Train V2's
worker class) from the State API, cross-checked against the GCS actor table.

Run: ``PYTHONPATH=. python tests/cluster/multinode_ddp.py`` → one ``VERDICT {json}`` line;
exit 0 when every check holds.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as h  # noqa: E402

WORKER_CLASS = "RayTrainWorker"  # ray/train/v2/_internal/execution/worker_group/worker.py
CPUS_PER_WORKER = 0.9
EPOCHS = 2


def start_cluster():
    from ray.cluster_utils import Cluster

    dashboard_port, agent_port = h.free_ports(2)
    # The dashboard hosts the State API (list_actors) and Train's placement-group cleaner
    # relies on it; explicit ports because 8265/52365 may belong to another Ray here.
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": True, "dashboard_port": dashboard_port,
        "dashboard_agent_listen_port": agent_port, "object_store_memory": 100 * 1024 * 1024})
    nodes = [cluster.add_node(num_cpus=1, object_store_memory=100 * 1024 * 1024) for _ in range(2)]
    cluster.wait_for_nodes()
    return cluster, [n.node_id for n in nodes], cluster.head_node.node_id


def worker_nodes_from_state_api(address: str) -> list[dict]:
    from ray.util.state import list_actors

    # An explicit address: without one the State API guesses among the Rays on this machine.
    actors = list_actors(address=address, filters=[("class_name", "=", WORKER_CLASS)], detail=True, limit=1000)
    return [{"actor_id": a.actor_id, "node_id": a.node_id, "state": a.state, "pid": a.pid} for a in actors]


def worker_nodes_from_gcs() -> dict[str, str]:
    """actor id → node id, straight from the GCS actor table (no dashboard involved)."""
    import ray

    table = ray._private.state.actors()
    return {aid: info["Address"]["NodeID"] for aid, info in table.items()
            if info.get("ActorClassName", "").endswith(WORKER_CLASS)}


def run(root: str, cluster, cpu_nodes: list[str], head: str) -> dict:
    import pandas as pd
    import ray
    from rich.console import Console

    from orchestrator.recipe import build_template
    from orchestrator.sweep.runner import run_sweep

    ready = time.monotonic()
    ray.init(address=cluster.address, log_to_driver=False, logging_level="WARNING")
    timeline = h.NodeTimeline().start()
    recipe = h.sweep_recipe(os.path.join(root, "results"), "t-multinode",
                            train={"epochs": EPOCHS},
                            parallel={"workers": 2, "cpus_per_worker": CPUS_PER_WORKER})
    started = time.monotonic()
    outcome = run_sweep(build_template(recipe), address=cluster.address, quiet=True,
                        console=Console(file=open(os.devnull, "w")))
    sweep_s = time.monotonic() - started
    timeline.stop()
    trials = pd.read_parquet(outcome.files["trials"])
    workers = worker_nodes_from_state_api(cluster.address)
    return {
        "cpu_nodes": cpu_nodes,
        "head_node": head,
        "cluster_cpus": ray.cluster_resources().get("CPU"),
        "trials": h.trial_rows(trials),
        "plan_cpus_per_worker": outcome.plan.cpus_per_worker,
        "plan_max_concurrent": outcome.plan.max_concurrent,
        "workers": workers,
        "workers_gcs": worker_nodes_from_gcs(),
        "timeline": timeline.events,
        "init_s": round(started - ready, 1),
        "sweep_s": round(sweep_s, 1),
    }


def checks(v: dict) -> list[str]:
    failures = []
    statuses = [(t["status"], t["epochs_run"]) for t in v["trials"]]
    if statuses != [("completed", EPOCHS)]:
        failures.append(f"trial (status, epochs) {statuses}, expected one completed after {EPOCHS} epochs")
    nodes = [w["node_id"] for w in v["workers"]]
    if len(nodes) != 2:
        failures.append(f"expected the trial's 2 {WORKER_CLASS} actors, the State API lists {len(nodes)}")
    elif len(set(nodes)) != 2:
        failures.append(f"both DDP workers ran on node {nodes[0]}")
    elif set(nodes) != set(v["cpu_nodes"]):
        failures.append(f"workers on {sorted(nodes)}, expected the two CPU nodes {sorted(v['cpu_nodes'])}")
    gcs = {w["actor_id"]: w["node_id"] for w in v["workers"]}
    if gcs != v["workers_gcs"]:
        failures.append(f"State API {gcs} disagrees with the GCS actor table {v['workers_gcs']}")
    return failures


def main() -> int:
    root = h.private_env("ray-cl-mn-")
    t0 = time.monotonic()
    verdict: dict = {"scenario": "multinode_ddp", "root": root}
    cluster = None
    try:
        with h.failures_into(verdict):
            cluster, cpu_nodes, head = start_cluster()
            verdict["cluster_up_s"] = round(time.monotonic() - t0, 1)
            verdict.update(run(root, cluster, cpu_nodes, head))
            verdict["failures"] = checks(verdict)
    finally:
        h.stop_local_cluster(cluster, root, verdict)
        code = h.conclude(verdict, root, t0)  # printed even when an interrupt propagates
    return code


if __name__ == "__main__":
    sys.exit(main())
