"""Compare the frontiers of several sweeps: hypervolume, its gain, dominance, size budgets.

The first sweep is the base ``A``; every other sweep ``B`` is compared with it. All
hypervolumes share one reference point (by default the worst of the sweeps' default
references, so no sweep's points are cut off), so they are comparable.

Noise: with seed replicates every configuration is a mean with a 95 % t confidence
interval per objective. A sweep's hypervolume then gets bounds: the hypervolume with every
configuration moved to the bad end of its intervals (pessimistic) and to the good end
(optimistic). A gain "exceeds the noise" when B's pessimistic bound beats A's optimistic one
(or, for a loss, the reverse): a conservative interval argument, not a formal test. Budget
gains use Welch's t interval on the difference of the two means. Either verdict is None
unless both sides have seed replicates: a single seed says nothing about its noise.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from orchestrator.results.frontier import aggregate_replicates
from orchestrator.results.hypervolume import _hv, default_reference
from orchestrator.results.objectives import (
    Objective,
    ResultsInputError,
    check_columns,
    objective_matrix,
    parse_objectives,
)
from orchestrator.results.pareto import eligible, pareto_mask
from orchestrator.results.reading import list_sweeps, read_results
from orchestrator.results.stats import welch_ci

__all__ = ["Comparison", "Gain", "SweepSummary", "compare_sweeps", "dense_size", "summarize"]

DEFAULT_BUDGETS = (1 / 4, 1 / 10, 1 / 40)


@dataclass
class SweepSummary:
    """One sweep in a comparison: its configurations (``on_front`` marks the frontier)."""

    sweep_id: str
    recipe_name: str
    configs: pd.DataFrame
    baseline: pd.DataFrame
    hypervolume: float
    hypervolume_bounds: tuple[float, float]
    dense_size: float
    n_trials: int
    n_failed: int
    has_replicates: bool

    @property
    def label(self) -> str:
        return f"{self.recipe_name}/{self.sweep_id}"

    @property
    def frontier(self) -> pd.DataFrame:
        return self.configs[self.configs["on_front"]]


@dataclass
class Gain:
    """``other`` compared with ``base``: hypervolume gain and mutual dominance of frontiers."""

    base: str
    other: str
    hv_gain: float
    hv_gain_rel: float
    exceeds_noise: bool | None  # None: a sweep without replicates, its noise is unknown
    base_dominated: pd.DataFrame = field(repr=False)  # base frontier points other dominates
    other_dominated: pd.DataFrame = field(repr=False)  # other frontier points base dominates


@dataclass
class Comparison:
    """The result of ``compare_sweeps``."""

    objectives: tuple[Objective, ...]
    reference: np.ndarray
    sweeps: list[SweepSummary]
    union_hypervolume: float
    gains: list[Gain]
    budgets: pd.DataFrame

    def summary(self) -> pd.DataFrame:
        """One row per sweep: trials, frontier size, hypervolume (+ bounds), gain over base."""
        gains = {g.other: g for g in self.gains}
        rows = []
        for s in self.sweeps:
            g = gains.get(s.label)
            rows.append({
                "sweep": s.label, "trials": s.n_trials, "failed": s.n_failed,
                "configs": len(s.configs), "frontier": int(s.configs["on_front"].sum()),
                "hypervolume": s.hypervolume, "hv_low": s.hypervolume_bounds[0],
                "hv_high": s.hypervolume_bounds[1],
                "hv_gain": g.hv_gain if g else math.nan,
                "hv_gain_rel": g.hv_gain_rel if g else math.nan,
                "exceeds_noise": g.exceeds_noise if g else None,
                "base_points_dominated": len(g.base_dominated) if g else None,
                "points_dominated_by_base": len(g.other_dominated) if g else None,
            })
        return pd.DataFrame(rows)

    def to_dict(self) -> dict:
        """Everything, JSON-safe (NaN -> None)."""
        return _jsonable({
            "objectives": [str(o) for o in self.objectives],
            "reference": self.reference.tolist(),
            "union_hypervolume": self.union_hypervolume,
            "sweeps": [
                {"label": s.label, "sweep_id": s.sweep_id, "recipe_name": s.recipe_name,
                 "hypervolume": s.hypervolume, "hypervolume_bounds": list(s.hypervolume_bounds),
                 "dense_size": s.dense_size, "n_trials": s.n_trials, "n_failed": s.n_failed,
                 "frontier": display_frame(s.frontier, self.objectives).to_dict("records")}
                for s in self.sweeps
            ],
            "gains": [
                {"base": g.base, "other": g.other, "hv_gain": g.hv_gain,
                 "hv_gain_rel": g.hv_gain_rel, "exceeds_noise": g.exceeds_noise,
                 "base_dominated": g.base_dominated["config_id"].tolist(),
                 "other_dominated": g.other_dominated["config_id"].tolist()}
                for g in self.gains
            ],
            "budgets": self.budgets.to_dict("records"),
        })


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else float(value)
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def display_frame(configs: pd.DataFrame, objectives: Sequence[Objective]) -> pd.DataFrame:
    """The columns worth showing for frontier configurations, sorted by size if present."""
    wanted = ["sweep_id", "config_id", "trial_id", "n_seeds"]
    for o in objectives:
        wanted += [o.column, f"{o.column}_ci95"]
    wanted += ["val_accuracy", "val_accuracy_ci95", "size_bytes", "compression_ratio"]
    wanted += sorted(c for c in configs.columns if c.startswith("param."))
    columns = list(dict.fromkeys(c for c in wanted if c in configs.columns))
    out = configs[columns]
    if "size_bytes" in out.columns:
        out = out.sort_values("size_bytes", kind="stable")
    return out.reset_index(drop=True)


def dense_size(trials: pd.DataFrame) -> float:
    """The dense baseline's size: its row's ``size_bytes``, else ``dense_size_bytes``."""
    if "stage" in trials.columns and "size_bytes" in trials.columns:
        size = pd.to_numeric(trials.loc[trials["stage"] == "baseline", "size_bytes"]).dropna()
        if len(size):
            return float(size.iloc[0])
    if "dense_size_bytes" in trials.columns:
        size = pd.to_numeric(trials["dense_size_bytes"]).dropna()
        if len(size):
            return float(size.max())
    return math.nan


def summarize(trials: pd.DataFrame) -> pd.DataFrame:
    """Per sweep: trials (sweep stage), failed, best val accuracy, smallest size of counted rows."""
    rows = []
    for sweep_id, df in trials.groupby("sweep_id", sort=False):
        sweep = df[df["stage"] != "baseline"] if "stage" in df.columns else df
        counted = df[eligible(df)]
        rows.append({
            "sweep_id": sweep_id, "trials": len(sweep),
            "failed": int((sweep.get("status") == "failed").sum()),
            "best_val_accuracy": pd.to_numeric(counted.get("val_accuracy")).max(),
            "smallest_size_bytes": pd.to_numeric(counted.get("size_bytes")).min(),
            "dense_size_bytes": dense_size(df),
        })
    return pd.DataFrame(rows, columns=["sweep_id", "trials", "failed", "best_val_accuracy",
                                       "smallest_size_bytes", "dense_size_bytes"])


def _split(sources) -> list[pd.DataFrame]:
    """One trials frame per sweep, in order: the order of the sources, then (within a path)
    oldest sweep first, (within a frame) first appearance."""
    if isinstance(sources, (pd.DataFrame, str, os.PathLike)):
        sources = [sources]
    frames = []
    for source in sources:
        if isinstance(source, pd.DataFrame):
            df, order = source, list(dict.fromkeys(source["sweep_id"]))
        else:
            df = read_results(source)
            if df.empty:
                raise ResultsInputError(f"path {os.fspath(source)!r}: no trials.parquet found")
            order = [s for s in list_sweeps(source)["sweep_id"] if s in set(df["sweep_id"])]
        frames += [df[df["sweep_id"] == s] for s in order]
    if not frames:
        raise ResultsInputError("compare: no sweeps given")
    return frames


def _shifted(configs: pd.DataFrame, objectives, sign: float) -> np.ndarray:
    """Minimisation matrix moved by ``sign`` x the CI half-width (+1: worse, -1: better)."""
    matrix = objective_matrix(configs, objectives)
    for j, o in enumerate(objectives):
        ci = configs.get(f"{o.column}_ci95")
        if ci is not None:
            matrix[:, j] += sign * np.nan_to_num(ci.to_numpy(dtype=np.float64), nan=0.0)
    return matrix


def _summarize_sweep(trials, objectives, ref_min) -> SweepSummary:
    configs = aggregate_replicates(trials, objectives)
    matrix = objective_matrix(configs, objectives)
    configs["on_front"] = pareto_mask(matrix)
    bounds = tuple(_hv(_shifted(configs, objectives, s), ref_min) for s in (1.0, -1.0))
    is_baseline = (trials["stage"] == "baseline" if "stage" in trials.columns
                   else pd.Series(False, index=trials.index))
    sweep = trials[~is_baseline]
    first = trials.iloc[0]
    return SweepSummary(
        sweep_id=str(first["sweep_id"]), recipe_name=str(first.get("recipe_name", "")),
        configs=configs, baseline=trials[is_baseline],
        hypervolume=_hv(matrix[~np.isnan(matrix).any(axis=1)], ref_min),
        hypervolume_bounds=bounds, dense_size=dense_size(trials),
        n_trials=len(sweep), n_failed=int((sweep.get("status") == "failed").sum()),
        has_replicates=bool((configs["n_seeds"] > 1).any()),
    )


def _dominated_by(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each row of ``a``: is it dominated by some row of ``b``? (minimisation, no NaN)"""
    if len(a) == 0 or len(b) == 0:
        return np.zeros(len(a), dtype=bool)
    le = np.all(b[None, :, :] <= a[:, None, :], axis=2)
    lt = np.any(b[None, :, :] < a[:, None, :], axis=2)
    return np.any(le & lt, axis=1)


