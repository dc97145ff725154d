"""Pipeline parallelism for ``nn.Sequential`` models, on ``torch.distributed.pipelining``.

Each rank of the process group holds one contiguous slice of the model (a stage). Every rank
calls the same methods with the same whole batch; the first stage reads ``x``, the last
stage reads ``y`` and computes the loss, and the results are broadcast from the last stage
so that every rank returns the same loss and logits (and so can compute and report the same
metrics). No Ray here: the caller has already initialised ``torch.distributed``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe
from torch.func import functional_call

SCHEDULES = {"gpipe": ScheduleGPipe, "1f1b": Schedule1F1B}


class PipelineError(ValueError):
    """The model, the stage count or the schedule settings cannot form a pipeline."""


def _starts_block(layer: nn.Module) -> bool:
    # A weight matrix or kernel (Linear, Conv, Embedding): norms, with 1-D parameters only,
    # stay with the layer they normalise, so a cut never falls between a conv and its norm.
    return any(p.dim() >= 2 for p in layer.parameters())


def _blocks(model: nn.Module) -> list[list[tuple[str, nn.Module]]]:
    """Group the layers: each block is one layer with a weight matrix or kernel plus the
    layers after it that have none (norms, activations, pooling, Flatten); leading ones
    join the first block."""
    if not isinstance(model, nn.Sequential):
        raise PipelineError(
            f"pipeline parallelism needs an nn.Sequential model, but got {type(model).__name__}; "
            "build it as nn.Sequential(...) or use the 'ddp' or 'fsdp' strategy."
        )
    blocks: list[list[tuple[str, nn.Module]]] = []
    leading: list[tuple[str, nn.Module]] = []
    for name, layer in model.named_children():
        if _starts_block(layer):
            blocks.append(leading + [(name, layer)])
            leading = []
        elif blocks:
            blocks[-1].append((name, layer))
        else:
            leading.append((name, layer))
    return blocks


def _balanced_cuts(costs: list[int], num_stages: int) -> list[int]:
    """Start index of each part of the contiguous split of ``costs`` into ``num_stages``
    non-empty parts whose largest sum is smallest (exact DP, O(n² k), n = block count).
    Among equally good splits the earliest stages take as few blocks as possible."""
    n = len(costs)
    prefix = [0]
    for c in costs:
        prefix.append(prefix[-1] + c)
    inf = float("inf")
    # best[s][i]: smallest possible largest part when blocks i.. form the last s parts.
    best = [[inf] * (n + 1) for _ in range(num_stages + 1)]
    best[0][n] = 0
    for s in range(1, num_stages + 1):
        for i in range(n - s, -1, -1):
            for j in range(i + 1, n - s + 2):
                best[s][i] = min(best[s][i], max(prefix[j] - prefix[i], best[s - 1][j]))
    cuts, i = [], 0
    for s in range(num_stages, 0, -1):
        cuts.append(i)
        i = next(j for j in range(i + 1, n - s + 2)
                 if max(prefix[j] - prefix[i], best[s - 1][j]) == best[s][i])
    return cuts


def split_stages(model: nn.Module, num_stages: int) -> list[nn.Sequential]:
    """Split an ``nn.Sequential`` into ``num_stages`` contiguous ``nn.Sequential`` stages.

    Rule: layers are grouped into blocks (a layer with a weight matrix or kernel plus the
    norms, activations and pooling after it), and the blocks are cut into contiguous stages
    so that the largest stage parameter count is as small as possible.
    Stages keep the original child names, so their ``state_dict`` keys are the model's
    keys and merging the stages' state dicts gives the model's state dict. The layers are
    shared with ``model``, not copied.
    """
    if not isinstance(num_stages, int) or num_stages < 1:
        raise PipelineError(f"num_stages must be a positive integer, but got {num_stages!r}.")
    blocks = _blocks(model)
    if len(blocks) < num_stages:
        raise PipelineError(
            f"cannot split the model into {num_stages} stages: it has only {len(blocks)} "
            "layers with weights (Linear, Conv, ...) and every stage needs one; use fewer "
            "pipeline workers or a deeper model."
        )
    costs = [sum(p.numel() for _, layer in b for p in layer.parameters()) for b in blocks]
    cuts = _balanced_cuts(costs, num_stages) + [len(blocks)]
    return [
        nn.Sequential(OrderedDict(kv for b in blocks[a:z] for kv in b))
        for a, z in zip(cuts[:-1], cuts[1:])
    ]


def stage_io_shapes(
    stages: list[nn.Module], sample: torch.Tensor
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(input, output) meta tensors of every stage for a batch shaped like ``sample``.

    Runs the stages on the meta device (parameters and buffers replaced by meta tensors), so
    it allocates nothing and touches no real weights; every rank can call it locally."""
    x = torch.empty_like(sample, device="meta")
    shapes = []
    for stage in stages:
        state = {k: torch.empty_like(v, device="meta")
                 for k, v in [*stage.named_parameters(), *stage.named_buffers()]}
        with torch.no_grad():
            y = functional_call(stage, state, (x,))
        shapes.append((x, y))
        x = y
    return shapes


def _check_settings(schedule: str, n_microbatches: int, num_stages: int) -> None:
    if schedule not in SCHEDULES:
        raise PipelineError(
            f"schedule must be one of {sorted(SCHEDULES)}, but got {schedule!r}.")
    if not isinstance(n_microbatches, int) or n_microbatches < 1:
        raise PipelineError(
            f"n_microbatches must be a positive integer, but got {n_microbatches!r}.")
    if schedule == "1f1b" and n_microbatches < num_stages:
        raise PipelineError(
            f"schedule '1f1b' needs n_microbatches >= the number of stages, but got "
            f"{n_microbatches=} for {num_stages} stages; raise n_microbatches or use 'gpipe'."
        )


