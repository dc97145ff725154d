"""Pareto front: pure numpy kernels over a minimisation matrix, and a DataFrame adapter.

Dominance: row ``a`` dominates row ``b`` when ``a <= b`` in every objective and ``a < b``
in at least one (after negating maximised objectives).

Ties and duplicates, deliberately: exact duplicates never dominate each other, so *every*
copy of a non-dominated point is on the front. The front is therefore a function of the set
of rows, independent of their order, and no trial is silently dropped from a report because
another trial happened to score the same. Rows with NaN in any objective are never on the
front and never dominate anything.

Which rows count (``status`` completed/stopped, ``stage`` sweep) is decided in the DataFrame
layer (``eligible``), not in the kernels: the kernels are pure functions of a matrix.
"""

from __future__ import annotations

import bisect

import numpy as np
import pandas as pd

from orchestrator.results.objectives import ResultsInputError, objective_matrix

__all__ = ["COUNTED_STATUSES", "eligible", "pareto_front", "pareto_mask"]

COUNTED_STATUSES = ("completed", "stopped")


def _front_2d(points: np.ndarray) -> np.ndarray:
    """O(n log n): sort by f0, then a running minimum of f1 decides dominance."""
    order = np.argsort(points[:, 0])
    f0, f1 = points[order, 0], points[order, 1]
    new_group = np.r_[True, f0[1:] != f0[:-1]]  # groups of rows with equal f0
    group = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    group_start = starts[group]
    group_min = np.minimum.reduceat(f1, starts)[group]
    running_min = np.minimum.accumulate(f1)
    # Best f1 among rows with a strictly smaller f0; +inf where there are none.
    best_before = np.where(group_start > 0, running_min[np.maximum(group_start - 1, 0)], np.inf)
    # Dominated: a strictly smaller f0 with f1 <= mine, or an equal f0 with a smaller f1.
    # Equal rows pass both tests, so duplicates of a front point all stay on the front.
    dominated = (best_before <= f1) | (group_min < f1)
    mask = np.empty(len(points), dtype=bool)
    mask[order] = ~dominated
    return mask


class _Staircase:
    """The region dominated by a 2-D point set, bounded by ``ref``, with its area.

    ``xs`` ascend and ``ys`` strictly descend: only non-dominated points are kept.
    """

    def __init__(self, ref: np.ndarray) -> None:
        self.rx, self.ry = float(ref[0]), float(ref[1])
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.area = 0.0

    def add(self, x: float, y: float) -> bool:
        """Add (x, y); False (and no change) if a point already here weakly dominates it."""
        i = bisect.bisect_right(self.xs, x)  # xs[:i] <= x
        if i and self.ys[i - 1] <= y:
            return False
        height = self.ys[i - 1] if i else self.ry  # the staircase's level just right of x
        j, left = i, x
        # Remove the points at or right of x that (x, y) dominates, adding the strips of
        # area between their old level and y as we pass them.
        while j < len(self.xs) and self.ys[j] >= y:
            self.area += (self.xs[j] - left) * (height - y)
            left, height = self.xs[j], self.ys[j]
            j += 1
        right = self.xs[j] if j < len(self.xs) else self.rx
        self.area += (right - left) * (height - y)
        if i and self.xs[i - 1] == x:  # same x, higher y: replaced by (x, y)
            i -= 1
        self.xs[i:j] = [x]
        self.ys[i:j] = [y]
        return True


def _front_3d(points: np.ndarray) -> np.ndarray:
    """O(n log n) for three objectives, on distinct rows in lexicographic order.

    Only a lexicographically smaller row can dominate a row, and every earlier row is <= it
    in f0; so a row is dominated iff an earlier row is <= it in (f1, f2): one staircase query.
    """
    unique, inverse = np.unique(points, axis=0, return_inverse=True)
    order = np.lexsort(unique.T[::-1])
    stairs = _Staircase(np.array([np.inf, np.inf]))
    on_front = np.zeros(len(unique), dtype=bool)
    for i, (_, y, z) in zip(order.tolist(), unique[order].tolist()):
        on_front[i] = stairs.add(y, z)
    return on_front[inverse.reshape(-1)]


