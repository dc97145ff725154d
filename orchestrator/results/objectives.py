"""Objectives: which columns a frontier is built from, and in which direction.

Every numeric kernel in this package works on a *minimisation* matrix: an ``(n, k)`` float
array where smaller is better in every column. ``objective_matrix`` builds it from a
DataFrame, negating the maximised objectives, so the kernels never see a direction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_OBJECTIVES",
    "Objective",
    "ResultsInputError",
    "objective_matrix",
    "parse_objectives",
]

DIRECTIONS = ("max", "min")


class ResultsInputError(ValueError):
    """Bad user input to the results layer: a missing path, an unknown column, a bad direction.

    The CLI turns it into a one-line message and exit code 2.
    """


@dataclass(frozen=True)
class Objective:
    """One objective: a column of ``trials.parquet`` and whether to maximise or minimise it."""

    column: str
    direction: str = "min"

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ResultsInputError(
                f"objective {self.column!r}: direction must be 'max' or 'min', "
                f"but got {self.direction!r}"
            )

    @property
    def sign(self) -> float:
        """+1 for a minimised objective, -1 for a maximised one (its column gets negated)."""
        return -1.0 if self.direction == "max" else 1.0

    def __str__(self) -> str:
        return f"{self.column}:{self.direction}"


DEFAULT_OBJECTIVES: tuple[Objective, ...] = (
    Objective("val_accuracy", "max"),
    Objective("size_bytes", "min"),
)


def _parse_one(item: object) -> Objective:
    if isinstance(item, Objective):
        return item
    if isinstance(item, str):
        column, sep, direction = item.rpartition(":")
        if not sep or not column:
            raise ResultsInputError(
                f"objective {item!r}: expected COLUMN:max or COLUMN:min, e.g. val_accuracy:max"
            )
        return Objective(column, direction)
    if isinstance(item, Mapping):
        column = item.get("column", item.get("name", item.get("metric")))
        direction = item.get("direction", item.get("mode"))
        if column is None or direction is None:
            raise ResultsInputError(
                f"objective {dict(item)!r}: expected keys 'column' and 'direction'"
            )
        return Objective(str(column), str(direction))
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return Objective(str(item[0]), str(item[1]))
    raise ResultsInputError(
        f"objective {item!r}: expected 'COLUMN:max|min', (column, direction) or an Objective"
    )


def parse_objectives(spec: object = None) -> tuple[Objective, ...]:
    """Normalise an objectives spec to a tuple of ``Objective``.

    Accepts ``None`` (the defaults: ``val_accuracy:max``, ``size_bytes:min``), a mapping
    ``{column: direction}``, or an iterable of ``"column:direction"`` strings,
    ``(column, direction)`` pairs, ``{"column", "direction"}`` dicts or ``Objective``s.
    """
    if spec is None:
        return DEFAULT_OBJECTIVES
    if isinstance(spec, (str, Objective)):
        spec = [spec]
    elif isinstance(spec, Mapping) and "column" not in spec and "name" not in spec:
        spec = list(spec.items())
    elif isinstance(spec, Mapping):
        spec = [spec]
    if not isinstance(spec, Iterable):
        raise ResultsInputError(f"objectives: expected a list of COLUMN:max|min, got {spec!r}")
    objectives = tuple(_parse_one(item) for item in spec)
    if not objectives:
        raise ResultsInputError("objectives: at least one objective is required")
    columns = [o.column for o in objectives]
    if len(set(columns)) != len(columns):
        raise ResultsInputError(f"objectives: each column may appear once, got {columns}")
    return objectives


def check_columns(df: pd.DataFrame, objectives: Iterable[Objective]) -> None:
    """Raise ``ResultsInputError`` naming every objective column that ``df`` lacks."""
    missing = [o.column for o in objectives if o.column not in df.columns]
    if missing:
        numeric = sorted(c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]))
        raise ResultsInputError(
            f"objectives: unknown column(s) {missing}; numeric columns available: {numeric}"
        )


def objective_matrix(df: pd.DataFrame, objectives: object = None) -> np.ndarray:
    """The ``(n, k)`` float64 minimisation matrix of ``df``: maximised columns negated.

    Missing values become NaN; the kernels treat a row with any NaN as infeasible.
    """
    objectives = parse_objectives(objectives)
    check_columns(df, objectives)
    columns = [
        pd.to_numeric(df[o.column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        * o.sign
        for o in objectives
    ]
    return np.column_stack(columns) if columns else np.empty((len(df), 0))
