import copy

import pytest
import torch
import torch.nn.utils.prune as tprune
from torch import nn

from orchestrator.compress import PruningConfig, Pruner, cubic_sparsity, prune_
from orchestrator.compress.layers import WEIGHT_LAYERS
from tests.compress.conftest import MODELS, cnn1d, mlp


def _weights(model):
    return [m for m in model.modules() if isinstance(m, WEIGHT_LAYERS)]


def _pruned(model, **cfg):
    pruner = Pruner(model, PruningConfig(**cfg))
    pruner.attach()
    pruner.update()
    return pruner


def _masks(pruner):
    return [pruner.mask_of(m).bool() for m in pruner.layers]


@pytest.mark.parametrize("amount", [0.3, 0.9, 0.99])
def test_global_magnitude_matches_torch_global_unstructured(amount):
    ours, ref = mlp(), mlp()
    ref.load_state_dict(ours.state_dict())
    pruner = _pruned(ours, sparsity=amount, scope="global")
    tprune.global_unstructured([(m, "weight") for m in _weights(ref)], pruning_method=tprune.L1Unstructured,
                               amount=amount)
    for mine, theirs in zip(_masks(pruner), [m.weight_mask.bool() for m in _weights(ref)]):
        assert torch.equal(mine, theirs)


@pytest.mark.parametrize("name", ["mlp", "cnn1d", "cnn2d"])
def test_layer_magnitude_matches_torch_l1_unstructured(name):
    ours = MODELS[name][0]()
    ref = copy.deepcopy(ours)
    pruner = _pruned(ours, sparsity=0.6, scope="layer")
    for mine, m in zip(_masks(pruner), _weights(ref)):
        tprune.l1_unstructured(m, "weight", amount=0.6)
        assert torch.equal(mine, m.weight_mask.bool())


def test_structured_layer_scope_matches_torch_ln_structured():
    ours = mlp()
    ref = copy.deepcopy(ours)
    pruner = _pruned(ours, sparsity=0.5, scope="layer", structured=True)
    for keep, m in zip(pruner.channel_keep, _weights(ref)[:-1]):
        tprune.ln_structured(m, "weight", amount=0.5, n=1, dim=0)
        assert torch.equal(keep, m.weight_mask.bool().all(dim=1))


def test_threshold_prunes_below_threshold_times_layer_mean():
    model = mlp()
    before = [m.weight.detach().abs().clone() for m in _weights(model)]
    pruner = _pruned(model, threshold=0.8, scope="layer")
    for w, mask in zip(before, _masks(pruner)):
        assert torch.equal(mask, w >= 0.8 * w.mean())


@pytest.mark.parametrize("method", ["gradient", "taylor"])
def test_gradient_importance_is_accumulated_over_batches(method):
    model, ref = mlp(32), mlp(32)
    ref.load_state_dict(model.state_dict())
    pruner = Pruner(model, PruningConfig(method=method, sparsity=0.7, scope="layer"))
    pruner.attach()
    expected = [torch.zeros_like(m.weight) for m in _weights(ref)]
    for _ in range(3):
        x, y = torch.randn(16, 64), torch.randint(0, 10, (16,))
        nn.functional.cross_entropy(model(x), y).backward()
        pruner.accumulate()
        nn.functional.cross_entropy(ref(x), y).backward()
        for acc, m in zip(expected, _weights(ref)):
            acc += m.weight.grad.square() if method == "gradient" else (m.weight.grad * m.weight).abs()
            m.weight.grad = None
        model.zero_grad()
    for acc, got in zip(expected, pruner.importance):
        torch.testing.assert_close(got, acc)
    pruner.update()
    for acc, mask in zip(expected, _masks(pruner)):
        k = round(0.7 * acc.numel())
        assert torch.equal(~mask.reshape(-1), torch.isin(torch.arange(acc.numel()), acc.reshape(-1).topk(k, largest=False).indices))


@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2),
    lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-2),
    lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
], ids=["sgd_momentum_wd", "adam_wd", "adamw"])
def test_pruned_weights_stay_exactly_zero_through_optimizer_steps(make_opt):
    model = mlp(64)
    opt = make_opt(model.parameters())
    for _ in range(5):  # momentum/Adam state built up *before* pruning
        nn.functional.cross_entropy(model(torch.randn(32, 64)), torch.randint(0, 10, (32,))).backward()
        opt.step()
        opt.zero_grad()
    pruner = _pruned(model, sparsity=0.8)
    masks = _masks(pruner)
    for _ in range(40):  # the loop's calls, as CompressionHooks makes them
        nn.functional.cross_entropy(model(torch.randn(32, 64)), torch.randint(0, 10, (32,))).backward()
        opt.step()
        opt.zero_grad()
        pruner.apply_()
        for m, mask in zip(_weights(model), masks):  # every forward sees exact zeros
            assert (m.weight[~mask] == 0).all()
    for m, mask in zip(_weights(model), masks):
        assert (m.weight[~mask] == 0).all()
        assert (m.weight[mask] != 0).float().mean() > 0.99
    assert pruner.sparsity() == pytest.approx(0.8, abs=1e-4)


