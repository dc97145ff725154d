"""Pruning: importance criteria, masks from a sparsity or a threshold, the cubic schedule.

Masks are parametrizations (``Mask``, like torch.ao.pruning's FakeSparsity): the module's
``weight`` is recomputed as ``original * mask`` at every access, so a pruned weight is exactly 0
in every forward whatever the optimizer does to ``original`` (momentum, weight decay, Adam).
Masks only ever grow: a pruned weight scores -inf and stays pruned at the next update.
"""

from __future__ import annotations

import torch
import torch.nn.utils.parametrize as parametrize
from torch import nn

from orchestrator.compress.config import PruningConfig
from orchestrator.compress.layers import WEIGHT_LAYERS
from orchestrator.compress.structured import Link, input_columns, plan_links, remove_channels


def cubic_sparsity(step: int, initial: float, final: float, start_step: int, end_step: int) -> float:
    """Zhu & Gupta (2017): s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n dt))^3, with
    n dt = end_step - start_step; s_i before start_step, s_f from end_step on."""
    if end_step <= start_step:
        return final if step >= start_step else initial
    progress = min(max((step - start_step) / (end_step - start_step), 0.0), 1.0)
    return final + (initial - final) * (1.0 - progress) ** 3


class Mask(nn.Module):
    """Parametrization ``w -> w * mask`` (mask a float buffer of w's shape, 0 or 1)."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * self.mask


def _mask_of(module: nn.Module, name: str) -> Mask:
    if not parametrize.is_parametrized(module, name):
        mask = Mask(torch.ones_like(getattr(module, name)))
        parametrize.register_parametrization(module, name, mask)
        return mask
    return next(p for p in getattr(module.parametrizations, name) if isinstance(p, Mask))


def _original(module: nn.Module) -> torch.Tensor:
    return module.parametrizations.weight.original


def _smallest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Keep-mask (bool) that drops the k lowest scores (torch.nn.utils.prune's topk rule)."""
    keep = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)
    if k > 0:
        keep[torch.topk(scores.reshape(-1), k=k, largest=False).indices] = False
    return keep.reshape(scores.shape)


def select(scores: list[torch.Tensor], scope: str, sparsity: float | None, threshold: float | None,
           min_keep: int = 0) -> list[torch.Tensor]:
    """Keep-masks for score tensors (pruned entries already at -inf). ``sparsity``: drop
    round(s * n) lowest, over all tensors (global) or per tensor; ``threshold``: drop scores
    below threshold x the mean live score of the tensor (layer) or of all tensors (global).
    ``min_keep`` entries per tensor always survive (structured: never an empty layer)."""
    if threshold is not None:
        live = [s[torch.isfinite(s)] for s in scores]
        if scope == "global":
            cut = threshold * torch.cat(live).mean()
            cuts = [cut] * len(scores)
        else:
            cuts = [threshold * (x.mean() if x.numel() else 0.0) for x in live]
        keeps = [s >= c for s, c in zip(scores, cuts)]
    elif scope == "global":
        flat = torch.cat([s.reshape(-1) for s in scores])
        keep = _smallest(flat, round(sparsity * flat.numel()))
        keeps = list(torch.split(keep, [s.numel() for s in scores]))
        keeps = [k.reshape(s.shape) for k, s in zip(keeps, scores)]
    else:
        keeps = [_smallest(s, round(sparsity * s.numel())) for s in scores]
    return [_ensure(k, s, min_keep) for k, s in zip(keeps, scores)]


def _ensure(keep: torch.Tensor, scores: torch.Tensor, min_keep: int) -> torch.Tensor:
    if int(keep.sum()) >= min_keep:
        return keep
    keep = keep.clone()
    keep.view(-1)[torch.topk(scores.reshape(-1), k=min_keep).indices] = True
    return keep


