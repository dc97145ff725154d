"""Scenario: a sweep of GPU trials on an autoscaling cluster that starts with no GPU node.

A head with CPUs only and a worker type {CPU: 1, GPU: 1} (min 0, max 2), all on this machine
through Ray's fake_multinode provider (``ray.cluster_utils.AutoscalingCluster`` in spirit,
but started here: its ``start()`` runs ``ray stop --force``, which would kill every Ray on the
machine, and reads an example.yaml the wheel lacks). The fake GPUs have no CUDA, so the
trials train on CPU (``ORCHESTRATOR_GPU_CPU_FALLBACK=1`` in the environment every node
inherits). Checks: 0 GPU nodes at the start, ≥ 1 while the sweep runs, every trial completed,
0 GPU nodes again once the idle timeout has passed.

With ``--plan-from-cluster-file`` the sweep is planned from the cluster config's node types
(``run --cluster``): 2 trials at once, so the autoscaler must go to its maximum of 2 GPU nodes.

Run: ``PYTHONPATH=. python tests/cluster/autoscale_sweep.py [--plan-from-cluster-file]`` →
one ``VERDICT {json}`` line; exit 0 when every check holds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as h  # noqa: E402

TRIALS = 3
IDLE_TIMEOUT_MIN = 0.1  # 6 s: the autoscaler (v1) takes fractional minutes
RELEASE_WAIT_S = 90


def cluster_config(gcs_address: str, head_cpus: int) -> dict:
    """The fake_multinode example config of Ray's source tree, written out here."""
    return {
        "cluster_name": "orchestrator-fake",
        "max_workers": 2,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": IDLE_TIMEOUT_MIN,
        "provider": {"type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
                     "disable_launch_config_check": True,
                     # Without it the provider joins nodes to port 6379: somebody else's Ray.
                     "gcs_address": gcs_address},
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": head_cpus}, "node_config": {}, "max_workers": 0},
            "ray.worker.gpu": {"resources": {"CPU": 1, "GPU": 1}, "node_config": {},
                               "min_workers": 0, "max_workers": 2},
        },
        "head_node_type": "ray.head.default",
        "auth": {}, "docker": {},
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
        "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "rsync_exclude": [], "rsync_filter": [],
    }


def start_head(root: str, head_cpus: int) -> tuple[subprocess.Popen, str]:
    import ray._private.services as services

    gcs_port, client_port, agent_port, metrics_port = h.free_ports(4)
    gcs_address = f"{services.get_node_ip_address()}:{gcs_port}"
    config_path = os.path.join(root, "autoscaling.json")
    with open(config_path, "w") as f:
        json.dump(cluster_config(gcs_address, head_cpus), f)
    cmd = [os.path.join(os.path.dirname(sys.executable), "ray"), "start", "--head", "--block",
           f"--autoscaling-config={config_path}", f"--num-cpus={head_cpus}", "--num-gpus=0",
           f"--port={gcs_port}", f"--ray-client-server-port={client_port}",
           f"--dashboard-agent-listen-port={agent_port}", f"--metrics-export-port={metrics_port}",
           "--include-dashboard=false", f"--temp-dir={os.environ['RAY_TMPDIR']}",
           "--object-store-memory=100000000", "--disable-usage-stats"]
    # What AutoscalingCluster.start() sets: the fake provider refuses to run without
    # RAY_FAKE_CLUSTER, and the autoscaler re-plans every second instead of every 5 s.
    env = {**os.environ, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1",
           "ORCHESTRATOR_GPU_CPU_FALLBACK": "1"}
    log = open(os.path.join(root, "ray-start.log"), "w")
    # Its own process group: the whole cluster (head, monitor, the nodes the monitor starts)
    # is stopped with one killpg, and nothing else on the machine is touched.
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, process_group=0)
    return proc, gcs_address


def wait_for_head(proc: subprocess.Popen, deadline_s: float = 60) -> None:
    marker = os.path.join(os.environ["RAY_TMPDIR"], "ray_current_cluster")
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited with {proc.returncode}")
        if os.path.exists(marker):
            return
        time.sleep(0.3)
    raise TimeoutError(f"the head did not come up in {deadline_s} s")


