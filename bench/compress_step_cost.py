"""Cost of one compressed training step relative to a dense one (target <= 1.3x).

Measured on the shipped compression recipes, with their own model, batch size, optimizer and
pruning schedule (gradual magnitude pruning, mask update every ``frequency`` steps), at the
hardest point of their grid (highest sparsity, fewest bits). Each recipe is timed as:

- dense: forward, cross-entropy, backward, optimizer step (``TrainHooks``);
- masks+fq ramp: pruning masks + QAT weights, while the cubic schedule is still updating masks;
- masks+fq after: the same after the last mask update (the fine-tuning epochs);
- +kd: masks + QAT + distillation (teacher logits looked up by row), during the ramp;
- +act fq: all of it plus fake-quantized activations, during the ramp.

Timings interleave the variants round by round and report medians of CPU time of this thread
(on one intra-op thread), so load from other processes hits all variants alike.

    .venv/bin/python bench/compress_step_cost.py
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from orchestrator.compress import CompressionConfig, CompressionHooks
from orchestrator.data import load_splits
from orchestrator.models import build_model
from orchestrator.recipe import load_recipe
from orchestrator.train.hooks import TrainHooks
from orchestrator.train.loop import build_optimizer

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ("digits_mlp_compress", "mnist1d_cnn_compress")
STEPS, ROUNDS = 20, 9
HARDEST = {"compression.pruning.sparsity": max, "compression.quantization.bits": min,
           "compression.distillation.alpha": max}


def hardest_point(template) -> dict:
    """The grid corner that compresses most: highest sparsity, fewest bits, most KD."""
    return {leaf.path: HARDEST.get(leaf.path, lambda c: c[0])(leaf.candidates()) for leaf in template.leaves}


def variant(config: CompressionConfig, *, kd: bool, activations: bool) -> CompressionConfig:
    quantization = config.quantization.model_copy(update={"activations": activations})
    return config.model_copy(update={"quantization": quantization, "distillation": config.distillation if kd else None})


def stepper(recipe, splits, hooks: TrainHooks, first_step: int):
    """A closure running one training step as train/loop.py does; the hooks' schedule is put
    at ``first_step`` (inside or after the pruning ramp)."""
    model = hooks.prepare(build_model(recipe.model, splits.input_shape, splits.num_classes, seed=0))
    opt = build_optimizer(recipe.train, model.parameters())
    batch = recipe.train.batch_size
    rows = torch.arange(batch)
    x, y = splits.train_x[rows], splits.train_y[rows]
    if isinstance(hooks, CompressionHooks):
        hooks.step = first_step - 1
        hooks.after_optimizer_step(model, first_step - 1)  # masks and quantized weights as at that step

    def step(i: int) -> None:
        opt.zero_grad(set_to_none=True)
        loss = hooks.loss(model(x), y, rows)
        loss.backward()
        hooks.after_backward(model, i)
        opt.step()
        hooks.after_optimizer_step(model, i)

    for i in range(3):  # warm-up
        step(i)
    return step


def medians(steppers: dict) -> dict[str, float]:
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
    header = ("recipe", "model", "opt", "dense ms", "masks+fq ramp", "masks+fq after", "+kd ramp", "+act fq ramp")
    print(" | ".join(header))
    for name in RECIPES:
        template = load_recipe(ROOT / "recipes" / f"{name}.yaml")
        point = hardest_point(template)
        recipe = template.resolve(point)
        splits = load_splits(recipe.data)
        steps_per_epoch = -(-len(splits.train_y) // recipe.train.batch_size)
        teacher = torch.randn(len(splits.train_y), splits.num_classes)
        base = recipe.compression
        pruning = base.pruning
        ramp_end = pruning.end_epoch * steps_per_epoch
        ramp_step = (pruning.start_epoch * steps_per_epoch + ramp_end) // 2

        def hooks(config):
            return CompressionHooks(config, epochs=recipe.train.epochs, steps_per_epoch=steps_per_epoch,
                                    teacher_logits=teacher)

        t = medians({
            "dense": stepper(recipe, splits, TrainHooks(), 0),
            "ramp": stepper(recipe, splits, hooks(variant(base, kd=False, activations=False)), ramp_step),
            "after": stepper(recipe, splits, hooks(variant(base, kd=False, activations=False)), ramp_end + 1),
            "kd": stepper(recipe, splits, hooks(variant(base, kd=True, activations=False)), ramp_step),
            "act": stepper(recipe, splits, hooks(variant(base, kd=True, activations=True)), ramp_step),
        })
        dense = t["dense"]
        cells = [f"{t[k] / dense:.2f}x ({1e3 * t[k]:.2f} ms)" for k in ("ramp", "after", "kd", "act")]
        print(" | ".join([name, recipe.model.name, recipe.train.optimizer.name, f"{1e3 * dense:.2f}", *cells]))
        print(f"    grid point: {point}; mask update every {pruning.frequency} steps until step {ramp_end}")


if __name__ == "__main__":
    main()