class Pruner:
    """Holds the masks of one model: ``attach`` -> (``accumulate``) -> ``update`` ... ->
    ``make_permanent``. Unstructured: every Linear/Conv weight. Structured: the output
    channels of every Linear/Conv but the classifier (see ``structured.Link``)."""

    def __init__(self, model: nn.Module, config: PruningConfig):
        self.config = config
        self.layers = [m for m in model.modules() if isinstance(m, WEIGHT_LAYERS)]
        if not self.layers:
            raise ValueError("pruning found no Linear/Conv layer to prune")
        self.links: list[Link] = plan_links(model) if config.structured else []
        if config.structured and not self.links:
            raise ValueError("structured pruning needs at least two Linear/Conv layers (the last is the classifier)")
        self.channel_keep = [torch.ones(link.layer.weight.shape[0], dtype=torch.bool, device=link.layer.weight.device)
                             for link in self.links]
        self.importance: list[torch.Tensor] | None = None
        self.batches = 0

    def attach(self) -> None:
        """Register the (all-ones) mask parametrizations; call before any quantizer."""
        for m in self.layers:
            _mask_of(m, "weight")
        for link in self.links:
            if link.layer.bias is not None:
                _mask_of(link.layer, "bias")
            for bn in link.norms:
                if bn.affine:
                    _mask_of(bn, "weight")
                    _mask_of(bn, "bias")

    @torch.no_grad()
    def accumulate(self) -> None:
        """Add this batch's importance (gradient: g^2, taylor: |g w|) from the weights' grads."""
        if self.config.method == "magnitude":
            return
        if self.importance is None:
            self.importance = [torch.zeros_like(_original(m)) for m in self.layers]
        for acc, m in zip(self.importance, self.layers):
            w = _original(m)
            if w.grad is not None:
                acc.add_(w.grad.square() if self.config.method == "gradient" else (w.grad * w).abs())
        self.batches += 1

    @torch.no_grad()
    def _scores(self) -> list[torch.Tensor]:
        """Elementwise importance per layer, -inf where already pruned."""
        if self.config.method == "magnitude" or self.importance is None:
            raw = [_original(m).abs() for m in self.layers]
        else:
            raw = [acc.clone() for acc in self.importance]
        return [torch.where(_mask_of(m, "weight").mask.bool(), s, -torch.inf) for m, s in zip(self.layers, raw)]

    @torch.no_grad()
    def update(self, sparsity: float | None = None) -> None:
        """Recompute masks for ``sparsity`` (default: the config's target or threshold) and reset
        the accumulated importance."""
        threshold = self.config.threshold if sparsity is None else None
        sparsity = self.config.sparsity if sparsity is None else sparsity
        scores = self._scores()
        if self.config.structured:
            self._update_channels(scores, sparsity, threshold)
        else:
            keeps = select(scores, self.config.scope, sparsity, threshold)
            for m, keep in zip(self.layers, keeps):
                _mask_of(m, "weight").mask.copy_(keep)
        self.importance, self.batches = None, 0

    def _update_channels(self, scores: list[torch.Tensor], sparsity: float | None, threshold: float | None) -> None:
        by_layer = {id(m): s for m, s in zip(self.layers, scores)}
        channel_scores = []
        for link, alive in zip(self.links, self.channel_keep):
            s = by_layer[id(link.layer)].clamp(min=0).reshape(len(alive), -1).sum(1)
            s = s / s[alive].mean().clamp(min=1e-12)  # comparable across layers for scope=global
            channel_scores.append(torch.where(alive, s, -torch.inf))
        self.channel_keep = select(channel_scores, self.config.scope, sparsity, threshold, min_keep=1)
        self._apply_channel_masks()

    def _apply_channel_masks(self) -> None:
        for m in self.layers:
            _mask_of(m, "weight").mask.fill_(1.0)
        for link, keep in zip(self.links, self.channel_keep):
            out = keep.float()
            layer_mask = _mask_of(link.layer, "weight").mask
            layer_mask.mul_(out.reshape(-1, *([1] * (layer_mask.dim() - 1))))
            if link.layer.bias is not None:
                _mask_of(link.layer, "bias").mask.copy_(out)
            for bn in link.norms:
                if bn.affine:
                    _mask_of(bn, "weight").mask.copy_(out)
                    _mask_of(bn, "bias").mask.copy_(out)
            cols = torch.zeros(link.consumer.weight.shape[1], device=keep.device)
            cols[input_columns(link, keep.nonzero().reshape(-1))] = 1.0
            consumer_mask = _mask_of(link.consumer, "weight").mask
            consumer_mask.mul_(cols.reshape(1, -1, *([1] * (consumer_mask.dim() - 2))))

    @torch.no_grad()
    def sparsity(self) -> float:
        """Measured fraction of exactly-zero weights among all prunable (Linear/Conv) weights."""
        zeros = sum(int((m.weight == 0).sum()) for m in self.layers)
        return zeros / sum(m.weight.numel() for m in self.layers)

    @torch.no_grad()
    def make_permanent(self, model: nn.Module) -> nn.Module:
        """Bake masks into the tensors (removing any parametrization still attached) and, if
        structured, physically remove the pruned channels."""
        for m in [*self.layers, *(bn for link in self.links for bn in link.norms)]:
            for name in ("weight", "bias"):
                if parametrize.is_parametrized(m, name):
                    parametrize.remove_parametrizations(m, name, leave_parametrized=True)
        if self.links:
            remove_channels(self.links, [k.nonzero().reshape(-1) for k in self.channel_keep])
        return model


def prune_(model: nn.Module, config: PruningConfig) -> nn.Module:
    """One-shot pruning to the config's sparsity/threshold, made permanent at once (magnitude
    only: gradient/taylor need training; use ``CompressionHooks``)."""
    if config.method != "magnitude":
        raise ValueError(f"prune_ is data-free: pruning.method must be 'magnitude', got {config.method!r}")
    pruner = Pruner(model, config)
    pruner.attach()
    pruner.update()
    return pruner.make_permanent(model)


def prunable_count(model: nn.Module) -> int:
    """Number of Linear/Conv weights (the denominator of sparsity)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, WEIGHT_LAYERS))

