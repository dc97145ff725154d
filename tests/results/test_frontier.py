import math

import numpy as np
import pandas as pd
import pytest

from orchestrator.results import aggregate_replicates, sweep_frontier

T_975_DF2 = 4.302652729911275  # exact: (2p - 1) / sqrt(2p(1 - p)) at p = 0.975


def _trials(rows):
    df = pd.DataFrame(rows, columns=["config_id", "seed", "val_accuracy", "size_bytes"])
    df.insert(0, "sweep_id", "s")
    df["trial_id"] = [f"t{i}" for i in range(len(df))]
    df["stage"], df["status"] = "sweep", "completed"
    return df


def test_replicates_are_averaged_with_a_t_interval():
    df = _trials([("a", 0, 0.8, 100), ("a", 1, 0.9, 100), ("a", 2, 1.0, 100),
                  ("b", 0, 0.85, 50)])
    agg = aggregate_replicates(df).set_index("config_id")
    assert agg.loc["a", "n_seeds"] == 3 and agg.loc["b", "n_seeds"] == 1
    assert agg.loc["a", "val_accuracy"] == pytest.approx(0.9)
    assert agg.loc["a", "val_accuracy_std"] == pytest.approx(0.1)
    assert agg.loc["a", "val_accuracy_ci95"] == pytest.approx(T_975_DF2 * 0.1 / math.sqrt(3))
    assert agg.loc["a", "size_bytes_ci95"] == 0.0
    assert math.isnan(agg.loc["b", "val_accuracy_ci95"])
    assert agg.loc["a", "trial_ids"] == ["t0", "t1", "t2"]
    assert "seed" not in agg.columns


def test_frontier_uses_the_configuration_mean_not_a_lucky_seed():
    # Config "a" has one lucky seed (0.95) that would dominate "b" trial-by-trial, but its
    # mean (0.8) is worse than b's 0.9 at the same size: b is on the frontier, a is not.
    df = _trials([("a", 0, 0.95, 100), ("a", 1, 0.70, 100), ("a", 2, 0.75, 100),
                  ("b", 0, 0.90, 100), ("b", 1, 0.90, 100), ("c", 0, 0.5, 10)])
    front = sweep_frontier(df)
    assert front["config_id"].tolist() == ["b", "c"]  # best val_accuracy first


def test_failed_replicates_do_not_count_and_single_seed_is_identity():
    df = _trials([("a", 0, 0.8, 100), ("a", 1, np.nan, np.nan), ("b", 0, 0.9, 200)])
    df.loc[1, "status"] = "failed"
    agg = aggregate_replicates(df).set_index("config_id")
    assert agg.loc["a", "n_seeds"] == 1 and agg.loc["a", "val_accuracy"] == 0.8
    front = sweep_frontier(df)
    assert front["trial_id"].tolist() == ["t2", "t0"]
    assert front["size_bytes"].dtype == np.float64  # one schema whatever the seeds


def test_frontier_of_synthetic_sweep_has_one_schema_with_and_without_replicates():
    from orchestrator.results._synth import synthetic_trials

    one = sweep_frontier(synthetic_trials("x", n_configs=20))
    three = sweep_frontier(synthetic_trials("y", n_configs=20, seeds=(0, 1, 2)))
    assert list(one.columns) == list(three.columns)
    assert dict(one.dtypes) == dict(three.dtypes)
