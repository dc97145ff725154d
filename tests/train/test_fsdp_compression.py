"""Pruning, QAT and distillation under FSDP2 (2 gloo ranks) train like one process.

The training loop runs with the FSDP engine (``DataParallelEngine(wrap=shard_model)``, as
Ray Train workers run it): each rank holds half of every weight and trains on half of every
batch. Masks are decided on gathered scores and applied shard by shard; QAT masters are
kept per shard (per-tensor ranges all-reduced). The reference is the same loop in one
process with the same recipe, data and seed. Only the float summation order differs, which
can flip a weight that sits on a rounding boundary of the quantizer, so the final models are
compared element by element with a small allowance for such flips.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist

from orchestrator.data import load_splits
from orchestrator.models import build_model
from orchestrator.recipe import build_template
from orchestrator.sweep.compression import make_hooks
from orchestrator.train.engines import DataParallelEngine
from orchestrator.train.loop import train_model
from orchestrator.train.model_parallel import shard_model
from tests.train.gloo import init_rank, spawn_ranks

WORLD = 2
CONFIGS = {
    "gradual-global+qat-tensor+kd": {
        "pruning": {"sparsity": 0.8, "scope": "global", "schedule": "gradual", "end_epoch": 2, "frequency": 5},
        "quantization": {"bits": 4, "granularity": "per_tensor"},
        "distillation": {"alpha": 0.5, "temperature": 2.0},
    },
    "structured-taylor+qat-channel-asym": {
        "pruning": {"method": "taylor", "sparsity": 0.5, "structured": True, "scope": "layer", "start_epoch": 1},
        "quantization": {"bits": 3, "symmetric": False, "granularity": "per_channel"},
    },
}


def _recipe(compression: dict):
    return build_template({
        "name": "fsdp-compress", "data": {"name": "digits"}, "model": {"hidden": [48, 32]},
        "train": {"epochs": 3, "batch_size": 64, "lr": 0.05, "optimizer": {"name": "sgd", "momentum": 0.9}},
        "compression": compression, "search": {"scheduler": {"name": "none"}},
    }).base


def _teacher(splits) -> torch.Tensor:
    return torch.randn(len(splits.train_y), splits.num_classes, generator=torch.Generator().manual_seed(7))


def _train(name: str, rank: int = 0, world_size: int = 1, **loop_kwargs) -> dict:
    recipe = _recipe(CONFIGS[name])
    splits = load_splits(recipe.data)
    hooks = make_hooks(recipe, splits, recipe.train.epochs, _teacher(splits))
    final: dict = {}

    def report(metrics, model, last):
        if last and model is not None and rank == 0:
            final["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def rebuild(state):
        model = build_model(recipe.model, splits.input_shape, splits.num_classes)
        model.load_state_dict(state)
        return model

    engine = (lambda m: DataParallelEngine(m, wrap=shard_model, rebuild=rebuild)) if world_size > 1 else None
    result = train_model(recipe, splits, report, hooks=hooks, rank=rank, world_size=world_size, make_engine=engine,
                         **loop_kwargs)
    return {"history": result.history, "state": final.get("state")}


def _worker(rank: int, port: int, out: str) -> None:
    init_rank(rank, WORLD, port)
    try:
        results = {}
        for name in CONFIGS:
            saved: list[dict] = []
            results[name] = _train(name, rank, WORLD, checkpoint=saved.append, checkpoint_every=1)
            # Interrupted after epoch 1: every rank reads rank 0's checkpoint file, as Ray
            # Train hands each worker the checkpoint, and training continues from it.
            path = os.path.join(out, f"{name}.ckpt")
            if rank == 0:
                torch.save(saved[0], path)
            dist.barrier()
            resumed = _train(name, rank, WORLD, resume=torch.load(path, weights_only=True))
            results[name]["resumed"] = resumed
        torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    return spawn_ranks(_worker, WORLD, tmp_path_factory.mktemp("fsdp_compression"))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_fsdp_compressed_training_matches_one_process(ranks, name):
    torch.set_num_threads(1)
    ref = _train(name)
    got = ranks[0][name]
    for mine, theirs in zip(got["history"], ref["history"], strict=True):
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-4), (mine, theirs)
        assert abs(mine["val_accuracy"] - theirs["val_accuracy"]) <= 0.01
        assert mine["sparsity"] == pytest.approx(theirs["sparsity"], abs=0.005)
        assert mine["target_sparsity"] == theirs["target_sparsity"]
    # every rank saw the same epochs (the metrics are all-reduced)
    assert [h["train_loss"] for h in ranks[1][name]["history"]] == [h["train_loss"] for h in got["history"]]

    final, expected = got["state"], ref["state"]
    assert ranks[1][name]["state"] is None, "only rank 0 holds the gathered model"
    assert final.keys() == expected.keys()
    for key, value in expected.items():
        assert final[key].shape == value.shape, key  # structured pruning removed the same channels
        if value.is_floating_point():
            differs = ~torch.isclose(final[key], value, rtol=1e-4, atol=1e-5)
            assert differs.float().mean() <= 0.01, (key, int(differs.sum()), value.numel())
    weights = [k for k in expected if k.endswith("weight")]
    zeros = sum(int((final[k] == 0).sum()) for k in weights) / sum(final[k].numel() for k in weights)
    ref_zeros = sum(int((expected[k] == 0).sum()) for k in weights) / sum(expected[k].numel() for k in weights)
    assert zeros == pytest.approx(ref_zeros, abs=0.005) and zeros > 0.2
    scales = [k for k in expected if k.endswith("weight_scale")]
    assert scales, "QAT convert registered the quantization parameters"


@pytest.mark.parametrize("name", list(CONFIGS))
def test_fsdp_training_resumed_from_a_checkpoint_equals_uninterrupted(ranks, name):
    """The checkpoint holds whole tensors (model, optimizer moments, masks, importance, QAT
    masters, gathered from the shards); resuming re-shards them and training ends exactly
    where the uninterrupted run ended."""
    whole, resumed = ranks[0][name], ranks[0][name]["resumed"]
    keys = ("train_loss", "val_loss", "val_accuracy", "sparsity")
    assert [[h[k] for k in keys] for h in resumed["history"]] == [[h[k] for k in keys] for h in whole["history"]]
    assert resumed["state"].keys() == whole["state"].keys()
    for key, value in whole["state"].items():
        assert torch.equal(resumed["state"][key], value), key
