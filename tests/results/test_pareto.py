import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from orchestrator.results import ResultsInputError, pareto_front, pareto_mask
from tests.results.conftest import brute_front, dominates


def matrices(k_values=(2, 3, 4), max_n=40):
    # Few distinct values (plus NaN) so ties and exact duplicates are common.
    values = st.sampled_from([0.0, 1.0, 2.0, 2.5, 3.0, -1.0, np.nan])
    return st.sampled_from(k_values).flatmap(
        lambda k: st.integers(0, max_n).flatmap(
            lambda n: arrays(np.float64, (n, k), elements=values)))


@settings(max_examples=150, deadline=None)
@given(matrices(k_values=(1, 2, 3, 4, 5)))
def test_matches_brute_force(points):
    np.testing.assert_array_equal(pareto_mask(points), brute_front(points))


@settings(max_examples=80, deadline=None)
@given(matrices(), st.randoms(use_true_random=False))
def test_front_properties(points, random):
    mask = pareto_mask(points)
    front = points[mask]
    finite = ~np.isnan(points).any(axis=1)
    assert not (mask & ~finite).any(), "a row with NaN is on the front"
    for p in front:
        assert not any(dominates(q, p) for q in points[finite]), "a front point is dominated"
    for p in points[finite & ~mask]:
        assert any(dominates(q, p) for q in front), "a non-front point has no dominator on it"
    order = list(range(len(points)))
    random.shuffle(order)
    np.testing.assert_array_equal(pareto_mask(points[order]), mask[order])


@pytest.mark.parametrize("k", [2, 3, 4])
def test_duplicates_of_front_points_are_all_on_front(k):
    rng = np.random.default_rng(k)
    points = rng.random((30, k))
    doubled = np.vstack([points, points])
    mask = pareto_mask(doubled)
    np.testing.assert_array_equal(mask[:30], mask[30:])
    np.testing.assert_array_equal(mask[:30], pareto_mask(points))


def test_signed_zero_is_one_value():
    # -0.0 arises from negating an accuracy of 0; it must tie with 0.0, not dominate it.
    points = np.array([[0.0, 1.0, 1.0], [-0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert pareto_mask(points).all()


@pytest.mark.parametrize("k", [2, 3])
def test_fast_paths_agree_with_general_path(k):
    from orchestrator.results.pareto import _front_nd

    rng = np.random.default_rng(0)
    points = np.round(rng.random((3000, k)), 2)  # rounded: many ties
    np.testing.assert_array_equal(pareto_mask(points), _front_nd(points))


def test_array_directions():
    points = np.array([[0.9, 100.0], [0.8, 50.0], [0.7, 60.0], [0.9, 120.0]])
    mask = pareto_front(points, ["max", "min"], mask=True)
    assert mask.tolist() == [True, True, False, False]
    np.testing.assert_array_equal(pareto_front(points, ["max", "min"]), points[:2])
    with pytest.raises(ResultsInputError, match="directions"):
        pareto_front(points, ["max", "up"])


def test_dataframe_counts_only_completed_and_stopped_sweep_rows():
    df = pd.DataFrame({
        "stage": ["baseline", "sweep", "sweep", "sweep", "sweep", "sweep"],
        "status": ["completed", "completed", "stopped", "failed", "completed", "completed"],
        "val_accuracy": [0.99, 0.90, 0.85, 0.99, np.nan, 0.80],
        "size_bytes": [1000, 300, 100, 10, 5, 200],
    })
    mask = pareto_front(df, mask=True)
    # baseline and the failed trial would dominate; the NaN row never counts.
    assert mask.tolist() == [False, True, True, False, False, False]
    assert pareto_front(df).index.tolist() == [1, 2]
    assert pareto_front(df, include_baseline=True, mask=True)[0]


def test_dataframe_objectives_k3():
    df = pd.DataFrame({"val_accuracy": [0.9, 0.9, 0.8], "size_bytes": [100, 100, 100],
                       "latency_ms_b1": [2.0, 1.0, 0.5]})
    front = pareto_front(df, ["val_accuracy:max", "size_bytes:min", "latency_ms_b1:min"])
    assert front.index.tolist() == [1, 2]


def test_bad_objectives_name_the_problem():
    df = pd.DataFrame({"val_accuracy": [0.9], "size_bytes": [1]})
    with pytest.raises(ResultsInputError, match=r"unknown column.*'nope'"):
        pareto_front(df, ["nope:max"])
    with pytest.raises(ResultsInputError, match="direction must be 'max' or 'min'.*'best'"):
        pareto_front(df, ["val_accuracy:best"])
    with pytest.raises(ResultsInputError, match="COLUMN:max"):
        pareto_front(df, ["val_accuracy"])
