import copy

import pytest
import torch
import torch.nn.utils.prune as tprune
from torch import nn

from orchestrator.compress import CompressionConfig, CompressionHooks, cubic_sparsity, load_artifact
from orchestrator.compress.layers import WEIGHT_LAYERS
from tests.compress.conftest import cnn1d


def _separable(n, classes=4, dim=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(dim, classes, generator=torch.Generator().manual_seed(123))
    x = torch.randn(n, dim, generator=g)
    return x, (x @ w).argmax(1), 2.0 * (x @ w)  # inputs, labels, a perfect teacher's logits


def _train(model, hooks, x, y, epochs, batch=64, lr=1e-2):
    """The loop of train/hooks.py, verbatim in order."""
    model = hooks.prepare(model)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for epoch in range(epochs):
        hooks.start_epoch(model, epoch)
        model.train()
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        for step, idx in enumerate(order.split(batch)):
            loss = hooks.loss(model(x[idx]), y[idx], idx)
            loss.backward()
            hooks.after_backward(model, step)
            opt.step()
            opt.zero_grad()
            hooks.after_optimizer_step(model, step)
        model.eval()
        history.append(hooks.end_epoch(model, epoch))
    return hooks.finish(model).eval(), history


def _mlp(classes=4):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                         nn.Linear(128, classes))


def test_pruning_qat_and_kd_together_learn_and_reach_the_target(tmp_path):
    x, y, teacher = _separable(1024)
    xt, yt, _ = _separable(512, seed=1)
    cfg = CompressionConfig(
        pruning={"method": "taylor", "sparsity": 0.8, "schedule": "gradual", "end_epoch": 4, "frequency": 4},
        quantization={"mode": "qat", "bits": 4, "activations": True},
        distillation={"alpha": 0.5, "temperature": 2.0},
    )
    hooks = CompressionHooks(cfg, epochs=6, steps_per_epoch=16, teacher_logits=teacher)
    model, history = _train(_mlp(), hooks, x, y, epochs=6)
    acc = (model(xt).argmax(1) == yt).float().mean().item()
    assert acc > 0.75, f"accuracy {acc:.2f} (chance 0.25)"
    assert history[-1]["sparsity"] >= 0.8 - 1e-3 and history[-1]["bits"] == 4
    assert [h["target_sparsity"] for h in history][3:] == [0.8, 0.8, 0.8]
    info = hooks.export(model, tmp_path / "m.art")
    assert info.sparsity >= 0.8 - 1e-3 and info.bits == 4 and info.compression_ratio > 10
    assert torch.equal(load_artifact(tmp_path / "m.art")(xt).argmax(1), model(xt).argmax(1))


def test_gradual_magnitude_follows_the_cubic_schedule():
    x, y, _ = _separable(256)
    cfg = CompressionConfig(pruning={"sparsity": 0.9, "schedule": "gradual", "initial_sparsity": 0.2,
                                     "start_epoch": 1, "end_epoch": 3, "frequency": 2})
    _, history = _train(_mlp(), CompressionHooks(cfg, epochs=4, steps_per_epoch=4), x, y, epochs=4)
    n = 64 * 128 + 128 * 128 + 128 * 4
    for epoch, h in enumerate(history):
        step = (epoch + 1) * 4
        expected = cubic_sparsity(step, 0.2, 0.9, 4, 12) if step >= 4 else 0.0
        assert h["target_sparsity"] == pytest.approx(expected)
        assert h["sparsity"] == pytest.approx(round(expected * n) / n, abs=1e-6)


def test_oneshot_prunes_the_baseline_weights_in_prepare():
    model = _mlp()
    ref = copy.deepcopy(model)
    hooks = CompressionHooks(CompressionConfig(pruning={"sparsity": 0.7}), epochs=1, steps_per_epoch=1)
    model = hooks.prepare(model)
    layers = [m for m in ref if isinstance(m, WEIGHT_LAYERS)]
    tprune.global_unstructured([(m, "weight") for m in layers], pruning_method=tprune.L1Unstructured, amount=0.7)
    for ours, theirs in zip([m for m in model if isinstance(m, WEIGHT_LAYERS)], layers):
        assert torch.equal(ours.weight, theirs.weight)


def test_structured_qat_through_hooks_shrinks_cnn(tmp_path):
    x, y = torch.randn(128, 1, 40), torch.randint(0, 10, (128,))
    cfg = CompressionConfig(pruning={"sparsity": 0.5, "structured": True, "scope": "layer", "method": "gradient"},
                            quantization={"bits": 8, "granularity": "per_channel", "activations": True})
    hooks = CompressionHooks(cfg, epochs=2, steps_per_epoch=2)
    model, history = _train(cnn1d(), hooks, x, y, epochs=2)
    assert model[1].out_channels == 4 and model[2].num_features == 4  # [0] is the input quantizer
    info = hooks.export(model, tmp_path / "c.art")
    assert info.compression_ratio > 4 * 2 - 1e-6  # 8-bit alone gives ~4x; half the channels roughly doubles it
    torch.testing.assert_close(load_artifact(tmp_path / "c.art")(x), model(x))


def test_ptq_through_hooks_uses_calibration_batches():
    x, y, _ = _separable(256)
    cfg = CompressionConfig(quantization={"mode": "ptq", "bits": 8, "activations": True, "calibration_batches": 2})
    hooks = CompressionHooks(cfg, epochs=1, steps_per_epoch=4, calibration_batches=list(x.split(64)))
    model, history = _train(_mlp(), hooks, x, y, epochs=1)
    assert history[0]["bits"] == 8 and model[1].initialized and model[2].weight_qrange.tolist() == [-127, 127]


@pytest.mark.parametrize("cfg, kwargs, words", [
    ({"distillation": {}}, {}, "teacher_logits"),
    ({"pruning": {"sparsity": 0.5, "schedule": "gradual", "end_epoch": 9}}, {}, "end_epoch=9"),
    ({"pruning": {"sparsity": 0.5, "start_epoch": 5}}, {}, "start_epoch=5"),
    ({"quantization": {"mode": "ptq", "activations": True}}, {}, "calibration_batches"),
])
def test_hooks_reject_inconsistent_setups(cfg, kwargs, words):
    with pytest.raises(ValueError, match=words):
        CompressionHooks(CompressionConfig.model_validate(cfg), epochs=5, steps_per_epoch=3, **kwargs)
