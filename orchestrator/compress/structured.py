"""Structured pruning of an nn.Sequential: which output channels feed which inputs, and their
physical removal.

A *link* is a prunable Linear/Conv, the BatchNorms that normalise its channels, and the next
Linear/Conv that consumes them (through activations, pooling, dropout and at most one
Flatten, which spreads channel j over ``repeat`` consecutive input columns). The last
Linear/Conv is the classifier: its outputs are never pruned. While training, the channel masks
zero the layer's rows and bias, the BN's affine parameters and the consumer's columns, so the
masked model computes exactly what the shrunken model will.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from orchestrator.compress.layers import NORM_LAYERS, WEIGHT_LAYERS, stateless_name, unsupported
from orchestrator.compress.quantize import ActivationFakeQuant

_POOLS = ("MaxPool", "AvgPool", "AdaptiveAvgPool", "Dropout", "Identity")


@dataclass(frozen=True)
class Link:
    layer: nn.Module
    norms: tuple[nn.Module, ...]
    consumer: nn.Module
    repeat: int  # consumer input columns per channel (>1 after Flatten of a feature map)


def _channels(m: nn.Module) -> int:
    return m.out_features if isinstance(m, nn.Linear) else m.out_channels


def _inputs(m: nn.Module) -> int:
    return m.in_features if isinstance(m, nn.Linear) else m.in_channels


def _check_passthrough(m: nn.Module) -> bool:
    """True for a Flatten; raises unless m maps a zero channel to zero (so it can be removed)."""
    if isinstance(m, ActivationFakeQuant):
        return False  # its range always includes 0, so 0 stays exactly 0
    name = stateless_name(m)
    if name is None:
        raise unsupported(m, "structured pruning")
    if name == "Flatten":
        return True
    if not name.startswith(_POOLS):
        with torch.no_grad():
            f0 = m(torch.zeros(1, 1))
        if f0.abs().max().item() != 0.0:
            raise ValueError(
                f"structured pruning needs activations with f(0)=0 so that a removed channel "
                f"contributes nothing; {name}(0)={f0.item():g} (use ReLU, GELU, SiLU, Tanh, ...)"
            )
    return False


def plan_links(model: nn.Module) -> list[Link]:
    """The prunable links of a flat Sequential, in order; raises on anything unsupported."""
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"structured pruning needs an nn.Sequential, got {type(model).__name__}")
    links: list[Link] = []
    producer, norms, flattened = None, [], False
    for m in model:
        if isinstance(m, WEIGHT_LAYERS):
            if getattr(m, "groups", 1) != 1:
                raise ValueError(f"structured pruning does not support grouped convolutions ({m})")
            if producer is not None:
                links.append(_link(producer, norms, m, flattened))
            producer, norms, flattened = m, [], False
        elif isinstance(m, NORM_LAYERS):
            if producer is not None and m.num_features != _channels(producer):
                raise ValueError(f"{m} does not match the {_channels(producer)} channels of {producer}")
            norms.append(m)
        else:
            flattened = _check_passthrough(m) or flattened
    return links


def _link(producer: nn.Module, norms: list[nn.Module], consumer: nn.Module, flattened: bool) -> Link:
    c, n_in = _channels(producer), _inputs(consumer)
    producer_is_map = not isinstance(producer, nn.Linear)
    if isinstance(consumer, nn.Linear) and producer_is_map and not flattened:
        raise ValueError(f"{consumer} follows {producer} without a Flatten between them")
    if n_in % c != 0 or (n_in != c and not flattened):
        raise ValueError(f"{consumer} has {n_in} inputs, not a multiple of the {c} channels of {producer}")
    return Link(producer, tuple(norms), consumer, n_in // c)


def input_columns(link: Link, keep: torch.Tensor) -> torch.Tensor:
    """Consumer input columns that carry the kept channels."""
    return (keep[:, None] * link.repeat + torch.arange(link.repeat, device=keep.device)).reshape(-1)


def _slice_param(module: nn.Module, name: str, index: torch.Tensor, dim: int) -> None:
    t = getattr(module, name)
    if t is None:
        return
    new = t.detach().index_select(dim, index).clone()
    if isinstance(t, nn.Parameter):
        setattr(module, name, nn.Parameter(new, requires_grad=t.requires_grad))
    else:
        setattr(module, name, new)


@torch.no_grad()
def remove_channels(links: list[Link], keeps: list[torch.Tensor]) -> None:
    """Physically drop the output channels not in ``keeps[i]`` of each link's layer, and the
    matching BN entries and consumer inputs. Layers are edited in place (quant buffers too)."""
    for link, keep in zip(links, keeps):
        layer = link.layer
        _slice_param(layer, "weight", keep, 0)
        _slice_param(layer, "bias", keep, 0)
        if getattr(layer, "weight_scale", None) is not None and layer.weight_scale.numel() > 1:
            _slice_param(layer, "weight_scale", keep, 0)
            _slice_param(layer, "weight_zero_point", keep, 0)
        if isinstance(layer, nn.Linear):
            layer.out_features = len(keep)
        else:
            layer.out_channels = len(keep)
        for bn in link.norms:
            for name in ("weight", "bias", "running_mean", "running_var"):
                _slice_param(bn, name, keep, 0)
            bn.num_features = len(keep)
        consumer = link.consumer
        _slice_param(consumer, "weight", input_columns(link, keep), 1)
        if isinstance(consumer, nn.Linear):
            consumer.in_features = consumer.weight.shape[1]
        else:
            consumer.in_channels = consumer.weight.shape[1]
