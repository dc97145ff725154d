"""The columns of trials.parquet and epochs.parquet, built from what trials reported."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

import pandas as pd

PARAM_PREFIX = "param."
STAGES = ("baseline", "sweep")
STATUSES = ("completed", "stopped", "failed")

# Metrics a trial reports every epoch that describe the final model (the last report wins).
FINAL_METRICS = ("val_accuracy", "val_loss", "test_accuracy", "train_loss", "size_bytes", "dense_size_bytes",
                 "sparsity", "bits", "nonzero_params", "latency_ms_b1", "latency_ms_batch", "artifact_path",
                 "latency_backend_b1", "latency_backend_batch", "target_sparsity")
# Tune's bookkeeping keys that are not metrics of ours.
TUNE_KEYS = ("trial_id", "training_iteration", "time_this_iter_s", "time_total_s", "timestamp", "date",
             "pid", "hostname", "node_ip", "time_since_restore", "iterations_since_restore",
             "checkpoint_dir_name", "done", "config", "experiment_tag", "should_checkpoint", "checkpoint_path")

TRIAL_COLUMNS = ("sweep_id", "recipe_name", "trial_id", "config_id", "stage", "status", "val_accuracy", "val_loss",
                 "test_accuracy", "size_bytes", "dense_size_bytes", "compression_ratio", "sparsity", "bits",
                 "nonzero_params", "latency_ms_b1", "latency_ms_batch", "epochs_run", "stopped_early", "wall_s",
                 "seed", "artifact_path", "recipe_hash", "error")


def config_id(params: Mapping[str, Any]) -> str:
    """Identifies one configuration; seed replicates of it share the id."""
    key = {k: v for k, v in params.items() if not k.endswith("seed")}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


def trial_row(*, sweep_id: str, recipe_name: str, recipe_hash: str, trial_id: str, stage: str, params: Mapping[str, Any],
              last: Mapping[str, Any], epochs_planned: int, seed: int, error: str | None) -> dict:
    """One row of trials.parquet from a trial's last report (empty if it never reported)."""
    epochs_run = int(last.get("epoch", 0) or 0)
    if error:
        status = "failed"
    elif epochs_run < epochs_planned:
        status = "stopped"
    else:
        status = "completed"
    size, dense = last.get("size_bytes"), last.get("dense_size_bytes")
    row = {
        "sweep_id": sweep_id, "recipe_name": recipe_name, "trial_id": trial_id, "config_id": config_id(params),
        "stage": stage, "status": status,
        **{name: last.get(name) for name in FINAL_METRICS},
        "compression_ratio": (dense / size) if size and dense else None,
        "epochs_run": epochs_run,
        "stopped_early": status == "stopped",
        "wall_s": last.get("time_total_s"),
        "seed": seed, "recipe_hash": recipe_hash, "error": error,
    }
    row.update({PARAM_PREFIX + k: v for k, v in params.items()})
    return row


def trials_frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for column in TRIAL_COLUMNS:
        if column not in df:
            df[column] = None
    params = sorted(c for c in df.columns if c.startswith(PARAM_PREFIX))
    rest = [c for c in df.columns if c not in TRIAL_COLUMNS and c not in params]
    df = df[list(TRIAL_COLUMNS) + rest + params]
    ints = {"size_bytes": "Int64", "dense_size_bytes": "Int64", "nonzero_params": "Int64", "epochs_run": "int64", "seed": "int64"}
    floats = ["val_accuracy", "val_loss", "test_accuracy", "compression_ratio", "sparsity", "bits", "latency_ms_b1",
              "latency_ms_batch", "wall_s", "train_loss"]
    df = df.astype(ints)
    df[floats] = df[floats].astype("float64")
    df["stopped_early"] = df["stopped_early"].astype(bool)
    for column in ("artifact_path", "error"):
        df[column] = df[column].astype("string")
    return df


def epochs_frame(sweep_id: str, trial_id: str, history: pd.DataFrame | None) -> pd.DataFrame:
    """One row per reported epoch, our metrics only (Tune's bookkeeping dropped)."""
    if history is None or history.empty:
        return pd.DataFrame()
    keep = [c for c in history.columns if c not in TUNE_KEYS and not c.startswith("config/")]
    df = history[keep].copy()
    df.insert(0, "trial_id", trial_id)
    df.insert(0, "sweep_id", sweep_id)
    if "time_total_s" in history:
        df["time_total_s"] = history["time_total_s"].to_numpy()
    df = df.drop_duplicates(subset=["trial_id", "epoch"], keep="last")
    return df
