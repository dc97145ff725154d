"""cluster.yaml passes Ray's own cluster-launcher validation, offline, and keeps our invariants.

Offline path: ``prepare_config`` only merges the file with the AWS provider's bundled
``defaults.yaml`` (it reads a file, it calls no AWS API) and fills per-type min/max workers;
``validate_config`` then checks the merged dict against ``ray-schema.json`` plus a few
cross-field rules. Everything that talks to AWS (IAM, subnets, security groups, key pairs,
instance-type lookup) lives in ``ray up``'s bootstrap step, which is not called here.
``validate_config`` alone would reject the raw file: it requires ``cluster_synced_files``,
which only ``prepare_config`` fills in.
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

import pytest
import yaml

jsonschema = pytest.importorskip("jsonschema")
from ray.autoscaler._private.util import prepare_config, validate_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


@pytest.fixture(scope="module")
def prepared(raw) -> dict:
    cfg = prepare_config(copy.deepcopy(raw))
    validate_config(cfg)
    return cfg


def _validate(cfg: dict) -> None:
    validate_config(prepare_config(cfg))


def _workers(cfg: dict) -> dict[str, dict]:
    return {k: v for k, v in cfg["available_node_types"].items() if k != cfg["head_node_type"]}


def test_ray_accepts_cluster_yaml(prepared):
    assert prepared["cluster_name"] == "orchestrator"
    assert prepared["provider"]["type"] == "aws"


def _typo_top(c):
    c["max_worker"] = c.pop("max_workers")


def _typo_node_type(c):
    c["available_node_types"]["gpu1_spot"]["min_worker"] = 0


def _bad_head(c):
    c["head_node_type"] = "no_such_type"


def _min_over_max(c):
    c["available_node_types"]["gpu1_spot"]["min_workers"] = c["max_workers"] + 1


def _resources_wrong_type(c):
    c["available_node_types"]["gpu1_spot"]["resources"] = {"GPU": "1"}


def _resources_fraction(c):
    c["available_node_types"]["gpu1_spot"]["resources"] = {"CPU": 4, "GPU": 0.5}


def _resources_missing(c):
    del c["available_node_types"]["gpu1_spot"]["resources"]


@pytest.mark.parametrize(
    "breaks, message",
    [
        (_typo_top, "'max_worker' was unexpected"),
        (_typo_node_type, "'min_worker' was unexpected"),
        (_bad_head, "must be one of `available_node_types`"),
        (_min_over_max, "smaller than the sum of `min_workers`"),
        (_resources_wrong_type, "is not of type 'integer'"),
        (_resources_fraction, "is not of type 'integer'"),
        (_resources_missing, "'resources' is a required property"),
    ],
)
def test_ray_rejects_broken_copies(raw, breaks, message):
    cfg = copy.deepcopy(raw)
    breaks(cfg)
    with pytest.raises((jsonschema.ValidationError, ValueError), match=re.escape(message)):
        _validate(cfg)


# --- project invariants that Ray's validation does not enforce ---------------------------


def test_every_node_type_has_explicit_resources_and_workers_within_bounds(raw):
    # Ray accepts a type's min_workers > its own max_workers (it only checks the sum against
    # the global max_workers), so we check it here.
    for name, node in raw["available_node_types"].items():
        assert "resources" in node, f"{name} has no explicit resources: ray up would ask AWS"
        assert node.get("min_workers", 0) <= node.get("max_workers", raw["max_workers"]), name


def test_gpu_workers_scale_from_zero_and_head_runs_no_tasks(raw):
    workers = _workers(raw)
    assert workers, "no worker node types"
    for name, node in workers.items():
        assert node["resources"].get("GPU", 0) >= 1, f"{name} has no GPU"
        assert node.get("min_workers", 0) == 0, f"{name} does not scale from zero"
    head = raw["available_node_types"][raw["head_node_type"]]
    assert head["resources"].get("CPU") == 0, "the head must advertise CPU: 0"
    assert "GPU" not in head["resources"]


def test_every_spot_type_has_an_on_demand_fallback(raw):
    workers = _workers(raw)
    spot = {n: w for n, w in workers.items() if "InstanceMarketOptions" in w["node_config"]}
    on_demand = {n: w for n, w in workers.items() if n not in spot}
    assert spot, "no spot node types"
    for name, node in spot.items():
        assert node["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
        twins = [
            o
            for o in on_demand.values()
            if o["node_config"]["InstanceType"] == node["node_config"]["InstanceType"]
            and o["resources"] == node["resources"]
        ]
        assert twins, f"spot type {name} has no on-demand fallback with the same shape"
        assert all(node["priority"] > o.get("priority", 0) for o in twins), name


def test_dashboard_is_not_exposed(raw, prepared):
    rules = raw["provider"].get("security_group", {}).get("IpPermissions", [])
    for rule in rules:
        opened = [r.get("CidrIp") for r in rule.get("IpRanges", [])]
        opened += [r.get("CidrIpv6") for r in rule.get("Ipv6Ranges", [])]
        if "0.0.0.0/0" in opened or "::/0" in opened:
            assert (rule.get("FromPort"), rule.get("ToPort")) == (22, 22), rule
    start = " ".join(prepared["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in start
    assert "0.0.0.0" not in start


def test_setup_pins_torch_inside_the_project_bound(prepared):
    from packaging.requirements import Requirement
    from packaging.version import Version

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    bound = next(Requirement(d) for d in project["dependencies"] if d.startswith("torch"))
    for key in ("head_setup_commands", "worker_setup_commands"):
        pins = re.findall(r"torch==([0-9][0-9.]*)", " ".join(prepared[key]))
        assert pins, f"{key} does not pin torch"
        for pin in pins:
            assert Version(pin) in bound.specifier, f"{key}: torch=={pin} outside {bound}"
        # torch must be installed before the project, or pip resolves its own torch build.
        cmds = prepared[key]
        first_torch = next(i for i, c in enumerate(cmds) if "torch==" in c)
        first_project = next(i for i, c in enumerate(cmds) if "-e ~/orchestrator" in c)
        assert first_torch < first_project, key


def test_project_is_mounted_and_installed_on_every_node(prepared):
    assert prepared["file_mounts"].get("~/orchestrator") == "."
    for key in ("head_setup_commands", "worker_setup_commands"):
        assert any("pip install -e ~/orchestrator" in c for c in prepared[key]), key