def _pgid(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except OSError:
        return -1


def stop_head(proc: subprocess.Popen, root: str) -> list[str]:
    """Stop the cluster: SIGTERM its process group, SIGKILL what is left after a grace period
    (gcs_server and the monitor linger for > 20 s otherwise), then the processes it started
    outside that group (raylets give each worker its own group) and anything else that still
    names our temp dir. Returns those stragglers."""
    ours = h.descendants()
    group = [pid for pid in ours if _pgid(pid) == proc.pid]
    for sig, grace_s in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        end = time.monotonic() + grace_s
        while any(h.is_alive(pid) for pid in group) and time.monotonic() < end:
            time.sleep(0.1)
    proc.wait(timeout=5)
    return h.reap(ours) + h.kill_processes_mentioning(root)


def run(root: str, gcs_address: str, cluster_file: str | None) -> dict:
    import pandas as pd
    import ray
    from rich.console import Console

    from orchestrator.recipe import build_template
    from orchestrator.sweep.runner import run_sweep

    ready = time.monotonic()
    ray.init(address=gcs_address, log_to_driver=False, logging_level="WARNING")
    timeline = h.NodeTimeline().start()
    _, gpu_at_start = timeline.sample()
    recipe = h.sweep_recipe(os.path.join(root, "results"), "t-autoscale",
                            train={"lr": {"grid": [0.05, 0.1, 0.2][:TRIALS]}},
                            parallel={"use_gpu": True, "gpus_per_worker": 1, "cpus_per_worker": 1})
    timeline.phase = "sweep"
    started = time.monotonic()
    init_s = started - ready
    outcome = run_sweep(build_template(recipe), address=gcs_address, cluster=cluster_file, quiet=True,
                        console=Console(file=open(os.devnull, "w")))
    sweep_s = time.monotonic() - started
    timeline.phase = "idle"
    end = time.monotonic() + RELEASE_WAIT_S
    gpu_after = timeline.sample()[1]
    while gpu_after > 0 and time.monotonic() < end:
        time.sleep(0.5)
        gpu_after = timeline.sample()[1]
    release_s = time.monotonic() - started - sweep_s
    timeline.stop()
    trials = pd.read_parquet(outcome.files["trials"])
    return {
        "gpu_nodes_at_start": gpu_at_start,
        "max_gpu_nodes_during_sweep": timeline.max_gpu("sweep"),
        "gpu_nodes_after_idle": gpu_after,
        "trials": h.trial_rows(trials),
        "plan_max_concurrent": outcome.plan.max_concurrent,
        "plan_notes": outcome.plan.notes,
        "timeline": timeline.events,
        "init_s": round(init_s, 1),
        "sweep_s": round(sweep_s, 1),
        "release_s": round(release_s, 1),
    }


def checks(v: dict, cluster_file: str | None) -> list[str]:
    failures = []
    # Elastic plan (no node types): one trial at a time, so one GPU node suffices. Planned
    # from the node types: the 2 GPU nodes at full scale run 2 trials at once.
    concurrent = 2 if cluster_file else 1
    if v["plan_max_concurrent"] != concurrent:
        failures.append(f"plan ran {v['plan_max_concurrent']} trials at once, expected {concurrent}")
    if cluster_file and v["max_gpu_nodes_during_sweep"] != 2:
        failures.append(f"planned from the node types, the sweep should scale to 2 GPU nodes, "
                        f"saw {v['max_gpu_nodes_during_sweep']}")
    if v["gpu_nodes_at_start"] != 0:
        failures.append(f"expected 0 GPU nodes at the start, saw {v['gpu_nodes_at_start']}")
    if v["max_gpu_nodes_during_sweep"] < 1:
        failures.append("the autoscaler never added a GPU node during the sweep")
    if v["gpu_nodes_after_idle"] != 0:
        failures.append(f"{v['gpu_nodes_after_idle']} GPU nodes still up {RELEASE_WAIT_S} s after the sweep")
    statuses = [t["status"] for t in v["trials"]]
    if statuses != ["completed"] * TRIALS:
        failures.append(f"trial statuses {statuses}, expected {TRIALS} completed")
    return failures


def main(argv: list[str]) -> int:
    plan_from_file = "--plan-from-cluster-file" in argv
    root = h.private_env("ray-cl-as-")
    t0 = time.monotonic()
    verdict: dict = {"scenario": "autoscale_sweep", "root": root}
    proc = None
    try:
        with h.failures_into(verdict):
            proc, gcs_address = start_head(root, head_cpus=1)
            wait_for_head(proc)
            verdict["head_up_s"] = round(time.monotonic() - t0, 1)
            cluster_file = os.path.join(root, "autoscaling.json") if plan_from_file else None
            verdict["plan_from_cluster_file"] = plan_from_file
            verdict.update(run(root, gcs_address, cluster_file))
            verdict["failures"] = checks(verdict, cluster_file)
    finally:
        import ray

        ray.shutdown()
        if proc is not None:
            stopping = time.monotonic()
            verdict["stragglers_killed"] = stop_head(proc, root)
            verdict["stop_s"] = round(time.monotonic() - stopping, 1)
        code = h.conclude(verdict, root, t0)  # printed even when an interrupt propagates
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