def _front_nd(points: np.ndarray) -> np.ndarray:
    """General k: peel the lexicographically smallest remaining point, drop what it dominates.

    On distinct points, the lexicographic minimum is never dominated, so each pass adds one
    front point and removes everything it dominates: O(n * |front| * k), vectorised per pass.
    Duplicates are collapsed first and restored afterwards (all copies share one verdict).
    """
    unique, inverse = np.unique(points, axis=0, return_inverse=True)
    remaining = np.lexsort(unique.T[::-1])  # lexicographic: first column is the primary key
    on_front = np.zeros(len(unique), dtype=bool)
    while remaining.size:
        best = remaining[0]
        on_front[best] = True
        rest = remaining[1:]
        # Distinct rows: weakly better everywhere means strictly better somewhere.
        dominated = np.all(unique[best] <= unique[rest], axis=1)
        remaining = rest[~dominated]
    return on_front[inverse.reshape(-1)]


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of an ``(n, k)`` minimisation matrix.

    Rows with NaN in any column are never on the front; exact duplicates of a non-dominated
    row are all on it. Two objectives take an O(n log n) sort-and-running-minimum path, three a
    staircase sweep, more a vectorised peeling loop.
    """
    points = np.asarray(points, dtype=np.float64) + 0.0  # -0.0 -> 0.0: one zero, one verdict
    if points.ndim != 2:
        raise ResultsInputError(f"points must be an (n, k) matrix, got shape {points.shape}")
    mask = np.zeros(len(points), dtype=bool)
    finite = ~np.isnan(points).any(axis=1)
    if not finite.any() or points.shape[1] == 0:
        return mask
    kept = points[finite]
    kernel = {2: _front_2d, 3: _front_3d}.get(kept.shape[1], _front_nd)
    mask[finite] = kernel(kept)
    return mask


def eligible(df: pd.DataFrame, include_baseline: bool = False) -> pd.Series:
    """Rows that may be on a frontier: status completed or stopped, and (unless
    ``include_baseline``) stage ``sweep``. Failed trials have no metrics worth ranking; the
    dense baseline is the reference the frontier is measured against, not a point of it.
    Columns that are absent do not filter.
    """
    keep = pd.Series(True, index=df.index)
    if "status" in df.columns:
        keep &= df["status"].isin(COUNTED_STATUSES).fillna(False).astype(bool)
    if "stage" in df.columns and not include_baseline:
        keep &= (df["stage"] != "baseline").fillna(True).astype(bool)
    return keep


def pareto_front(
    data: pd.DataFrame | np.ndarray,
    objectives: object = None,
    *,
    mask: bool = False,
    include_baseline: bool = False,
) -> pd.DataFrame | np.ndarray:
    """The Pareto front of a trials DataFrame or of an ``(n, k)`` array.

    DataFrame: ``objectives`` as for ``parse_objectives`` (default ``val_accuracy:max``,
    ``size_bytes:min``); only ``eligible`` rows count. Returns the front rows (in input
    order), or with ``mask=True`` a boolean mask aligned to ``data``.

    Array: every column is minimised unless ``objectives`` is a sequence of directions
    (``["max", "min", ...]``); every row counts. Returns the front rows, or the mask.
    """
    if isinstance(data, pd.DataFrame):
        matrix = objective_matrix(data, objectives)
        keep = eligible(data, include_baseline).to_numpy()
        front = np.zeros(len(data), dtype=bool)
        front[keep] = pareto_mask(matrix[keep])
        return front if mask else data.loc[front]
    points = np.asarray(data, dtype=np.float64)
    front = pareto_mask(_apply_directions(points, objectives))
    return front if mask else points[front]


def _apply_directions(points: np.ndarray, directions: object) -> np.ndarray:
    """Negate the columns whose direction is ``"max"``; ``None`` means all minimised."""
    if directions is None:
        return points
    directions = [directions] if isinstance(directions, str) else list(directions)
    if points.ndim != 2 or len(directions) != points.shape[1]:
        raise ResultsInputError(
            f"directions: expected one of 'max'/'min' per column ({points.shape[-1]}), "
            f"got {directions!r}"
        )
    bad = [d for d in directions if d not in ("max", "min")]
    if bad:
        raise ResultsInputError(f"directions: each must be 'max' or 'min', got {bad!r}")
    signs = np.array([-1.0 if d == "max" else 1.0 for d in directions])
    return points * signs
