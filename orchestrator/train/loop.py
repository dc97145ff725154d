"""The training loop: plain PyTorch, read top to bottom, no Ray and no orchestration.

The same function runs in a Tune trial process (one worker) and in every Ray Train worker
(data parallel): with ``world_size > 1`` each rank takes its share of every global batch and
evaluation counts are summed across ranks, so the reported metrics are the same either way.
Compression plugs in through ``TrainHooks``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.distributed as dist
from torch import nn

from orchestrator.data import Splits
from orchestrator.models import build_model, dense_fp32_bytes
from orchestrator.recipe.schema import Recipe, TrainConfig
from orchestrator.train.engines import DataParallelEngine, weight_stats  # noqa: F401 (re-exported)
from orchestrator.train.hooks import TrainHooks
from orchestrator.train.schedules import lr_at

# report(metrics, model, final): called once per epoch on every rank; ``final`` on the last.
Reporter = Callable[[dict, nn.Module, bool], None]


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict] = field(default_factory=list)


def build_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    opt = cfg.optimizer
    if opt.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=opt.momentum, nesterov=opt.nesterov, weight_decay=opt.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=opt.weight_decay)


def _all_sum(values: list[float], world_size: int) -> list[float]:
    if world_size == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


@torch.no_grad()
def evaluate(model: nn.Module | Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor,
             rank: int = 0, world_size: int = 1, batch_size: int = 1024,
             device: torch.device | None = None) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over all of ``x``; each rank scores every world_size-th
    row. Every rank runs the same number of forwards (some may be empty), since a sharded
    model's forward is a collective."""
    module = model if isinstance(model, nn.Module) else None
    was_training = module.training if module is not None else False
    if module is not None:
        module.eval()
    per_rank = math.ceil(len(y) / world_size)
    x, y = x[rank::world_size], y[rank::world_size]
    loss_sum, correct = 0.0, 0.0
    for start in range(0, max(per_rank, 1), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        if device is not None:
            xb, yb = xb.to(device), yb.to(device)
        logits = model(xb)
        loss_sum += nn.functional.cross_entropy(logits, yb, reduction="sum").item() if len(yb) else 0.0
        correct += (logits.argmax(dim=1) == yb).sum().item()
    loss_sum, correct, count = _all_sum([loss_sum, correct, float(len(y))], world_size)
    if module is not None:
        module.train(was_training)
    return loss_sum / max(count, 1), correct / max(count, 1)


def train_model(recipe: Recipe, splits: Splits, report: Reporter, *, hooks: TrainHooks | None = None,
                initial_state: dict | None = None, epochs: int | None = None, rank: int = 0,
                world_size: int = 1, wrap: Callable[[nn.Module], nn.Module] | None = None,
                device: torch.device | None = None,
                make_engine: Callable[[nn.Module], object] | None = None,
                checkpoint: Callable[[dict], None] | None = None, checkpoint_every: int = 1,
                resume: dict | None = None) -> TrainResult:
    """Train ``recipe.model`` on ``splits`` and call ``report`` after every epoch.

    ``wrap`` (e.g. DDP) or ``make_engine`` (FSDP, pipeline: see engines.py) choose how the
    model is run across ``world_size`` ranks; by default it runs as it is.

    ``checkpoint(state)`` receives the whole training state every ``checkpoint_every``
    epochs (not after the last: training is over), just before that epoch's ``report``; ``resume`` is such a
    state, from which training continues as if it had never stopped."""
    cfg = recipe.train
    hooks = hooks or TrainHooks()
    epochs = epochs or cfg.epochs
    model = build_model(recipe.model, splits.input_shape, splits.num_classes, seed=cfg.seed)
    if initial_state is not None:
        model.load_state_dict(initial_state)
    dense_bytes = dense_fp32_bytes(model)  # before prepare: the reference is the dense model
    if device is not None:  # first: compression state (masks, QAT masters) is made beside the weights
        model.to(device)
    model = hooks.prepare(model)
    if device is not None:  # and modules the hooks inserted (activation quantizers)
        model.to(device)
    engine = make_engine(model) if make_engine else DataParallelEngine(model, wrap)
    optimizer = build_optimizer(cfg, engine.parameters())
    # Data-parallel ranks split each global batch; pipeline ranks all see the whole batch.
    shard_rank, shard_world = (rank, world_size) if engine.shards_batches else (0, 1)

    n_train = len(splits.train_y)
    steps_per_epoch = math.ceil(n_train / cfg.batch_size)
    history: list[dict] = []
    first_epoch = 0
    if resume is not None:
        engine.load_training_state(resume["model"], resume["optimizer"], optimizer)
        hooks.load_state_dict(resume["hooks"])
        torch.set_rng_state(resume["rng"])
        first_epoch, history = int(resume["epoch"]), list(resume["history"])
    for epoch in range(first_epoch, epochs):
        started = time.perf_counter()
        hooks.start_epoch(model, epoch)
        engine.train_mode(True)
        order = torch.randperm(n_train, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
        loss_sum, seen = 0.0, 0
        for step, batch in enumerate(order.split(cfg.batch_size)):
            if not engine.accepts(len(batch), world_size):
                continue
            lr = lr_at(cfg.lr_schedule, cfg.lr, epoch + step / steps_per_epoch, epochs)
            for group in optimizer.param_groups:
                group["lr"] = lr
            rows = batch[shard_rank::shard_world]
            x, y = splits.train_x[rows], splits.train_y[rows]
            if device is not None:
                x, y = x.to(device), y.to(device)
            optimizer.zero_grad(set_to_none=True)
            # Gradients are averaged across ranks; weighting each rank's mean loss by its share
            # of the global batch makes that average the global batch's gradient, even when
            # the batch does not split evenly.
            weight = len(rows) * shard_world / len(batch)
            loss = engine.forward_backward(x, y, rows, hooks, weight)
            hooks.after_backward(model, epoch * steps_per_epoch + step)
            optimizer.step()
            hooks.after_optimizer_step(model, epoch * steps_per_epoch + step)
            loss_sum += loss * len(rows)
            seen += len(rows)

        final = epoch == epochs - 1
        extra = hooks.end_epoch(model, epoch)
        if final:
            finished = engine.finish(hooks)  # collective for sharded engines
            model = finished if finished is not None else model
        loss_sum, seen = _all_sum([loss_sum, float(seen)], shard_world)
        val_loss, val_acc = evaluate(engine.logits, splits.val_x, splits.val_y, shard_rank, shard_world, device=device)
        _, test_acc = evaluate(engine.logits, splits.test_x, splits.test_y, shard_rank, shard_world, device=device)
        metrics = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(seen, 1),
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "test_accuracy": test_acc,
            "lr": lr_at(cfg.lr_schedule, cfg.lr, epoch, epochs),
            "dense_size_bytes": dense_bytes,
            "epoch_s": time.perf_counter() - started,
            **engine.stats(),
            **extra,
        }
        size = hooks.size_bytes(model)
        if size is not None:
            metrics["size_bytes"] = size
        history.append(metrics)
        if checkpoint is not None and not final and (epoch + 1) % max(checkpoint_every, 1) == 0:
            model_state, optimizer_state = engine.training_state(optimizer)  # collective when sharded
            checkpoint({"epoch": epoch + 1, "model": model_state, "optimizer": optimizer_state,
                        "hooks": hooks.state_dict(), "rng": torch.get_rng_state(), "history": list(history)})
        report(metrics, model, final)
    return TrainResult(model=model, history=history)