@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2),
    lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-2),
], ids=["sgd_nesterov_wd", "adam_wd"])
def test_in_place_masks_train_like_torch_prune_reparametrization(make_opt):
    """Reference: torch.nn.utils.prune recomputes weight = weight_orig * mask in every forward.
    Our in-place masks must give the same effective weights step after step."""
    ours, ref = mlp(64), mlp(64)
    ref.load_state_dict(ours.state_dict())
    opt_ours, opt_ref = make_opt(ours.parameters()), make_opt(ref.parameters())
    batches = [(torch.randn(32, 64), torch.randint(0, 10, (32,))) for _ in range(25)]
    for i, (x, y) in enumerate(batches):
        if i == 5:  # prune after some optimizer state has built up
            pruner = _pruned(ours, sparsity=0.75, scope="global")
            for m, mask in zip(_weights(ref), _masks(pruner)):
                tprune.custom_from_mask(m, "weight", mask)  # weight_orig: the same Parameter object
        for model, opt in ((ours, opt_ours), (ref, opt_ref)):
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad()
            if model is ours and i >= 5:
                pruner.apply_()
        if i < 5:
            continue
        for mine, theirs in zip(_weights(ours), _weights(ref)):  # theirs.weight is only refreshed by a forward
            torch.testing.assert_close(mine.weight, theirs.weight_orig * theirs.weight_mask, rtol=1e-5, atol=1e-6)


def test_cubic_schedule_known_points():
    s = lambda t: cubic_sparsity(t, initial=0.1, final=0.9, start_step=100, end_step=300)  # noqa: E731
    assert s(0) == pytest.approx(0.1) and s(100) == pytest.approx(0.1)
    assert s(200) == pytest.approx(0.9 + (0.1 - 0.9) * 0.5**3)  # 0.8
    assert s(150) == pytest.approx(0.9 - 0.8 * 0.75**3)
    assert s(300) == pytest.approx(0.9) and s(10_000) == pytest.approx(0.9)
    values = [s(t) for t in range(0, 400, 10)]
    assert values == sorted(values)


@pytest.mark.parametrize("name", ["mlp", "cnn1d", "cnn2d"])
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_structured_removal_matches_masked_model(name, scope):
    build, shape = MODELS[name]
    model = build()
    # train-mode BN once so its statistics are not the defaults
    model(torch.randn(64, *shape))
    model.eval()
    pruner = _pruned(model, sparsity=0.5, scope=scope, structured=True)
    x = torch.randn(16, *shape)
    masked = model(x).detach()
    before = [m.weight.shape for m in _weights(model)]
    pruner.make_permanent(model)
    after = [m.weight.shape for m in _weights(model)]
    torch.testing.assert_close(model(x), masked, rtol=1e-5, atol=1e-5)
    assert after[-1][0] == 10  # the classifier keeps every class
    kept = [int(k.sum()) for k in pruner.channel_keep]
    assert [a[0] for a in after[:-1]] == kept
    assert sum(map(torch.Size.numel, after)) < 0.6 * sum(map(torch.Size.numel, before))
    if scope == "layer":
        assert kept == [c[0] - round(0.5 * c[0]) for c in before[:-1]]


def test_structured_rejects_unsupported_layers():
    with pytest.raises(TypeError, match="LSTM"):
        Pruner(nn.Sequential(nn.Linear(4, 4), nn.LSTM(4, 4), nn.Linear(4, 2)), PruningConfig(sparsity=0.5, structured=True))
    with pytest.raises(ValueError, match="Sigmoid"):
        Pruner(nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 2)), PruningConfig(sparsity=0.5, structured=True))
    with pytest.raises(TypeError, match="Sequential"):
        Pruner(nn.ModuleList([nn.Linear(4, 4)]), PruningConfig(sparsity=0.5, structured=True))


def test_prune_one_shot_is_permanent_and_smaller():
    model = cnn1d()
    prune_(model, PruningConfig(sparsity=0.5, structured=True, scope="layer"))
    assert not any(hasattr(m, "parametrizations") for m in model.modules())
    assert model(torch.randn(2, 1, 40)).shape == (2, 10)
    assert model[0].out_channels == 4 and model[1].num_features == 4 and model[4].in_channels == 4


@pytest.mark.parametrize("k", [0, 1, 3, 5, 9, 12])
def test_smallest_breaks_ties_like_topk(k):
    from orchestrator.compress.prune import _smallest

    scores = torch.tensor([2.0, -torch.inf, 1.0, 1.0, 3.0, 1.0, -torch.inf, 2.0, 0.5, 2.0, 1.0, 4.0])
    expected = torch.ones(12, dtype=torch.bool)
    if k:
        expected[torch.topk(scores, k=k, largest=False).indices] = False
    assert torch.equal(_smallest(scores, k), expected)


def test_numpy_and_torch_thresholds_agree():
    from orchestrator.compress.prune import _threshold_numpy, _threshold_torch

    scores = torch.rand(5000, generator=torch.Generator().manual_seed(3))
    scores[::3] = -torch.inf  # 1667 already pruned
    for k in (1, 1666, 1667, 1668, 3000, 4999):
        numpy_value, torch_value = _threshold_numpy(scores, k), _threshold_torch(scores, k)
        assert (numpy_value is None) == (torch_value is None) == (k <= 1667)
        if numpy_value is not None:
            assert numpy_value == float(torch_value)
