"""lr_at against PyTorch's own schedulers, and linear warmup at known points."""

from __future__ import annotations

import math

import pytest
import torch
from torch.optim import lr_scheduler

from orchestrator.recipe.schema import LRScheduleConfig
from orchestrator.train.schedules import lr_at

BASE_LR = 0.1
EPOCHS = 12
STEPS_PER_EPOCH = 7


def _optimizer(lr: float = BASE_LR) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def _torch_lrs(make_scheduler, n: int) -> list[float]:
    """The learning rate torch applies before each of n scheduler steps."""
    opt = _optimizer()
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


@pytest.mark.parametrize("decay", [0.95, 0.7, 1.0])
def test_exponential_matches_exponential_lr_per_epoch(decay):
    schedule = LRScheduleConfig(name="exponential", decay=decay)
    expected = _torch_lrs(lambda o: lr_scheduler.ExponentialLR(o, gamma=decay), EPOCHS)
    for epoch, want in enumerate(expected):
        for step in range(STEPS_PER_EPOCH):  # constant within the epoch
            got = lr_at(schedule, BASE_LR, epoch + step / STEPS_PER_EPOCH, EPOCHS)
            assert got == pytest.approx(want, rel=1e-9), (epoch, step)


@pytest.mark.parametrize(("step_epochs", "gamma"), [(3, 0.1), (1, 0.5), (5, 0.9), (20, 0.1)])
def test_step_matches_step_lr(step_epochs, gamma):
    schedule = LRScheduleConfig(name="step", step_epochs=step_epochs, gamma=gamma)
    expected = _torch_lrs(lambda o: lr_scheduler.StepLR(o, step_size=step_epochs, gamma=gamma), EPOCHS)
    for epoch, want in enumerate(expected):
        for step in range(STEPS_PER_EPOCH):
            got = lr_at(schedule, BASE_LR, epoch + step / STEPS_PER_EPOCH, EPOCHS)
            assert got == pytest.approx(want, rel=1e-9), (epoch, step)


@pytest.mark.parametrize("min_lr_ratio", [0.0, 0.1, 0.5])
def test_cosine_matches_cosine_annealing_per_step(min_lr_ratio):
    schedule = LRScheduleConfig(name="cosine", min_lr_ratio=min_lr_ratio)
    total = EPOCHS * STEPS_PER_EPOCH
    expected = _torch_lrs(
        lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=total, eta_min=min_lr_ratio * BASE_LR), total + 1)
    for k, want in enumerate(expected):
        got = lr_at(schedule, BASE_LR, k / STEPS_PER_EPOCH, EPOCHS)
        assert got == pytest.approx(want, rel=1e-6, abs=1e-12), k
    # end points: η0 at the start, the floor at the end (and it stays there)
    assert lr_at(schedule, BASE_LR, 0, EPOCHS) == pytest.approx(BASE_LR)
    assert lr_at(schedule, BASE_LR, EPOCHS, EPOCHS) == pytest.approx(min_lr_ratio * BASE_LR, abs=1e-12)
    assert lr_at(schedule, BASE_LR, EPOCHS + 3, EPOCHS) == pytest.approx(min_lr_ratio * BASE_LR, abs=1e-12)


def test_constant():
    schedule = LRScheduleConfig(name="constant")
    expected = _torch_lrs(lambda o: lr_scheduler.ConstantLR(o, factor=1.0, total_iters=0), EPOCHS)
    for epoch, want in enumerate(expected):
        assert lr_at(schedule, BASE_LR, epoch + 0.5, EPOCHS) == want == BASE_LR


@pytest.mark.parametrize("name", ["constant", "exponential", "step", "cosine"])
def test_linear_warmup_known_points(name):
    warmup = 2.0
    schedule = LRScheduleConfig(name=name, warmup_epochs=warmup, decay=0.5, step_epochs=1, gamma=0.5)
    assert lr_at(schedule, BASE_LR, 0.0, EPOCHS) == 0.0
    assert lr_at(schedule, BASE_LR, 0.5, EPOCHS) == pytest.approx(BASE_LR * 0.25)
    assert lr_at(schedule, BASE_LR, 1.0, EPOCHS) == pytest.approx(BASE_LR * 0.5)
    assert lr_at(schedule, BASE_LR, 1.5, EPOCHS) == pytest.approx(BASE_LR * 0.75)
    # the schedule proper starts at η0 when warmup ends
    assert lr_at(schedule, BASE_LR, warmup, EPOCHS) == pytest.approx(BASE_LR)


def test_warmup_then_exponential_counts_epochs_from_the_end_of_warmup():
    schedule = LRScheduleConfig(name="exponential", decay=0.5, warmup_epochs=1)
    assert lr_at(schedule, BASE_LR, 1.5, EPOCHS) == pytest.approx(BASE_LR)
    assert lr_at(schedule, BASE_LR, 2.0, EPOCHS) == pytest.approx(BASE_LR * 0.5)
    assert lr_at(schedule, BASE_LR, 4.0, EPOCHS) == pytest.approx(BASE_LR * 0.125)


def test_warmup_then_cosine_spans_the_remaining_epochs():
    schedule = LRScheduleConfig(name="cosine", warmup_epochs=2, min_lr_ratio=0.1)
    floor = 0.1 * BASE_LR
    # halfway through the cosine part (epoch 2 + (12-2)/2 = 7): the midpoint of η0 and floor
    assert lr_at(schedule, BASE_LR, 7.0, EPOCHS) == pytest.approx((BASE_LR + floor) / 2)
    assert lr_at(schedule, BASE_LR, EPOCHS, EPOCHS) == pytest.approx(floor)
    quarter = 2 + 10 / 4
    assert lr_at(schedule, BASE_LR, quarter, EPOCHS) == pytest.approx(
        floor + 0.5 * (BASE_LR - floor) * (1 + math.cos(math.pi / 4)))


def test_warmup_rises_monotonically_and_never_exceeds_base():
    schedule = LRScheduleConfig(name="cosine", warmup_epochs=3)
    values = [lr_at(schedule, BASE_LR, k / 10, EPOCHS) for k in range(0, 31)]
    assert values == sorted(values)
    assert max(values) == pytest.approx(BASE_LR)
