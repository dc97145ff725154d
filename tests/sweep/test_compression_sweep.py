"""Compression sweeps end to end: hooks in the trials, teacher logits from the baseline,
real artifacts whose size on disk is the trial's size_bytes."""

from __future__ import annotations

import os

import pandas as pd
import pytest
import torch
from rich.console import Console

from orchestrator.compress import load_artifact
from orchestrator.data import load_splits
from orchestrator.recipe import build_template
from orchestrator.sweep.runner import run_sweep

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _recipe(tmp_path, workers: int, sparsity, alpha, strategy: str = "ddp") -> dict:
    return {
        "name": f"t-compress-w{workers}-{strategy}",
        "data": {"name": "digits"},
        "model": {"name": "mlp", "hidden": [64]},
        "train": {"epochs": 3, "lr": 0.02, "init": "baseline"},
        "parallel": {"workers": workers, "strategy": strategy},
        "baseline": {"epochs": 6, "overrides": {"train.lr": 0.1}},
        "compression": {
            "pruning": {"sparsity": sparsity, "schedule": "gradual", "end_epoch": 2, "frequency": 5},
            "quantization": {"bits": 4},
            "distillation": {"alpha": alpha, "temperature": 2.0},
        },
        "search": {"scheduler": {"name": "none"}},
        "results": {"path": str(tmp_path / "results")},
    }


def _quiet():
    return Console(file=open(os.devnull, "w"))


def test_compression_trials_export_artifacts_that_match_their_rows(ray_local, tmp_path):
    template = build_template(_recipe(tmp_path, 1, {"grid": [0.5, 0.9]}, {"grid": [0.0, 0.5]}))
    outcome = run_sweep(template, quiet=True, console=_quiet())
    trials = pd.read_parquet(outcome.files["trials"])
    sweep = trials[trials["stage"] == "sweep"]
    assert len(sweep) == 4 and (sweep["status"] == "completed").all(), sweep[["status", "error"]]
    assert {"param.compression.pruning.sparsity", "param.compression.distillation.alpha"} <= set(trials.columns)

    splits = load_splits(template.base.data)
    for _, row in sweep.iterrows():
        path = row["artifact_path"]
        assert os.path.getsize(path) == row["size_bytes"]
        assert row["compression_ratio"] == pytest.approx(row["dense_size_bytes"] / row["size_bytes"])
        assert row["sparsity"] == pytest.approx(row["param.compression.pruning.sparsity"], abs=0.01)
        assert row["bits"] == 4 and row["latency_ms_b1"] > 0
        # The artifact is the trained model: its test accuracy is the row's.
        model = load_artifact(path)
        with torch.no_grad():
            accuracy = (model(splits.test_x).argmax(1) == splits.test_y).float().mean().item()
        assert accuracy == pytest.approx(row["test_accuracy"], abs=1e-6)
    # 4-bit weights (8x fewer bits than fp32), half or 90 % pruned: the artifact shrinks with
    # sparsity (biases, per-channel scales and the header stay), and accuracy stays far above chance.
    ratio = sweep.groupby("param.compression.pruning.sparsity")["compression_ratio"].min()
    assert ratio[0.5] > 5 and ratio[0.9] > 10 and ratio[0.9] > ratio[0.5]
    assert (sweep["val_accuracy"] > 0.8).all()


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_pruning_qat_and_distillation_on_two_workers(ray_local, tmp_path, strategy):
    """DDP: every rank holds the model; FSDP2: each holds half of every weight, masks are
    chosen on gathered scores and the model is gathered on rank 0 for export."""
    template = build_template(_recipe(tmp_path, 2, 0.8, 0.5, strategy))
    outcome = run_sweep(template, quiet=True, console=_quiet())
    row = outcome.trials[outcome.trials["stage"] == "sweep"].iloc[0]
    assert row["status"] == "completed", row["error"]
    assert os.path.getsize(row["artifact_path"]) == row["size_bytes"]
    assert row["sparsity"] == pytest.approx(0.8, abs=0.01) and row["val_accuracy"] > 0.8
    assert row["bits"] == 4 and row["compression_ratio"] > 10
    splits = load_splits(template.base.data)
    with torch.no_grad():  # the exported artifact is the model the trial evaluated
        accuracy = (load_artifact(row["artifact_path"])(splits.test_x).argmax(1) == splits.test_y).float().mean()
    assert float(accuracy) == pytest.approx(row["test_accuracy"], abs=1e-6)
