"""Compression inside a trial: build the hooks from the recipe, and at the end export the
artifact and measure it. Runs in the trial process (one worker) or on Train rank 0."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs
import ray
from torch import nn

from orchestrator.compress import CompressionHooks, load_artifact, measure_latency
from orchestrator.data import Splits
from orchestrator.recipe.schema import Recipe
from orchestrator.results.store import is_uri

ARTIFACT_SUFFIX = ".orchm"
LATENCY_BATCH = 256


def has_compression(recipe: Recipe) -> bool:
    c = recipe.compression
    return any(section is not None for section in (c.pruning, c.quantization, c.distillation))


def make_hooks(recipe: Recipe, splits: Splits, epochs: int, teacher_logits=None) -> CompressionHooks | None:
    """The trial's compression hooks, or None for a dense trial."""
    if not has_compression(recipe):
        return None
    c, batch = recipe.compression, recipe.train.batch_size
    calibration = None
    if c.quantization is not None and c.quantization.mode == "ptq":
        count = min(c.quantization.calibration_batches, math.ceil(len(splits.train_y) / batch))
        calibration = [splits.train_x[i * batch:(i + 1) * batch] for i in range(count)]
    steps = math.ceil(len(splits.train_y) / batch)
    teacher = teacher_logits if c.distillation is not None else None
    return CompressionHooks(c, epochs, steps, teacher_logits=teacher, calibration_batches=calibration)


@dataclass(frozen=True)
class TrialCompression:
    """What a trial needs to compress: the shared teacher logits and where artifacts go."""

    teacher_ref: Any  # ObjectRef[Tensor] | None: baseline logits on the train split, computed once
    artifact_dir: str  # local directory or URI

    def hooks(self, recipe: Recipe, splits: Splits, epochs: int) -> CompressionHooks | None:
        distils = has_compression(recipe) and recipe.compression.distillation is not None
        return make_hooks(recipe, splits, epochs, ray.get(self.teacher_ref) if distils else None)

    def finalize(self, hooks: CompressionHooks, model: nn.Module, trial_id: str, input_shape: tuple) -> dict:
        """Export the finished model, measure the artifact; metrics for the trial's last report."""
        name = f"{trial_id}{ARTIFACT_SUFFIX}"
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, name) if is_uri(self.artifact_dir) else os.path.join(self.artifact_dir, name)
            os.makedirs(os.path.dirname(local), exist_ok=True)
            info = hooks.export(model.cpu().eval(), local)
            latency = measure_latency(load_artifact(local), tuple(input_shape), batch_sizes=(1, LATENCY_BATCH))
            final_path = local
            if is_uri(self.artifact_dir):
                fs, base = pafs.FileSystem.from_uri(self.artifact_dir)
                fs.create_dir(base, recursive=True)
                with open(local, "rb") as src, fs.open_output_stream(f"{base}/{name}") as dst:
                    shutil.copyfileobj(src, dst)
                final_path = f"{self.artifact_dir.rstrip('/')}/{name}"
        return {
            "size_bytes": info.size_bytes,
            "sparsity": info.sparsity,
            "bits": info.bits,
            "nonzero_params": info.nonzero_params,
            "artifact_path": final_path,
            "latency_ms_b1": latency["latency_ms_b1"],
            "latency_ms_batch": latency[f"latency_ms_b{LATENCY_BATCH}"],
            "latency_backend_b1": latency["latency_backend_b1"],
            "latency_backend_batch": latency[f"latency_backend_b{LATENCY_BATCH}"],
        }
