"""What a Ray cluster launcher config (``cluster.yaml``) offers, for planning a sweep before
any node exists: an autoscaling cluster starts with no GPU nodes, so the current resources
say nothing about what the sweep will get."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from orchestrator.errors import UsageError


@dataclass(frozen=True)
class NodeType:
    name: str
    cpus: float
    gpus: float
    min_workers: int
    max_workers: int

    def workers_fitting(self, cpus_per_worker: float, gpus_per_worker: float) -> int:
        """How many Train workers (or single-worker trials) of that shape one node holds."""
        fits = [math.floor(self.cpus / cpus_per_worker + 1e-9)] if cpus_per_worker > 0 else []
        if gpus_per_worker > 0:
            fits.append(math.floor(self.gpus / gpus_per_worker + 1e-9))
        return min(fits) if fits else 0


# `ray up` writes the launcher config it used onto the head node under this name.
BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"


def default_cluster_file(address: str | None) -> Path | None:
    """The launcher config of the cluster this process runs on, when it can be found: on the
    head of a cluster started with ``ray up`` (where ``--address auto`` and ``ray job submit``
    run), ``~/ray_bootstrap_config.yaml``. None for an embedded local Ray or elsewhere, where
    only ``--cluster`` says what the autoscaler can add."""
    if address is None:
        return None
    path = Path(BOOTSTRAP_CONFIG).expanduser()
    return path if path.is_file() else None


def read_node_types(path: str | Path) -> list[NodeType]:
    """Worker node types of a cluster launcher config, with their declared resources."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--cluster: file not found: {str(path)!r}")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UsageError(f"--cluster: {path} is not valid YAML: {exc}") from None
    types = (config or {}).get("available_node_types")
    if not isinstance(types, dict) or not types:
        raise UsageError(f"--cluster: {path} has no available_node_types")
    head = config.get("head_node_type")
    out = []
    for name, spec in types.items():
        resources = (spec or {}).get("resources") or {}
        if not isinstance(resources, dict):
            raise UsageError(f"--cluster: available_node_types.{name}.resources must be a mapping")
        max_workers = 1 if name == head else int(spec.get("max_workers", config.get("max_workers", 0)))
        out.append(NodeType(name, float(resources.get("CPU", 0)), float(resources.get("GPU", 0)),
                            int(spec.get("min_workers", 0)) if name != head else 1, max_workers))
    return out


def nodes_needed(node_types: list[NodeType], concurrent_units: int, cpus: float, gpus: float) -> dict[str, int]:
    """Nodes the autoscaler would add to run ``concurrent_units`` bundles of (cpus, gpus) at
    once, filling the smallest node type that fits first (types in config order break ties)."""
    fitting = [t for t in node_types if t.workers_fitting(cpus, gpus) > 0 and t.max_workers > 0]
    fitting.sort(key=lambda t: (t.gpus, t.cpus))
    needed, remaining = {}, concurrent_units
    for node_type in fitting:
        if remaining <= 0:
            break
        per_node = node_type.workers_fitting(cpus, gpus)
        count = min(node_type.max_workers, math.ceil(remaining / per_node))
        needed[node_type.name] = count
        remaining -= count * per_node
    return needed
