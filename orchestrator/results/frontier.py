"""From trials to a sweep's frontier: seed replicates averaged per configuration, then Pareto.

Rows that share ``config_id`` are seed replicates of one configuration. A frontier of single
trials would reward lucky seeds, so the frontier is computed on the per-configuration mean of
every metric, and each objective carries its standard deviation and the half-width of its
95 % t confidence interval (NaN with a single seed). With one seed per configuration the
aggregate is the trials table itself plus ``n_seeds = 1``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from orchestrator.results.objectives import check_columns, parse_objectives
from orchestrator.results.pareto import eligible, pareto_front
from orchestrator.results.stats import ci_halfwidth

__all__ = ["aggregate_replicates", "sweep_frontier"]

# Per-trial measurements that are averaged over seeds; every other column is per-config.
METRICS = (
    "val_accuracy", "test_accuracy", "size_bytes", "compression_ratio", "sparsity", "bits",
    "nonzero_params", "latency_ms_b1", "latency_ms_batch", "epochs_run", "wall_s",
)


def _spread_columns(objectives) -> list[str]:
    columns = [o.column for o in objectives]
    return columns + [c for c in ("val_accuracy",) if c not in columns]


def aggregate_replicates(trials: pd.DataFrame, objectives: object = None) -> pd.DataFrame:
    """One row per (sweep_id, config_id) over the ``eligible`` trials.

    Metric and objective columns are the mean over replicates; other columns are taken from
    the first replicate (by trial_id). Added: ``n_seeds``, ``trial_ids`` (list), and for each
    objective and val_accuracy ``<col>_std`` and ``<col>_ci95`` (CI half-width).
    """
    objectives = parse_objectives(objectives)
    check_columns(trials, objectives)
    df = trials[eligible(trials)]
    keys = [k for k in ("sweep_id", "config_id") if k in df.columns]
    if "config_id" not in keys:  # no replicate information: every trial is its own config
        keys.append("trial_id")
    if "trial_id" in df.columns:
        df = df.sort_values("trial_id", kind="stable")
    spread = [c for c in _spread_columns(objectives) if c in df.columns]
    means = [c for c in df.columns if (c in METRICS or c in spread) and c not in keys
             and pd.api.types.is_numeric_dtype(df[c])]
    # Means are float64 in both paths, so frontier.parquet has one schema whatever the seeds.
    df = df.astype({c: "float64" for c in means})
    if not df.duplicated(keys).any():
        return _singletons(df, spread)
    columns = [c for c in df.columns if c != "seed"]
    grouped = df.groupby(keys, sort=False, dropna=False)
    out = grouped.first()
    out[means] = grouped[means].mean()
    out["n_seeds"] = grouped.size()
    out["trial_ids"] = grouped["trial_id"].agg(list) if "trial_id" in df.columns else None
    for column in spread:
        std = grouped[column].std()
        out[f"{column}_std"] = std
        out[f"{column}_ci95"] = ci_halfwidth(std.to_numpy(), grouped[column].count().to_numpy())
    out = out.reset_index()
    return out[columns + [c for c in out.columns if c not in columns and c != "seed"]]


def _singletons(df: pd.DataFrame, spread: list[str]) -> pd.DataFrame:
    out = df.drop(columns=["seed"], errors="ignore").reset_index(drop=True)
    out["n_seeds"] = 1
    if "trial_id" in out.columns:
        out["trial_ids"] = [[t] for t in out["trial_id"]]
    for column in spread:
        out[f"{column}_std"] = np.nan
        out[f"{column}_ci95"] = np.nan
    return out


def sweep_frontier(trials: pd.DataFrame, objectives: object = None) -> pd.DataFrame:
    """The frontier of one sweep (or of several, taken together): the non-dominated
    configurations of ``aggregate_replicates(trials)``, sorted by the first objective, best
    first. This is what ``frontier.parquet`` holds.
    """
    objectives = parse_objectives(objectives)
    configs = aggregate_replicates(trials, objectives)
    front = pareto_front(configs, objectives)
    first = objectives[0]
    return front.sort_values(first.column, ascending=first.direction == "min",
                             kind="stable").reset_index(drop=True)
