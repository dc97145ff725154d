"""Model registry: architectures by name, built for a dataset's input shape and classes."""

from orchestrator.models.registry import MODELS, build_model, dense_fp32_bytes

__all__ = ["MODELS", "build_model", "dense_fp32_bytes"]
