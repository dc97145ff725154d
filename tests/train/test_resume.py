"""Restore-equivalence: training interrupted at a checkpoint and resumed from it ends exactly
where uninterrupted training ends (dense, and with pruning + QAT + distillation)."""

from __future__ import annotations

import io

import pytest
import torch

from orchestrator.data import load_splits
from orchestrator.recipe import build_template
from orchestrator.sweep.compression import make_hooks
from orchestrator.train.loop import train_model

COMPRESSION = {
    "pruning": {"method": "gradient", "sparsity": 0.8, "schedule": "gradual", "end_epoch": 3, "frequency": 7},
    "quantization": {"bits": 4, "activations": True},
    "distillation": {"alpha": 0.5, "temperature": 2.0},
}


def _recipe(compression: dict | None):
    data = {"name": "r", "data": {"name": "digits"}, "model": {"hidden": [32], "dropout": 0.1},
            "train": {"epochs": 4, "lr": 0.05, "optimizer": {"name": "sgd", "momentum": 0.9}},
            "search": {"scheduler": {"name": "none"}}}
    if compression:
        data["compression"] = compression
    return build_template(data).base


def _roundtrip(state: dict) -> dict:
    """What a checkpoint file gives back: saved, then loaded without unpickling code."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("compression", [None, COMPRESSION], ids=["dense", "prune+qat+kd"])
def test_resumed_training_equals_uninterrupted_training(compression):
    torch.set_num_threads(1)
    recipe = _recipe(compression)
    splits = load_splits(recipe.data)
    teacher = torch.randn(len(splits.train_y), splits.num_classes)

    def run(**kwargs):
        hooks = make_hooks(recipe, splits, recipe.train.epochs, teacher)
        return train_model(recipe, splits, lambda *a: None, hooks=hooks, **kwargs)

    whole = run()
    saved: list[dict] = []
    run(checkpoint=lambda state: saved.append(_roundtrip(state)), checkpoint_every=1)
    assert [s["epoch"] for s in saved] == [1, 2, 3]
    resumed = run(resume=saved[1])  # interrupted after epoch 2

    keys = ("train_loss", "val_loss", "val_accuracy", "test_accuracy", "sparsity")
    assert [[h[k] for k in keys] for h in resumed.history] == [[h[k] for k in keys] for h in whole.history]
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
