"""Model registry: every model builds for its input shape, gives (N, classes) logits, is
reproducible under a seed, and dense_fp32_bytes is 4 bytes per parameter."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from orchestrator.models import build_model, dense_fp32_bytes
from orchestrator.recipe.schema import ModelConfig



pytestmark = pytest.mark.usefixtures("one_thread")


CASES = [  # (model config, input shape, classes)
    (ModelConfig(name="mlp", hidden=[256, 256]), (1, 8, 8), 10),
    (ModelConfig(name="mlp", hidden=[16]), (1, 40), 10),
    (ModelConfig(name="mlp", hidden=[]), (32,), 4),
    (ModelConfig(name="mlp", hidden=[8, 8], dropout=0.5), (5,), 3),
    (ModelConfig(name="cnn2d", channels=[8, 16], hidden=[32]), (1, 8, 8), 10),
    (ModelConfig(name="cnn2d", channels=[4] * 8, kernel_size=2), (1, 8, 8), 10),
    (ModelConfig(name="cnn1d", channels=[8, 16], hidden=[32]), (1, 40), 10),
    (ModelConfig(name="cnn1d", channels=[4], kernel_size=15, hidden=[]), (1, 40), 7),
]


def _id(case) -> str:
    cfg, shape, classes = case
    return f"{cfg.name}-{'x'.join(map(str, shape))}-{classes}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_forward_shape(case):
    cfg, shape, classes = case
    model = build_model(cfg, shape, classes, seed=0)
    assert isinstance(model, nn.Sequential)
    model.eval()
    for n in (1, 5):
        out = model(torch.randn(n, *shape))
        assert out.shape == (n, classes)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_seed_makes_init_reproducible(case):
    cfg, shape, classes = case
    a = build_model(cfg, shape, classes, seed=7).state_dict()
    b = build_model(cfg, shape, classes, seed=7).state_dict()
    c = build_model(cfg, shape, classes, seed=8).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_mlp_layers_follow_hidden_sizes():
    model = build_model(ModelConfig(name="mlp", hidden=[256, 256]), (1, 8, 8), 10)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 256), (256, 256), (256, 10)]


def test_dropout_only_when_configured():
    assert not any(isinstance(m, nn.Dropout) for m in build_model(ModelConfig(hidden=[8]), (4,), 2))
    assert any(isinstance(m, nn.Dropout) for m in build_model(ModelConfig(hidden=[8], dropout=0.2), (4,), 2))


def test_dense_fp32_bytes_of_mlp_is_four_bytes_per_parameter():
    model = build_model(ModelConfig(name="mlp", hidden=[256, 256]), (1, 8, 8), 10)
    # computed independently from the architecture: weights + biases of 64-256-256-10
    params = (64 * 256 + 256) + (256 * 256 + 256) + (256 * 10 + 10)
    assert sum(p.numel() for p in model.parameters()) == params
    assert dense_fp32_bytes(model) == 4 * params == 340_008


def test_dense_fp32_bytes_counts_float_buffers_not_integer_ones():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    # Linear 3*2+2, BatchNorm weight+bias 2+2, float buffers running_mean/var 2+2;
    # num_batches_tracked is an int64 buffer and is not a weight
    assert dense_fp32_bytes(model) == 4 * (8 + 4 + 4)


def test_cnn_rejects_wrong_input_rank():
    with pytest.raises(ValueError, match="cnn2d"):
        build_model(ModelConfig(name="cnn2d"), (1, 40), 10)
    with pytest.raises(ValueError, match="cnn1d"):
        build_model(ModelConfig(name="cnn1d"), (1, 8, 8), 10)


def test_model_trains_on_a_batch():
    # gradients reach every parameter (no detached layer in the stack)
    for cfg, shape, classes in CASES:
        model = build_model(cfg, shape, classes, seed=0)
        loss = nn.functional.cross_entropy(model(torch.randn(4, *shape)), torch.arange(4) % classes)
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters()), cfg
