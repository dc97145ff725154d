import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import torch.nn.utils.parametrize as parametrize

from orchestrator.compress import QuantizationConfig, fake_quantize, prepare_qat, quantize_ptq
from orchestrator.compress.quantize import ActivationFakeQuant, FakeQuantize, compute_qparams, qrange
from tests.compress.conftest import cnn1d, mlp


def _x(n=4096):
    return torch.randn(n) * 3.0  # wide enough that some values fall outside the ranges below


@pytest.mark.parametrize("bits, zp, scale", [(8, 0, 0.02), (8, 128, 0.013), (4, 3, 0.25), (2, 1, 0.7), (5, 0, 0.1)])
def test_per_tensor_equals_torch_fake_quantize(bits, zp, scale):
    x = _x()
    qmin, qmax = (0, 2**bits - 1) if zp else qrange(bits, symmetric=True)
    ours = fake_quantize(x, torch.tensor([scale]), torch.tensor([zp], dtype=torch.int32), qmin, qmax)
    ref = torch.fake_quantize_per_tensor_affine(x, scale, zp, qmin, qmax)
    assert torch.equal(ours, ref)


@pytest.mark.parametrize("bits, symmetric", [(8, True), (8, False), (4, False), (3, True)])
def test_per_channel_equals_torch_fake_quantize(bits, symmetric):
    w = torch.randn(16, 8, 3)
    fq = FakeQuantize(bits, symmetric, per_channel=True, power_of_two=False)
    scale, zp = fq.qparams(w)
    ref = torch.fake_quantize_per_channel_affine(w, scale, zp, 0, fq.qmin, fq.qmax)
    assert torch.equal(fq(w), ref)


def test_ste_passes_inside_blocks_outside_like_torch():
    x = _x().requires_grad_()
    y = x.detach().clone().requires_grad_()
    fake_quantize(x, torch.tensor([0.05]), torch.tensor([10], dtype=torch.int32), 0, 15).sum().backward()
    torch.fake_quantize_per_tensor_affine(y, 0.05, 10, 0, 15).sum().backward()
    assert torch.equal(x.grad, y.grad)
    # levels 0..15 with zero point 10 and step 0.05 cover x in [-0.525, 0.275] (half a step out)
    xd = x.detach()
    inside, outside = (xd > -0.52) & (xd < 0.27), (xd < -0.53) | (xd > 0.28)
    assert (x.grad[inside] == 1).all() and (x.grad[outside] == 0).all()
    assert 0 < inside.float().mean() < 1  # both cases exercised


@settings(max_examples=40, deadline=None)
@given(bits=st.integers(2, 8), symmetric=st.booleans(), per_channel=st.booleans(), power_of_two=st.booleans(),
       spread=st.floats(1e-3, 1e3), seed=st.integers(0, 2**16))
def test_never_more_than_2_to_the_b_levels(bits, symmetric, per_channel, power_of_two, spread, seed):
    w = torch.randn(6, 200, generator=torch.Generator().manual_seed(seed)) * spread + spread / 3
    q = FakeQuantize(bits, symmetric, per_channel, power_of_two)(w)
    rows = q if per_channel else q.reshape(1, -1)
    assert max(len(torch.unique(r)) for r in rows) <= 2**bits
    assert torch.isfinite(q).all()


@pytest.mark.parametrize("symmetric", [True, False])
def test_power_of_two_steps(symmetric):
    w = torch.randn(8, 32)
    fq = FakeQuantize(4, symmetric, per_channel=True, power_of_two=True)
    scale, zp = fq.qparams(w)
    assert torch.equal(torch.log2(scale), torch.round(torch.log2(scale)))  # 2^p exactly
    q = fq(w)
    steps = q / scale[:, None]
    assert torch.equal(steps, torch.round(steps))
    lo = (fq.qmin - zp)[:, None] * scale[:, None]
    hi = (fq.qmax - zp)[:, None] * scale[:, None]
    half = scale[:, None] / 2  # the step is rounded *up*: nothing is clipped beyond rounding error
    assert ((w >= lo - half) & (w <= hi + half)).all()
    assert torch.equal(q, torch.round(w / scale[:, None]) * scale[:, None])  # w_q = round(w / 2^p) * 2^p


def test_zero_stays_exactly_zero_asymmetric():
    w = torch.rand(4, 50) + 0.5  # all positive: the range is widened to include 0
    w[:, ::3] = 0
    scale, zp = compute_qparams(w.amin(1), w.amax(1), 3, symmetric=False, power_of_two=False)
    q = fake_quantize(w, scale, zp, *qrange(3, False))
    assert (q[:, ::3] == 0).all()


def test_qat_convert_keeps_the_function_and_puts_weights_on_grid():
    cfg = QuantizationConfig(bits=4, symmetric=False, granularity="per_channel", activations=True)
    model, weights = prepare_qat(cnn1d(), cfg)
    assert sum(isinstance(m, ActivationFakeQuant) for m in model) == 4
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(5):
        nn.functional.cross_entropy(model(torch.randn(32, 1, 40)), torch.randint(0, 10, (32,))).backward()
        weights.restore_float_()
        opt.step()
        opt.zero_grad()
        weights.quantize_()
    model.eval()
    x = torch.randn(8, 1, 40)
    before = model(x).detach()
    model = weights.convert(model)
    assert torch.equal(model(x), before)
    conv = model[1]
    assert not hasattr(conv, "parametrizations")
    levels = (conv.weight / conv.weight_scale[:, None, None] + conv.weight_zero_point[:, None, None])
    torch.testing.assert_close(levels, torch.round(levels), rtol=0, atol=1e-4)


