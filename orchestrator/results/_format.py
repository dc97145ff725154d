"""Human formatting of result tables, shared by the CLI (rich) and the HTML report."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

_INT_LIKE = ("size_bytes", "dense_size_bytes", "max_size_bytes", "smallest_size_bytes",
             "nonzero_params", "trials", "failed", "configs", "frontier", "n_seeds",
             "base_points_dominated", "points_dominated_by_base")


def _cell(value, column: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, float, np.integer, np.floating)):
        if column in _INT_LIKE or column.endswith("size_bytes"):
            return f"{value:,.0f}"
        if isinstance(value, (int, np.integer)):
            return str(value)
        if abs(value) >= 1e4:
            return f"{value:,.0f}"
        return f"{value:.3g}" if 0 < abs(value) < 1e-3 else f"{value:.4f}"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def format_frame(df: pd.DataFrame) -> pd.DataFrame:
    """All cells as strings; ``X`` and a non-zero ``X_ci95`` merge into ``"mean ± half-width"``."""
    out = {}
    for column in df.columns:
        if column.endswith("_ci95") and column[: -len("_ci95")] in df.columns:
            continue
        cells = [_cell(v, column) for v in df[column]]
        ci = df.get(f"{column}_ci95")
        if ci is not None:
            # A zero half-width (e.g. size, identical across seeds) is left out as noise-free.
            cells = [c if _cell(h, column) in ("–", "0") else f"{c} ± {_cell(h, column)}"
                     for c, h in zip(cells, ci)]
        out[column] = cells
    return pd.DataFrame(out, index=df.index, columns=list(out))
