"""Synthetic results trees in the layout the sweep writes, for tests, benchmarks and demos.

Not a store: the real files come from ``orchestrator.results.store``. This only mimics the
data contract (columns, baseline row, failed trials with null metrics, Ray's ``_``-prefixed
clutter) so the readers can be exercised without running a sweep.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

DENSE_SIZE = 4 * 250_000  # fp32 bytes of a 250k-parameter model


def synthetic_trials(
    sweep_id: str,
    recipe_name: str = "mlp-digits",
    n_configs: int = 20,
    seeds: tuple[int, ...] = (0,),
    params: tuple[str, ...] = ("compression.pruning.sparsity", "compression.quantization.bits"),
    skill: float = 0.0,
    failed: int = 1,
    rng: int | np.random.Generator = 0,
) -> pd.DataFrame:
    """A trials table: one dense baseline row, ``n_configs`` configurations x ``seeds``.

    ``skill`` shifts every compressed trial's accuracy (a better method); ``failed`` trials
    get null metrics and status ``failed``.
    """
    rng = np.random.default_rng(rng)
    sparsity = rng.uniform(0.0, 0.97, n_configs)
    bits = rng.choice([2, 4, 8, 16], n_configs)
    lr = np.exp(rng.uniform(np.log(1e-4), np.log(1e-1), n_configs))
    values = {
        "compression.pruning.sparsity": sparsity,
        "compression.quantization.bits": bits,
        "train.lr": lr,
    }
    size = (DENSE_SIZE * (1 - sparsity) * bits / 32 + 64).astype(np.int64)
    quality = 0.95 + skill - 0.25 * sparsity**4 - 0.4 / bits**2
    rows = []
    for c in range(n_configs):
        for seed in seeds:
            acc = float(np.clip(quality[c] + rng.normal(0, 0.005), 0, 1))
            rows.append({
                "trial_id": f"{sweep_id}-t{len(rows):05d}", "config_id": f"cfg{c:05d}",
                "stage": "sweep", "status": "completed", "val_accuracy": acc,
                "test_accuracy": float(np.clip(acc - 0.01, 0, 1)),
                "size_bytes": int(size[c]), "sparsity": float(sparsity[c]),
                "bits": int(bits[c]), "seed": int(seed),
                **{f"param.{p}": values[p][c].item() for p in params},
            })
    df = pd.DataFrame(rows)
    baseline = {"trial_id": f"{sweep_id}-baseline", "config_id": "baseline", "stage": "baseline",
                "status": "completed", "val_accuracy": 0.96, "test_accuracy": 0.95,
                "size_bytes": DENSE_SIZE, "sparsity": 0.0, "bits": 32, "seed": 0}
    df = pd.concat([pd.DataFrame([baseline]), df], ignore_index=True)
    df["status"] = df["status"].astype(object)
    df.loc[rng.choice(np.arange(1, len(df)), size=min(failed, len(df) - 1), replace=False),
           "status"] = "failed"
    dead = df["status"] == "failed"
    df.loc[dead, ["val_accuracy", "test_accuracy"]] = np.nan
    df["size_bytes"] = df["size_bytes"].astype("Int64").mask(dead)
    df.insert(0, "sweep_id", sweep_id)
    df.insert(1, "recipe_name", recipe_name)
    df["dense_size_bytes"] = DENSE_SIZE
    df["compression_ratio"] = DENSE_SIZE / df["size_bytes"].astype("float64")
    df["nonzero_params"] = ((1 - df["sparsity"]) * DENSE_SIZE / 4).round().astype("Int64")
    df["latency_ms_b1"] = np.nan
    df["latency_ms_batch"] = np.nan
    df["epochs_run"] = 5
    df["stopped_early"] = False
    df["wall_s"] = rng.uniform(1, 10, len(df))
    df["artifact_path"] = None
    df["recipe_hash"] = f"hash-{recipe_name}"
    return df


def synthetic_epochs(trials: pd.DataFrame, epochs: int = 3) -> pd.DataFrame:
    """One row per trial and epoch, accuracy rising to the trial's final value."""
    rows = [
        {"sweep_id": t.sweep_id, "trial_id": t.trial_id, "epoch": e,
         "val_accuracy": t.val_accuracy * (e + 1) / epochs, "train_loss": 1.0 / (e + 1),
         "lr": 0.01}
        for t in trials.itertuples() for e in range(epochs)
    ]
    return pd.DataFrame(rows)


def write_synthetic_sweep(root: str | Path, trials: pd.DataFrame,
                          created_at: str = "2025-01-01T00:00:00+00:00",
                          recipe_text: str | None = None) -> Path:
    """Write one sweep folder (trials, epochs, frontier, recipe.yaml, sweep.json, Ray clutter)."""
    from orchestrator.results.frontier import sweep_frontier

    sweep_id, recipe = trials["sweep_id"].iloc[0], trials["recipe_name"].iloc[0]
    folder = Path(root) / recipe / sweep_id
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(trials, preserve_index=False), folder / "trials.parquet")
    pq.write_table(pa.Table.from_pandas(synthetic_epochs(trials), preserve_index=False),
                   folder / "epochs.parquet")
    frontier = sweep_frontier(trials)
    pq.write_table(pa.Table.from_pandas(frontier, preserve_index=False),
                   folder / "frontier.parquet")
    if recipe_text is None:
        recipe_text = f"# synthetic recipe <{recipe}>\nname: {recipe}\ntrain:\n  lr: 0.01\n"
    (folder / "recipe.yaml").write_text(recipe_text)
    meta = {"sweep_id": sweep_id, "recipe_name": recipe, "recipe_hash": f"hash-{recipe}",
            "created_at": created_at, "orchestrator_version": "0.1.0",
            "objectives": ["val_accuracy:max", "size_bytes:min"]}
    (folder / "sweep.json").write_text(json.dumps(meta))
    # Ray's own files: readers must skip anything under a "_" or "." name.
    for junk in ("_ray_internal", ".cache"):
        (folder / junk).mkdir(exist_ok=True)
        pq.write_table(pa.table({"x": [1]}), folder / junk / "trials.parquet")
    return folder