def _sqnr(ref, got):
    return 10 * torch.log10(ref.pow(2).mean() / (ref - got).pow(2).mean())


@pytest.mark.parametrize("calibration", ["minmax", "percentile"])
def test_ptq_calibrates_activation_ranges(calibration):
    model = mlp(64).eval()
    batches = [torch.randn(32, 64) for _ in range(6)]
    x = torch.randn(64, 64)
    dense = model(x).detach()
    cfg = QuantizationConfig(mode="ptq", bits=8, activations=True, calibration=calibration, percentile=99.0,
                             calibration_batches=3)
    q = quantize_ptq(model, cfg, batches)
    first = q[1]
    assert isinstance(first, ActivationFakeQuant)
    seen = torch.cat(batches[:3])  # only calibration_batches batches are read
    if calibration == "minmax":
        assert float(first.lo) == float(seen.min()) and float(first.hi) == float(seen.max())
    else:
        assert float(seen.min()) < float(first.lo) < float(first.hi) < float(seen.max())
    sqnr = _sqnr(dense, q(x).detach())
    floor = 25 if calibration == "minmax" else 18  # p99 clips ~2% of Gaussian inputs
    assert sqnr >= floor, f"SQNR {sqnr:.1f} dB is too low for 8-bit PTQ ({calibration})"


def test_ptq_activations_need_calibration():
    with pytest.raises(ValueError, match="calibration"):
        quantize_ptq(mlp(16), QuantizationConfig(mode="ptq", activations=True), None)


@pytest.mark.parametrize("symmetric", [True, False])
def test_weight_quantizer_is_self_ranged_so_its_ste_is_the_identity(symmetric):
    w = (torch.randn(8, 30) * 2).requires_grad_()
    fq = FakeQuantize(3, symmetric, per_channel=True, power_of_two=False)
    scale, zp = fq.qparams(w)
    clipped = fake_quantize(w, scale, zp, fq.qmin, fq.qmax)  # the clip-aware reference STE
    clipped.sum().backward()
    assert (w.grad == 1).all()  # nothing of w is outside its own range
    w.grad = None
    out = fq(w)
    assert torch.equal(out, clipped)
    out.sum().backward()
    assert (w.grad == 1).all()


@pytest.mark.parametrize("cfg", [
    dict(bits=4, symmetric=True, granularity="per_channel"),
    dict(bits=3, symmetric=False, granularity="per_tensor"),
    dict(bits=5, symmetric=True, granularity="per_tensor", power_of_two=True),
], ids=["sym-channel-4", "asym-tensor-3", "pow2-tensor-5"])
def test_master_weights_train_like_the_fake_quant_parametrization(cfg):
    """Reference: the FakeQuantize module as a torch parametrization, recomputed in every
    forward with its STE. QatWeights (float masters, quantized in place between steps) must
    follow the same trajectory: same quantized weights and same float masters, step by step."""
    config = QuantizationConfig(**cfg)
    ours, ref = mlp(64), mlp(64)
    ref.load_state_dict(ours.state_dict())
    ours, weights = prepare_qat(ours, config)
    for m in ref.modules():
        if isinstance(m, nn.Linear):
            parametrize.register_parametrization(m, "weight", FakeQuantize(
                config.bits, config.symmetric, config.granularity == "per_channel", config.power_of_two))
    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    linear = lambda model: [m for m in model.modules() if isinstance(m, nn.Linear)]  # noqa: E731
    for _ in range(15):
        x, y = torch.randn(32, 64), torch.randint(0, 10, (32,))
        nn.functional.cross_entropy(ours(x), y).backward()
        weights.restore_float_()
        opt_ours.step()
        opt_ours.zero_grad()
        weights.quantize_()
        nn.functional.cross_entropy(ref(x), y).backward()
        opt_ref.step()
        opt_ref.zero_grad()
        for mine, theirs, master in zip(linear(ours), linear(ref), weights.masters):
            torch.testing.assert_close(master, theirs.parametrizations.weight.original, rtol=1e-5, atol=1e-6)
            # quantized values: equal up to a level flip where rounding sits on a tie
            assert (mine.weight != theirs.weight).float().mean() < 1e-3


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("granularity", ["per_channel", "per_tensor"])
@pytest.mark.parametrize("power_of_two", [False, True])
def test_master_weights_quantize_bit_identically_to_fake_quantize(symmetric, granularity, power_of_two):
    model = cnn1d()
    floats = [m.weight.detach().clone() * 3 for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d))]
    model, weights = prepare_qat(model, QuantizationConfig(bits=3, symmetric=symmetric, granularity=granularity,
                                                           power_of_two=power_of_two))
    for m, w in zip(weights.layers, floats):
        m.weight.data.copy_(w)
    weights.quantize_()
    for m, w, fq, master in zip(weights.layers, floats, weights.quantizers, weights.masters):
        assert torch.equal(master, w)
        assert torch.equal(m.weight, fq.quantize(w))
