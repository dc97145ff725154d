"""Every model is a plain ``nn.Sequential`` of standard layers: compression (structured
pruning, export) and pipeline parallelism can then walk it layer by layer."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the recipe schema imports compression, which imports the models
    from orchestrator.recipe.schema import ModelConfig


def _dense_head(layers: list[nn.Module], width: int, cfg: ModelConfig, num_classes: int) -> nn.Sequential:
    """Append the hidden Linear+ReLU(+Dropout) layers and the classifier to ``layers``."""
    for hidden in cfg.hidden:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        if cfg.dropout:
            layers.append(nn.Dropout(cfg.dropout))
        width = hidden
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def _mlp(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    return _dense_head([nn.Flatten()], int(torch.Size(input_shape).numel()), cfg, num_classes)


def _cnn(dims: int, cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    if len(input_shape) != dims + 1:
        raise ValueError(f"cnn{dims}d needs inputs of shape (channels, {'length' if dims == 1 else 'height, width'}), got {input_shape}")
    conv, pool = (nn.Conv1d, nn.MaxPool1d) if dims == 1 else (nn.Conv2d, nn.MaxPool2d)
    layers: list[nn.Module] = []
    channels, spatial = input_shape[0], min(input_shape[1:])
    for out in cfg.channels:
        layers += [conv(channels, out, cfg.kernel_size, padding=cfg.kernel_size // 2), nn.ReLU()]
        if spatial >= 4:  # pool while there is room, so deep stacks still fit tiny inputs
            layers.append(pool(2))
            spatial //= 2
        channels = out
    layers.append(nn.Flatten())
    with torch.no_grad():
        width = nn.Sequential(*layers)(torch.zeros(1, *input_shape)).shape[1]
    return _dense_head(layers, width, cfg, num_classes)


MODELS: dict[str, Callable[[ModelConfig, tuple[int, ...], int], nn.Sequential]] = {
    "mlp": _mlp,
    "cnn1d": lambda cfg, shape, n: _cnn(1, cfg, shape, n),
    "cnn2d": lambda cfg, shape, n: _cnn(2, cfg, shape, n),
}


def build_model(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int, seed: int | None = None) -> nn.Sequential:
    """Build a registered model; ``seed`` makes the initialisation reproducible."""
    if seed is not None:
        torch.manual_seed(seed)
    return MODELS[cfg.name](cfg, tuple(input_shape), num_classes)


def dense_fp32_bytes(model: nn.Module) -> int:
    """Bytes of the model's parameters and buffers stored densely as float32."""
    tensors = list(model.parameters()) + [b for b in model.buffers() if b.is_floating_point()]
    return sum(t.numel() * 4 for t in tensors)