def _gain(base: SweepSummary, other: SweepSummary, objectives) -> Gain:
    fa, fb = base.frontier, other.frontier
    ma, mb = objective_matrix(fa, objectives), objective_matrix(fb, objectives)
    gain = other.hypervolume - base.hypervolume
    exceeds = None
    if base.has_replicates and other.has_replicates:
        exceeds = bool(other.hypervolume_bounds[0] > base.hypervolume_bounds[1]
                       or other.hypervolume_bounds[1] < base.hypervolume_bounds[0])
    return Gain(
        base=base.label, other=other.label, hv_gain=gain,
        hv_gain_rel=gain / base.hypervolume if base.hypervolume > 0 else math.nan,
        exceeds_noise=exceeds,
        base_dominated=fa[_dominated_by(ma, mb)], other_dominated=fb[_dominated_by(mb, ma)],
    )


def _best_under(configs: pd.DataFrame, limit: float) -> dict:
    fits = configs[pd.to_numeric(configs["size_bytes"]) <= limit]
    fits = fits[fits["val_accuracy"].notna()]
    if fits.empty:
        return {"config_id": None, "val_accuracy": math.nan, "val_accuracy_ci95": math.nan,
                "val_accuracy_std": math.nan, "n_seeds": 0, "size_bytes": math.nan}
    best = fits.loc[fits["val_accuracy"].idxmax()]
    return {c: best.get(c, math.nan) for c in
            ("config_id", "val_accuracy", "val_accuracy_ci95", "val_accuracy_std", "n_seeds",
             "size_bytes")}


