import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from orchestrator.results import ResultsInputError, default_reference, hypervolume


def grid_hv(points: np.ndarray, ref: np.ndarray) -> float:
    """Brute force: cut space at every coordinate, add each cell some point dominates."""
    points = points[np.all(points < ref, axis=1)]
    if len(points) == 0:
        return 0.0
    axes = [np.unique(np.r_[points[:, d], ref[d]]) for d in range(points.shape[1])]
    volume = 0.0
    for cell in itertools.product(*(range(len(a) - 1) for a in axes)):
        lo = np.array([a[c] for a, c in zip(axes, cell)])
        hi = np.array([a[c + 1] for a, c in zip(axes, cell)])
        if np.any(np.all(points <= lo, axis=1)):
            volume += float(np.prod(hi - lo))
    return volume


def inclusion_exclusion_hv(points: np.ndarray, ref: np.ndarray) -> float:
    points = points[np.all(points < ref, axis=1)]
    volume = 0.0
    for r in range(1, len(points) + 1):
        for subset in itertools.combinations(points, r):
            corner = np.max(subset, axis=0)  # intersection of the boxes [p, ref]
            volume += (-1) ** (r + 1) * float(np.prod(ref - corner))
    return volume


def rectangles_hv(points: np.ndarray, ref: np.ndarray) -> float:
    """2-D reference: the front sorted by x, one rectangle per step, summed in a loop."""
    total, best_y = 0.0, ref[1]
    pts = sorted(map(tuple, points[np.all(points < ref, axis=1)]))
    for i, (x, y) in enumerate(pts):
        best_y = min(best_y, y)
        next_x = pts[i + 1][0] if i + 1 < len(pts) else ref[0]
        total += (next_x - x) * (ref[1] - best_y)
    return total


def point_sets(k, max_n):
    return st.integers(0, max_n).flatmap(
        lambda n: arrays(np.float64, (n, k), elements=st.integers(0, 6).map(float)))


@settings(max_examples=80, deadline=None)
@given(st.sampled_from([2, 3, 4]).flatmap(lambda k: point_sets(k, 7)))
def test_matches_grid_reference(points):
    ref = np.full(points.shape[1], 5.0)
    assert hypervolume(points, ref) == pytest.approx(grid_hv(points, ref), abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(0, 60), st.just(2)),
              elements=st.floats(-10, 10, allow_nan=False)))
def test_2d_matches_rectangles(points):
    ref = np.array([5.0, 5.0])
    assert hypervolume(points, ref) == pytest.approx(rectangles_hv(points, ref), rel=1e-12,
                                                     abs=1e-9)


@pytest.mark.parametrize("k", [3, 4])
def test_random_floats_match_inclusion_exclusion(k):
    rng = np.random.default_rng(k)
    for _ in range(20):
        points = rng.random((rng.integers(1, 9), k))
        ref = np.ones(k) * 0.95
        assert hypervolume(points, ref) == pytest.approx(inclusion_exclusion_hv(points, ref),
                                                         rel=1e-10, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([2, 3, 4]).flatmap(lambda k: point_sets(k, 12)), st.data())
def test_monotone_under_a_dominating_point(points, data):
    k = points.shape[1]
    ref = np.full(k, 5.0)
    before = hypervolume(points, ref)
    base = points[data.draw(st.integers(0, len(points) - 1))] if len(points) else ref - 1
    better = np.minimum(base, ref - 1) - np.array(
        data.draw(st.lists(st.integers(0, 2), min_size=k, max_size=k)), dtype=float)
    after = hypervolume(np.vstack([points, better]), ref)
    assert after >= before - 1e-9
    # Adding a copy of an existing point changes nothing.
    if len(points):
        assert hypervolume(np.vstack([points, points[:1]]), ref) == pytest.approx(before)


def test_points_not_strictly_better_than_reference_contribute_nothing():
    ref = np.array([1.0, 1.0])
    assert hypervolume(np.array([[1.0, 0.0], [0.0, 1.0], [2.0, -5.0]]), ref) == 0.0
    assert hypervolume(np.array([[0.5, 0.5], [1.0, 0.0]]), ref) == pytest.approx(0.25)


def test_known_values_and_directions():
    # max accuracy, min size: rectangles (0.8 x 900) U (0.9 x 500) = 720 + 450 - 400.
    pts = np.array([[0.8, 100.0], [0.9, 500.0]])
    assert hypervolume(pts, [0.0, 1000.0], ["max", "min"]) == pytest.approx(770.0)
    assert hypervolume(np.array([[1.0, 1.0, 1.0]]), [2, 3, 4]) == pytest.approx(6.0)
    assert hypervolume(np.array([[3.0]]), [5.0]) == pytest.approx(2.0)
    with pytest.raises(ResultsInputError, match="reference"):
        hypervolume(pts, None)
    with pytest.raises(ResultsInputError, match="reference"):
        hypervolume(pts, [0.0, 1.0, 2.0])


def _frame(with_baseline=True):
    df = pd.DataFrame({
        "stage": ["baseline", "sweep", "sweep", "sweep"],
        "status": ["completed", "completed", "completed", "failed"],
        "val_accuracy": [0.95, 0.8, 0.9, np.nan],
        "size_bytes": [1000, 100, 500, np.nan],
        "dense_size_bytes": [1000] * 4,
    })
    return df if with_baseline else df.iloc[1:]


def test_dataframe_default_reference_is_zero_accuracy_and_dense_size():
    df = _frame()
    np.testing.assert_allclose(default_reference(df), [0.0, 1000.0])
    assert hypervolume(df) == pytest.approx(770.0)
    assert hypervolume(df, reference=[0.5, 600.0]) == pytest.approx(0.3 * 500 + 0.1 * 100)
    # Without the baseline row the size falls back to dense_size_bytes.
    np.testing.assert_allclose(default_reference(_frame(False)), [0.0, 1000.0])
    with pytest.raises(ResultsInputError, match="wall_s"):
        default_reference(df.assign(wall_s=np.nan), ["val_accuracy:max", "wall_s:min"])
