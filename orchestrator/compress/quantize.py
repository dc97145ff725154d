"""Fake quantization with a straight-through estimator; QAT (prepare -> train -> convert) and PTQ.

Weights get a ``FakeQuantize`` parametrization whose scale/zero point follow the current
weight (min-max, per tensor or per output channel). Activations (inputs of Linear/Conv) get an
``ActivationFakeQuant`` module inserted before the layer. ``convert`` freezes both: the weight
becomes its quantized value and the qparams are kept as buffers (``weight_scale``,
``weight_zero_point``, ``weight_qrange``) that ``size.export_artifact`` packs.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.utils.parametrize as parametrize
from torch import nn

from orchestrator.compress.config import QuantizationConfig
from orchestrator.compress.layers import WEIGHT_LAYERS

_MIN_SCALE = 1e-12  # an all-zero tensor still gets a finite step


class _FakeQuantSTE(torch.autograd.Function):
    """Forward: the quantize-dequantize of ``torch.fake_quantize_per_*_affine``.
    Backward: pass the gradient where x lands inside [qmin, qmax], block it outside."""

    @staticmethod
    def forward(ctx, x, scale, zero_point, qmin, qmax):
        q = torch.round(x * (1.0 / scale)) + zero_point
        inside = (q >= qmin) & (q <= qmax)
        ctx.save_for_backward(inside)
        return (q.clamp(qmin, qmax) - zero_point) * scale

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None, None


def qrange(bits: int, symmetric: bool) -> tuple[int, int]:
    """Integer levels: symmetric is restricted (-(2^(b-1)-1)..2^(b-1)-1) so that 0 is centred."""
    if symmetric:
        return -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _bcast(t: torch.Tensor, ndim: int) -> torch.Tensor:
    return t.reshape(-1, *([1] * (ndim - 1)))


def fake_quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    """Quantize-dequantize ``x`` with STE; per-channel when ``scale`` has one entry per row of x."""
    if scale.numel() > 1:
        scale, zero_point = _bcast(scale, x.dim()), _bcast(zero_point, x.dim())
    return _FakeQuantSTE.apply(x, scale, zero_point.to(x.dtype), qmin, qmax)


def compute_qparams(
    lo: torch.Tensor, hi: torch.Tensor, bits: int, symmetric: bool, power_of_two: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale (float32) and integer zero point (int32) covering [lo, hi] (widened to include 0)."""
    lo, hi = torch.clamp(lo, max=0.0).float(), torch.clamp(hi, min=0.0).float()
    qmin, qmax = qrange(bits, symmetric)
    if symmetric:
        scale = torch.maximum(-lo, hi) / qmax
    else:
        scale = (hi - lo) / (qmax - qmin)
    scale = scale.clamp(min=_MIN_SCALE)
    if power_of_two:  # round the step *up* so the range is still covered
        scale = torch.exp2(torch.ceil(torch.log2(scale)))
    if symmetric:
        zero_point = torch.zeros_like(scale, dtype=torch.int32)
    else:
        zero_point = (qmin - torch.round(lo / scale)).clamp(qmin, qmax).to(torch.int32)
    return scale, zero_point