def _default_device(group: dist.ProcessGroup) -> torch.device:
    # nccl works on CUDA tensors only; Ray Train sets each worker's current CUDA device.
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class PipelineRunner:
    """One pipeline stage per rank of ``group``; training steps and evaluation forwards.

    Every rank builds the same full ``model`` (same config and seed), constructs the runner
    with the same arguments and then calls ``train_step`` / ``eval_step`` with the same
    whole batch. ``self.module`` is this rank's stage: build the optimizer over its
    parameters. A batch must split into ``n_microbatches`` equal microbatches (equal sizes
    keep the averaged gradient equal to the whole-batch gradient); each new batch shape
    builds its stage and schedule once and reuses them after. ``device`` defaults to the
    current CUDA device under nccl and to the CPU otherwise.

    ``loss_fn(output, target)`` runs on the last stage once per microbatch and must return
    the microbatch's mean loss. BatchNorm in training mode normalises each microbatch on
    its own, so such a model does not train exactly as it would on whole batches.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        *,
        n_microbatches: int = 4,
        schedule: str = "gpipe",
        device: torch.device | str | None = None,
        group: dist.ProcessGroup | None = None,
    ) -> None:
        if not dist.is_initialized():
            raise RuntimeError("PipelineRunner needs torch.distributed initialised first.")
        self.group = group if group is not None else dist.group.WORLD
        self.num_stages = dist.get_world_size(self.group)
        self.stage_index = dist.get_rank(self.group)
        _check_settings(schedule, n_microbatches, self.num_stages)
        self.device = torch.device(device) if device is not None else _default_device(self.group)
        self.loss_fn, self.n_microbatches, self.schedule = loss_fn, n_microbatches, schedule
        self._stages = split_stages(model, self.num_stages)
        self.module = self._stages[self.stage_index].to(self.device)
        self.is_first = self.stage_index == 0
        self.is_last = self.stage_index == self.num_stages - 1
        self._last_rank = dist.get_global_rank(self.group, self.num_stages - 1)
        self._built: dict[tuple, tuple] = {}

    def _build(self, x: torch.Tensor, train: bool) -> tuple:
        key = (tuple(x.shape), x.dtype, train)
        if key not in self._built:
            rows, m = x.shape[0], self.n_microbatches
            if rows % m:
                raise PipelineError(
                    f"a batch of {rows} rows cannot be split into {m} equal microbatches; "
                    "use a batch size divisible by n_microbatches and drop_last=True."
                )
            io = stage_io_shapes(self._stages, x[: rows // m])
            inp, out = io[self.stage_index]
            # With shapes given up front (static mode) the stage trusts their requires_grad
            # to decide which gradients to send and receive: set it as training will have it.
            inp = inp.requires_grad_(train and not self.is_first and inp.is_floating_point())
            out = out.requires_grad_(train and out.is_floating_point())
            stage = PipelineStage(self.module, self.stage_index, self.num_stages, self.device,
                                  input_args=inp, output_args=out, group=self.group)
            sched = SCHEDULES[self.schedule](stage, m, loss_fn=self.loss_fn if train else None)
            self._built[key] = (sched, io[-1][1])
        return self._built[key]

    def _broadcast(self, value: torch.Tensor | None, shape, dtype) -> torch.Tensor:
        buf = value.detach().to(self.device, dtype) if self.is_last else \
            torch.empty(shape, dtype=dtype, device=self.device)
        dist.broadcast(buf, src=self._last_rank, group=self.group)
        return buf

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Forward and backward of one batch; gradients accumulate in ``self.module``
        (zero them and step the optimizer yourself). Returns the batch's mean loss, a
        float32 scalar, identical on every rank."""
        sched, _ = self._build(x, train=True)
        losses: list[torch.Tensor] = []
        if self.is_first:
            sched.step(x.to(self.device), target=y.to(self.device) if self.is_last else None,
                       losses=losses if self.is_last else None, return_outputs=False)
        elif self.is_last:
            sched.step(target=y.to(self.device), losses=losses, return_outputs=False)
        else:
            sched.step(return_outputs=False)
        # The mean of equal-sized microbatch means is the whole-batch mean.
        loss = torch.stack([l.detach().float() for l in losses]).mean() if self.is_last else None
        return self._broadcast(loss, (), torch.float32)

    @torch.no_grad()
    def eval_step(self, x: torch.Tensor) -> torch.Tensor:
        """Forward only; returns the model's output for ``x`` on every rank."""
        sched, out_meta = self._build(x, train=False)
        out = sched.step(x.to(self.device)) if self.is_first else sched.step()
        shape = (x.shape[0], *out_meta.shape[1:])
        return self._broadcast(out if self.is_last else None, shape, out_meta.dtype)

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """The whole model's state dict (original key names, CPU tensors) on the group's
        first rank, ``{}`` on the others. Collective: every rank must call it."""
        local = {k: v.detach().cpu() for k, v in self.module.state_dict().items()}
        first = dist.get_global_rank(self.group, 0)
        parts = [None] * self.num_stages if self.is_first else None
        dist.gather_object(local, parts, dst=first, group=self.group)
        return {k: v for part in parts for k, v in part.items()} if self.is_first else {}
