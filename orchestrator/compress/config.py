"""Typed compression settings: one small pydantic model per method, combinable in one trial.

Every bound lives in the field (so pydantic's error names the field, the value and the
allowed range) and every rule that spans fields lives in a model validator whose message
names the fields involved. Unknown keys are errors (``extra="forbid"``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class PruningConfig(_Strict):
    """Which weights to remove, how many, and when.

    ``sparsity`` (fraction of prunable weights, or of output channels when ``structured``) and
    ``threshold`` (prune what scores below ``threshold`` x the mean importance of the layer,
    or of all prunable weights when ``scope="global"``) are mutually exclusive.

    Gradual pruning follows Zhu & Gupta (2017): the target rises along a cubic from
    ``initial_sparsity`` at the first step of ``start_epoch`` to ``sparsity`` at the first step
    of ``end_epoch`` (``None``: the end of training); masks are recomputed every ``frequency``
    optimizer steps (steps, not epochs, as in the paper's Delta t).

    One-shot magnitude pruning happens at the first step of ``start_epoch`` (by default on the
    weights the loop starts from, i.e. the baseline); gradient/taylor need gradients, so
    one-shot accumulates their importance over ``frequency`` steps first and prunes then.
    """

    method: Literal["magnitude", "gradient", "taylor"] = "magnitude"
    sparsity: float | None = Field(default=None, ge=0.0, lt=1.0)
    threshold: float | None = Field(default=None, gt=0.0, le=1e6)
    scope: Literal["global", "layer"] = "global"
    structured: bool = False
    schedule: Literal["oneshot", "gradual"] = "oneshot"
    start_epoch: int = Field(default=0, ge=0, le=10_000, strict=True)
    end_epoch: int | None = Field(default=None, ge=1, le=10_000, strict=True)
    frequency: int = Field(default=10, ge=1, le=10_000_000, strict=True, description="optimizer steps between mask updates")
    initial_sparsity: float = Field(default=0.0, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _check(self) -> PruningConfig:
        problems = []
        if (self.sparsity is None) == (self.threshold is None):
            problems.append(
                f"exactly one of pruning.sparsity or pruning.threshold must be set, "
                f"got sparsity={self.sparsity!r}, threshold={self.threshold!r}"
            )
        if self.schedule == "gradual":
            if self.sparsity is None:
                problems.append("pruning.schedule='gradual' needs pruning.sparsity (a target), not a threshold")
            elif self.initial_sparsity > self.sparsity:
                problems.append(
                    f"pruning.initial_sparsity={self.initial_sparsity} must be <= "
                    f"pruning.sparsity={self.sparsity}"
                )
            if self.end_epoch is not None and self.end_epoch <= self.start_epoch:
                problems.append(
                    f"pruning.end_epoch={self.end_epoch} must be > pruning.start_epoch={self.start_epoch}"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class QuantizationConfig(_Strict):
    """Fake quantization to ``bits`` during training (``qat``) or after it (``ptq``).

    Weights are quantized per tensor or per output channel, symmetric (zero point 0, levels
    -(2^(b-1)-1)..2^(b-1)-1) or asymmetric (0..2^b-1, range widened to include 0 so that a
    pruned weight stays exactly 0). ``power_of_two`` rounds the step up to 2^p.
    ``activations`` also fake-quantizes the input of every Linear/Conv (per tensor,
    asymmetric, ranges from a moving min/max in QAT or from calibration in PTQ).
    ``calibration``/``percentile``/``calibration_batches`` apply to PTQ activation ranges.
    """

    mode: Literal["qat", "ptq"] = "qat"
    bits: int = Field(default=8, ge=2, le=8, strict=True)
    symmetric: bool = True
    granularity: Literal["per_tensor", "per_channel"] = "per_channel"
    power_of_two: bool = False
    activations: bool = False
    calibration: Literal["minmax", "percentile"] = "minmax"
    percentile: float = Field(default=99.99, gt=50.0, le=100.0)
    calibration_batches: int = Field(default=4, ge=1, le=10_000, strict=True)


class DistillationConfig(_Strict):
    """loss = (1 - alpha) * CE(y, s) + alpha * T^2 * KL(softmax(t/T) || softmax(s/T))."""

    alpha: float = Field(default=0.5, ge=0.0, le=1.0, description="the KD weight lambda")
    temperature: float = Field(default=4.0, gt=0.0, le=1000.0)


class CompressionConfig(_Strict):
    """The compression of one trial; every section is optional and they combine."""

    pruning: PruningConfig | None = None
    quantization: QuantizationConfig | None = None
    distillation: DistillationConfig | None = None