class _SelfRangedSTE(torch.autograd.Function):
    """Returns the precomputed quantized ``q``; the gradient goes to ``w`` unchanged.

    Exact STE for a tensor quantized with its *own* min-max range: nothing lies outside the
    clip range (symmetric: |w| / scale <= qmax by construction; asymmetric: at most half a
    step, which rounds back inside), so the inside-mask of ``_FakeQuantSTE`` is all ones and
    computing it would only cost time.
    """

    @staticmethod
    def forward(ctx, w, q):
        return q

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class FakeQuantize(nn.Module):
    """Weight parametrization: qparams from the weight's own min-max at every forward."""

    def __init__(self, bits: int, symmetric: bool, per_channel: bool, power_of_two: bool):
        super().__init__()
        self.bits, self.symmetric, self.per_channel, self.power_of_two = bits, symmetric, per_channel, power_of_two
        self.qmin, self.qmax = qrange(bits, symmetric)

    @torch.no_grad()
    def qparams(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = w.detach().reshape(w.shape[0] if self.per_channel else 1, -1)
        # amin + amax: torch.aminmax(dim=1) measured 16x slower than both together on CPU
        lo, hi = rows.amin(1), rows.amax(1)
        if self.symmetric:  # fast path of compute_qparams: the range is max|w|, zero point 0
            scale = (torch.maximum(-lo, hi) / self.qmax).clamp_(min=_MIN_SCALE)
            if self.power_of_two:
                scale = torch.exp2(torch.ceil(torch.log2(scale)))
            return scale, torch.zeros(scale.shape, dtype=torch.int32, device=scale.device)
        return compute_qparams(lo, hi, self.bits, self.symmetric, self.power_of_two)

    @torch.no_grad()
    def quantize(self, w: torch.Tensor) -> torch.Tensor:
        """The quantize-dequantize of ``torch.fake_quantize_per_*_affine`` (no autograd)."""
        scale, zp = self.qparams(w)
        s = _bcast(scale, w.dim()) if self.per_channel else scale
        q = torch.round(w * (1.0 / s))
        if self.symmetric:  # zero point 0, and |w| / scale <= qmax by construction: no clamp
            return q.mul_(s)
        z = (_bcast(zp, w.dim()) if self.per_channel else zp).to(w.dtype)
        return q.add_(z).clamp_(self.qmin, self.qmax).sub_(z).mul_(s)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return _SelfRangedSTE.apply(w, self.quantize(w))


class ActivationFakeQuant(nn.Module):
    """Per-tensor asymmetric fake quant of a layer input.

    While ``observing`` in train mode (QAT) or while ``calibrating`` (PTQ) it tracks the
    range: a moving average of batch min/max (momentum 0.01, like torch's
    MovingAverageMinMaxObserver), or samples for a percentile. Until it has seen data it is
    the identity.
    """

    def __init__(self, bits: int, power_of_two: bool = False, momentum: float = 0.01):
        super().__init__()
        self.bits, self.power_of_two, self.momentum = bits, power_of_two, momentum
        self.qmin, self.qmax = qrange(bits, symmetric=False)
        self.register_buffer("lo", torch.zeros(()))
        self.register_buffer("hi", torch.zeros(()))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self.observing = True
        self.calibrating = False  # PTQ: observe in eval mode too, keep global min/max
        self._samples: list[torch.Tensor] = []

    def _observe(self, x: torch.Tensor) -> None:
        lo, hi = torch.aminmax(x.detach())
        if self.calibrating:
            self._samples.append(x.detach().flatten()[:: max(1, x.numel() // 65536)])
            lo = torch.minimum(lo, self.lo) if self.initialized else lo
            hi = torch.maximum(hi, self.hi) if self.initialized else hi
        elif self.initialized:
            lo = self.lo + self.momentum * (lo - self.lo)
            hi = self.hi + self.momentum * (hi - self.hi)
        self.lo.copy_(lo)
        self.hi.copy_(hi)
        self.initialized.fill_(True)

    def set_percentile_range(self, percentile: float) -> None:
        """PTQ percentile calibration: clip the range to [p_low, p_high] of the observed values."""
        values = torch.cat(self._samples).float()
        q = torch.tensor([1.0 - percentile / 100.0, percentile / 100.0], device=values.device)
        lo, hi = torch.quantile(values, q)
        self.lo.copy_(lo)
        self.hi.copy_(hi)

    def qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        return compute_qparams(self.lo.reshape(1), self.hi.reshape(1), self.bits, False, self.power_of_two)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.calibrating:  # PTQ: observe only, like torch's observers before convert
            self._observe(x)
            return x
        if self.observing and self.training:
            self._observe(x)
        if not self.initialized:
            return x
        scale, zp = self.qparams()
        return fake_quantize(x, scale, zp, self.qmin, self.qmax)


def _weight_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, WEIGHT_LAYERS)]


def _with_input_quant(model: nn.Sequential, config: QuantizationConfig) -> nn.Sequential:
    layers: list[nn.Module] = []
    for m in model:
        if isinstance(m, WEIGHT_LAYERS):
            layers.append(ActivationFakeQuant(config.bits, config.power_of_two))
        layers.append(m)
    return nn.Sequential(*layers)


def prepare_qat(model: nn.Module, config: QuantizationConfig) -> nn.Module:
    """Attach weight fake quant (after any pruning mask) and, if asked, input fake quant."""
    for m in _weight_layers(model):
        fq = FakeQuantize(config.bits, config.symmetric, config.granularity == "per_channel", config.power_of_two)
        parametrize.register_parametrization(m, "weight", fq)
    if config.activations:
        if not isinstance(model, nn.Sequential):
            raise TypeError(f"activation quantization needs an nn.Sequential, got {type(model).__name__}")
        model = _with_input_quant(model, config)
    return model


def _freeze_weight(m: nn.Module, fq: FakeQuantize) -> None:
    """Replace the (parametrized) weight by its quantized value; keep qparams as buffers."""
    with torch.no_grad():
        w = m.weight  # the full chain: mask -> fake quant, as in the last forward
        scale, zp = fq.qparams(_pre_quant_weight(m))
    if parametrize.is_parametrized(m, "weight"):
        parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    m.weight.data.copy_(w)
    m.register_buffer("weight_scale", scale)
    m.register_buffer("weight_zero_point", zp)
    m.register_buffer("weight_qrange", torch.tensor([fq.qmin, fq.qmax], dtype=torch.int32))


def _pre_quant_weight(m: nn.Module) -> torch.Tensor:
    """The weight as it enters the FakeQuantize parametrization (original through the masks)."""
    plist = m.parametrizations.weight
    w = plist.original
    for p in plist:
        if isinstance(p, FakeQuantize):
            return w
        w = p(w)
    return w


def convert_qat(model: nn.Module) -> nn.Module:
    """Make QAT permanent: quantized weights + frozen qparams, activation ranges frozen."""
    for m in _weight_layers(model):
        fqs = [p for p in m.parametrizations.weight if isinstance(p, FakeQuantize)] if parametrize.is_parametrized(m, "weight") else []
        if fqs:
            _freeze_weight(m, fqs[0])
    for m in model.modules():
        if isinstance(m, ActivationFakeQuant):
            m.observing = False
    return model


@torch.no_grad()
def quantize_ptq(
    model: nn.Module, config: QuantizationConfig, calibration_batches: Iterable[torch.Tensor] | None = None
) -> nn.Module:
    """Post-training quantization: weights from their min-max, activation ranges calibrated
    over ``config.calibration_batches`` batches (min-max or percentile). No training."""
    model = prepare_qat(model, config)
    if config.activations:
        if calibration_batches is None:
            raise ValueError("quantization.mode='ptq' with activations=True needs calibration batches")
        observers = [m for m in model.modules() if isinstance(m, ActivationFakeQuant)]
        for m in observers:
            m.calibrating = True
        was_training = model.training
        model.eval()
        seen = 0
        for x in calibration_batches:
            model(x)
            seen += 1
            if seen >= config.calibration_batches:
                break
        if seen == 0:
            raise ValueError("PTQ calibration got no batches")
        for m in observers:
            if config.calibration == "percentile":
                m.set_percentile_range(config.percentile)
            m.calibrating, m._samples = False, []
        model.train(was_training)
    return convert_qat(model)


def quantized_bits(model: nn.Module) -> int:
    """Largest weight bit width among converted layers (32 when nothing is quantized)."""
    bits = [int(torch.ceil(torch.log2((m.weight_qrange[1] - m.weight_qrange[0] + 1).float())))
            for m in _weight_layers(model) if hasattr(m, "weight_qrange")]
    return max(bits) if bits else 32
