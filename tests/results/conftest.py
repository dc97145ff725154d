"""Results trees generated on the fly, in the layout the sweep writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from orchestrator.results._synth import synthetic_trials, write_synthetic_sweep


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(a <= b) and np.any(a < b))


def brute_front(points: np.ndarray) -> np.ndarray:
    """O(n^2) reference: not NaN and dominated by no NaN-free row."""
    ok = ~np.isnan(points).any(axis=1)
    return np.array([
        ok[i] and not any(ok[j] and dominates(points[j], points[i]) for j in range(len(points)))
        for i in range(len(points))
    ], dtype=bool)


@pytest.fixture
def tree(tmp_path):
    """Two recipes, three sweeps; their param.* columns differ (and one is int vs float)."""
    root = tmp_path / "results"
    s1 = synthetic_trials("sweep-a1", "mlp", 12, params=("train.lr",), rng=1)
    s2 = synthetic_trials("sweep-a2", "mlp", 12, seeds=(0, 1, 2), skill=0.02, rng=2,
                          params=("compression.quantization.bits",))
    s2["param.compression.quantization.bits"] = s2["param.compression.quantization.bits"].astype(
        "float64")
    s3 = synthetic_trials("sweep-b1", "cnn", 8, rng=3,
                          params=("train.lr", "compression.pruning.sparsity"))
    s3["param.compression.quantization.bits"] = pd.array([None] + [4] * (len(s3) - 1),
                                                         dtype="Int64")  # int here, float in s2
    write_synthetic_sweep(root, s1, "2025-03-01T10:00:00+00:00")
    write_synthetic_sweep(root, s2, "2025-03-02T10:00:00+00:00")
    write_synthetic_sweep(root, s3, "2025-02-01T10:00:00+00:00")
    return root
