"""Exact hypervolume of a point set relative to a reference point, for any k.

Kernels work on a minimisation matrix and a reference that every counted point must beat
strictly in every objective; points that do not contribute nothing (they are dropped first).

- k = 1: the best point's distance to the reference.
- k = 2: sort by f0, running minimum of f1, sum the rectangles. O(n log n), vectorised.
- k = 3: sweep f2 upwards, keeping the 2-D staircase of the points seen so far and its area
  updated incrementally (HV3D-style). O(n log n) searches plus list edits.
- k > 3: HSO-style slicing: sort by the last objective, and for each slab between two
  consecutive values add (slab depth) x (hypervolume in k-1 objectives of the points below).
  Exact; exponential in k in the worst case, fine for the few hundred points of a frontier.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from orchestrator.results.objectives import (
    ResultsInputError,
    check_columns,
    objective_matrix,
    parse_objectives,
)
from orchestrator.results.pareto import _apply_directions, _Staircase, eligible, pareto_mask

__all__ = ["default_reference", "hypervolume"]


def _hv2(points: np.ndarray, ref: np.ndarray) -> float:
    order = np.argsort(points[:, 0], kind="stable")
    x, y = points[order, 0], np.minimum.accumulate(points[order, 1])
    widths = np.diff(np.r_[x, ref[0]])
    return float(np.sum(widths * (ref[1] - y)))


def _hv3(points: np.ndarray, ref: np.ndarray) -> float:
    order = np.argsort(points[:, 2], kind="stable")
    pts = points[order]
    depths = np.diff(np.r_[pts[:, 2], ref[2]])
    stairs = _Staircase(ref[:2])
    volume = 0.0
    for (x, y, _), depth in zip(pts.tolist(), depths.tolist()):
        stairs.add(x, y)
        volume += stairs.area * depth
    return volume


def _hv_slices(points: np.ndarray, ref: np.ndarray) -> float:
    k = points.shape[1]
    if k == 3:
        return _hv3(points, ref)
    order = np.argsort(points[:, -1], kind="stable")
    pts = points[order]
    depths = np.diff(np.r_[pts[:, -1], ref[-1]])
    volume = 0.0
    for i in range(len(pts)):
        if depths[i] == 0.0:
            continue
        below = pts[: i + 1, :-1]
        below = below[pareto_mask(below)]
        volume += depths[i] * _hv_slices(below, ref[:-1])
    return volume


def _hv(points: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume of a minimisation matrix (no NaN) against ``ref``."""
    points = points[np.all(points < ref, axis=1)]
    if len(points) == 0:
        return 0.0
    k = points.shape[1]
    if k == 1:
        return float(ref[0] - points[:, 0].min())
    if k == 2:
        return _hv2(points, ref)
    return _hv_slices(points[pareto_mask(points)], ref)


def default_reference(df: pd.DataFrame, objectives: object = None) -> np.ndarray:
    """The default reference point, in the objectives' own units (not negated).

    Accuracy columns (name ends in ``accuracy``) and maximised: 0. Every other objective: the
    dense baseline row's value (``stage == "baseline"``), so the hypervolume measures what
    compression bought relative to the uncompressed model: with the defaults,
    (val_accuracy 0, size_bytes = the baseline's size_bytes). If the baseline row is absent,
    ``size_bytes`` falls back to the ``dense_size_bytes`` column.
    """
    objectives = parse_objectives(objectives)
    check_columns(df, objectives)
    baseline = df[df["stage"] == "baseline"] if "stage" in df.columns else df.iloc[:0]
    ref = []
    for o in objectives:
        if o.direction == "max" and o.column.endswith("accuracy"):
            ref.append(0.0)
            continue
        values = pd.to_numeric(baseline[o.column], errors="coerce").dropna()
        if values.empty and o.column == "size_bytes" and "dense_size_bytes" in df.columns:
            values = pd.to_numeric(df["dense_size_bytes"], errors="coerce").dropna()
        if values.empty:
            raise ResultsInputError(
                f"reference: no baseline value for objective {o.column!r}; "
                f"pass an explicit reference point (one value per objective)"
            )
        ref.append(float(values.max() if o.direction == "min" else values.min()))
    return np.array(ref, dtype=np.float64)


def hypervolume(
    points: pd.DataFrame | np.ndarray,
    reference: object = None,
    directions: object = None,
    *,
    objectives: object = None,
) -> float:
    """Exact hypervolume dominated by ``points`` and bounded by ``reference``.

    Array input: ``points`` is ``(n, k)``; ``directions`` one ``"max"``/``"min"`` per column
    (default: all minimised); ``reference`` (required) is in the same units as the points.
    DataFrame input: ``objectives`` picks the columns (default ``val_accuracy:max``,
    ``size_bytes:min``); only ``eligible`` rows count; ``reference`` defaults to
    ``default_reference(points, objectives)``.
    Only points strictly better than the reference in every objective contribute; rows with
    NaN contribute nothing.
    """
    if isinstance(points, pd.DataFrame):
        if directions is not None:
            raise ResultsInputError("directions: pass objectives=... for a DataFrame")
        objectives = parse_objectives(objectives)
        if reference is None:
            reference = default_reference(points, objectives)
        matrix = objective_matrix(points[eligible(points)], objectives)
        directions = [o.direction for o in objectives]
    else:
        if reference is None:
            raise ResultsInputError("reference: required for an array of points")
        matrix = np.asarray(points, dtype=np.float64)
        if matrix.ndim != 2:
            raise ResultsInputError(f"points must be an (n, k) matrix, got shape {matrix.shape}")
        if isinstance(directions, str):
            directions = [directions]
        matrix = _apply_directions(matrix, directions)
        directions = ["min"] * matrix.shape[1] if directions is None else list(directions)
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    if ref.shape[0] != matrix.shape[1] or np.isnan(ref).any():
        raise ResultsInputError(
            f"reference: expected {matrix.shape[1]} numbers (one per objective), got {reference!r}"
        )
    ref = _apply_directions(ref[None, :], list(directions))[0]
    matrix = matrix[~np.isnan(matrix).any(axis=1)]
    return _hv(matrix, ref)
