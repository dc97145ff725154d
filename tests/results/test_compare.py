import math

import numpy as np
import pandas as pd
import pytest

from orchestrator.results import compare_sweeps
from orchestrator.results.stats import welch_ci


def sweep(sweep_id, points, dense=1000, seeds=None):
    """A trials frame: a baseline row, then one config per (acc, size); ``seeds`` jitters."""
    rows = [{"config_id": "base", "stage": "baseline", "val_accuracy": 0.99,
             "size_bytes": dense, "seed": 0}]
    for i, (acc, size) in enumerate(points):
        for s, jitter in enumerate(seeds or [0.0]):
            rows.append({"config_id": f"{sweep_id}{i}", "stage": "sweep",
                         "val_accuracy": acc + jitter, "size_bytes": size, "seed": s})
    df = pd.DataFrame(rows)
    df.insert(0, "sweep_id", sweep_id)
    df.insert(1, "recipe_name", "r")
    df["trial_id"] = [f"{sweep_id}-t{i}" for i in range(len(df))]
    df["status"] = "completed"
    df["dense_size_bytes"] = dense
    return df


A = [(0.8, 100), (0.9, 500)]
B = [(0.85, 100), (0.9, 400), (0.7, 50)]


def test_hand_computed_comparison():
    c = compare_sweeps([sweep("A", A), sweep("B", B)])
    np.testing.assert_allclose(c.reference, [0.0, 1000.0])
    a, b = c.sweeps
    # A: 0.8 x 900 + 0.9 x 500 - 0.8 x 500; B: 0.7 x 50 + 0.85 x 300 + 0.9 x 600.
    assert a.hypervolume == pytest.approx(770.0)
    assert b.hypervolume == pytest.approx(830.0)
    assert c.union_hypervolume == pytest.approx(830.0)
    (gain,) = c.gains
    assert (gain.base, gain.other) == ("r/A", "r/B")
    assert gain.hv_gain == pytest.approx(60.0)
    assert gain.hv_gain_rel == pytest.approx(60 / 770)
    assert sorted(gain.base_dominated["config_id"]) == ["A0", "A1"]
    assert gain.other_dominated.empty
    assert gain.exceeds_noise is None  # single seeds: noise unknown


def test_budgets():
    c = compare_sweeps([sweep("A", A), sweep("B", B)], budgets=(1 / 4, 1 / 10, 1 / 40))
    t = c.budgets.set_index(["budget", "sweep"])
    assert t.loc[(0.25, "r/A"), "val_accuracy"] == pytest.approx(0.8)
    assert t.loc[(0.25, "r/B"), "val_accuracy"] == pytest.approx(0.85)
    assert t.loc[(0.25, "r/B"), "delta_vs_base"] == pytest.approx(0.05)
    assert t.loc[(0.1, "r/A"), "config_id"] == "A0"  # size 100 <= 0.1 x 1000: inclusive
    assert math.isnan(t.loc[(1 / 40, "r/A"), "val_accuracy"])
    assert t.loc[(1 / 40, "r/B"), "n_seeds"] == 0


def test_mutual_dominance_both_ways():
    c = compare_sweeps([sweep("A", [(0.9, 100), (0.5, 10)]), sweep("B", [(0.6, 10), (0.8, 100)])])
    (gain,) = c.gains
    assert gain.base_dominated["config_id"].tolist() == ["A1"]
    assert gain.other_dominated["config_id"].tolist() == ["B1"]


def test_noise_verdicts_with_replicates():
    quiet, loud = [-0.001, 0.0, 0.001], [-0.1, 0.0, 0.1]
    c = compare_sweeps([sweep("A", A, seeds=quiet), sweep("B", B, seeds=quiet)])
    assert c.gains[0].exceeds_noise is True
    assert c.sweeps[0].hypervolume == pytest.approx(770.0)  # means of symmetric jitter
    lo, hi = c.sweeps[0].hypervolume_bounds
    assert lo < 770.0 < hi
    assert c.budgets.set_index(["budget", "sweep"]).loc[(0.25, "r/B"), "exceeds_noise"]
    c = compare_sweeps([sweep("A", A, seeds=loud), sweep("B", B, seeds=loud)])
    assert c.gains[0].exceeds_noise is False
    row = c.budgets.set_index(["budget", "sweep"]).loc[(0.25, "r/B")]
    delta, half = welch_ci(0.8, 0.1, 3, 0.85, 0.1, 3)
    assert row["delta_ci95"] == pytest.approx(half)
    assert row["exceeds_noise"] is not None and not row["exceeds_noise"]


def test_explicit_reference_and_json(tmp_path):
    import json

    c = compare_sweeps([sweep("A", A), sweep("B", B)], reference=[0.5, 600])
    assert c.sweeps[0].hypervolume == pytest.approx(0.3 * 500 + 0.1 * 100)
    payload = json.loads(json.dumps(c.to_dict()))
    assert payload["gains"][0]["base_dominated"] == ["A0", "A1"]
    assert payload["budgets"][-1]["val_accuracy"] is None  # NaN -> null