def _budget_table(sweeps: list[SweepSummary], budgets) -> pd.DataFrame:
    rows = []
    for budget in budgets:
        base = None
        for s in sweeps:
            row = {"budget": budget, "sweep": s.label, "max_size_bytes": budget * s.dense_size,
                   **_best_under(s.configs, budget * s.dense_size)}
            if base is None:
                base = row
            delta, ci = welch_ci(base["val_accuracy"], base["val_accuracy_std"], base["n_seeds"],
                                 row["val_accuracy"], row["val_accuracy_std"], row["n_seeds"])
            row.update(delta_vs_base=delta if row is not base else math.nan,
                       delta_ci95=ci if row is not base else math.nan,
                       exceeds_noise=(bool(abs(delta) > ci) if np.isfinite(ci) and row is not base
                                      else None))
            rows.append(row)
    return pd.DataFrame(rows)


def compare_sweeps(sources, objectives: object = None, budgets: Sequence[float] = DEFAULT_BUDGETS,
                   reference: Sequence[float] | None = None) -> Comparison:
    """Compare sweeps given as trials DataFrames and/or results paths (any level).

    The first sweep is the base. ``reference`` is in the objectives' units (default: per
    objective the worst of the sweeps' ``default_reference``). ``budgets`` are fractions of
    the dense baseline's size_bytes.
    """
    objectives = parse_objectives(objectives)
    budgets = [float(b) for b in budgets]
    if any(not b > 0 for b in budgets):
        raise ResultsInputError(f"budgets: each must be a positive fraction, got {budgets}")
    frames = _split(sources)
    for df in frames:
        check_columns(df, objectives)
    signs = np.array([o.sign for o in objectives])
    if reference is None:
        ref_min = np.max([default_reference(df, objectives) * signs for df in frames], axis=0)
    else:
        ref = np.asarray(reference, dtype=np.float64).reshape(-1)
        if ref.shape != signs.shape or np.isnan(ref).any():
            raise ResultsInputError(
                f"reference: expected {len(signs)} numbers (one per objective), got {reference!r}")
        ref_min = ref * signs
    sweeps = [_summarize_sweep(df, objectives, ref_min) for df in frames]
    fronts = [objective_matrix(s.frontier, objectives) for s in sweeps]
    union = np.concatenate(fronts) if fronts else np.empty((0, len(objectives)))
    return Comparison(
        objectives=objectives, reference=ref_min * signs, sweeps=sweeps,
        union_hypervolume=_hv(union[~np.isnan(union).any(axis=1)], ref_min),
        gains=[_gain(sweeps[0], s, objectives) for s in sweeps[1:]],
        budgets=_budget_table(sweeps, budgets) if {"val_accuracy", "size_bytes"} <= set(
            sweeps[0].configs.columns) else pd.DataFrame(),
    )
