"""Cost of one compressed training step relative to a dense one (target <= 1.3x).

Dense: forward, cross-entropy, backward, Adam step. Compressed: the same through
CompressionHooks with gradual magnitude pruning to 90% (masks as parametrizations, updated
every 10 steps), 8-bit per-channel QAT weights, and KD (teacher logits looked up by row);
optionally also fake-quantized activations. Timings interleave dense and compressed rounds
and report medians, on one intra-op thread (the box is shared).

    cd /work/wt-compress && PYTHONPATH=. /work/main/.venv/bin/python bench/compress_step_cost.py
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from orchestrator.compress import CompressionConfig, CompressionHooks
from orchestrator.train.hooks import TrainHooks

STEPS, ROUNDS = 20, 7


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, 10))


def cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 64), nn.ReLU(), nn.Linear(64, 10),
    )


def config(activations: bool) -> CompressionConfig:
    return CompressionConfig(
        pruning={"sparsity": 0.9, "schedule": "gradual", "frequency": 10},
        quantization={"bits": 8, "granularity": "per_channel", "activations": activations},
        distillation={"alpha": 0.5, "temperature": 4.0},
    )


def stepper(build, hooks: TrainHooks, shape, batch: int):
    """A closure running one training step of the loop in train/hooks.py."""
    torch.manual_seed(0)
    model = hooks.prepare(build())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y, idx = torch.randn(batch, *shape), torch.randint(0, 10, (batch,)), torch.arange(batch)

    def step(i: int) -> None:
        loss = hooks.loss(model(x), y, idx)
        loss.backward()
        hooks.after_backward(model, i)
        opt.step()
        opt.zero_grad(set_to_none=True)
        hooks.after_optimizer_step(model, i)

    for i in range(3):  # warm-up
        step(i)
    return step


def medians(steppers: dict) -> dict[str, float]:
    """Median seconds per step, rounds interleaved so that load drifts hit all variants alike."""
    times: dict[str, list[float]] = {k: [] for k in steppers}
    for _ in range(ROUNDS):
        for name, step in steppers.items():
            t = time.thread_time()
            for i in range(STEPS):
                step(i)
            times[name].append((time.thread_time() - t) / STEPS)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    torch.set_num_threads(1)
    teacher = torch.randn(1024, 10)
    run = dict(epochs=10, steps_per_epoch=1000)
    print(f"{'model':5} {'batch':>5} {'dense ms':>9} {'comp ms':>8} {'ratio':>6} {'+act fq ms':>11} {'ratio':>6}")
    for name, build, shape in (("mlp", mlp, (64,)), ("cnn", cnn, (3, 32, 32))):
        for batch in (64, 128):
            t = medians({
                "dense": stepper(build, TrainHooks(), shape, batch),
                "comp": stepper(build, CompressionHooks(config(False), teacher_logits=teacher, **run), shape, batch),
                "act": stepper(build, CompressionHooks(config(True), teacher_logits=teacher, **run), shape, batch),
            })
            print(f"{name:5} {batch:5d} {1e3 * t['dense']:9.3f} {1e3 * t['comp']:8.3f} {t['comp'] / t['dense']:6.2f} "
                  f"{1e3 * t['act']:11.3f} {t['act'] / t['dense']:6.2f}")


if __name__ == "__main__":
    main()
