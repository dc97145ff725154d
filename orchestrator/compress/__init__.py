"""Compression methods, pure PyTorch: pruning, quantization, distillation, size and latency.

Training-time use goes through ``CompressionHooks`` (a ``train.hooks.TrainHooks``); the
functions below are the same methods one call at a time.
"""

from orchestrator.compress.config import CompressionConfig, DistillationConfig, PruningConfig, QuantizationConfig
from orchestrator.compress.distill import kd_loss
from orchestrator.compress.hooks import CompressionHooks
from orchestrator.compress.latency import measure_latency
from orchestrator.compress.prune import Pruner, cubic_sparsity, prunable_count, prune_
from orchestrator.compress.quantize import QatWeights, fake_quantize, prepare_qat, quantize_ptq
from orchestrator.compress.size import ArtifactInfo, dense_size_bytes, export_artifact, load_artifact

__all__ = [
    "ArtifactInfo",
    "CompressionConfig",
    "CompressionHooks",
    "DistillationConfig",
    "PruningConfig",
    "QatWeights",
    "Pruner",
    "QuantizationConfig",
    "cubic_sparsity",
    "dense_size_bytes",
    "export_artifact",
    "fake_quantize",
    "kd_loss",
    "load_artifact",
    "measure_latency",
    "prepare_qat",
    "prunable_count",
    "prune_",
    "quantize_ptq",
]
