"""The allow-list of layers that structured pruning and the artifact format understand.

A layer without weights is described by its class name and the constructor arguments listed
here; nothing else is ever instantiated from an artifact.
"""

from __future__ import annotations

from torch import nn

WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)
NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d)

# name -> (class, constructor arguments read from / written to the module's attributes)
STATELESS: dict[str, tuple[type[nn.Module], tuple[str, ...]]] = {
    "ReLU": (nn.ReLU, ()),
    "ReLU6": (nn.ReLU6, ()),
    "LeakyReLU": (nn.LeakyReLU, ("negative_slope",)),
    "ELU": (nn.ELU, ("alpha",)),
    "GELU": (nn.GELU, ("approximate",)),
    "SiLU": (nn.SiLU, ()),
    "Mish": (nn.Mish, ()),
    "Hardswish": (nn.Hardswish, ()),
    "Hardtanh": (nn.Hardtanh, ("min_val", "max_val")),
    "Tanh": (nn.Tanh, ()),
    "Softsign": (nn.Softsign, ()),
    "Sigmoid": (nn.Sigmoid, ()),
    "Identity": (nn.Identity, ()),
    "Dropout": (nn.Dropout, ("p",)),
    "Flatten": (nn.Flatten, ("start_dim", "end_dim")),
    "MaxPool1d": (nn.MaxPool1d, ("kernel_size", "stride", "padding", "dilation", "ceil_mode")),
    "MaxPool2d": (nn.MaxPool2d, ("kernel_size", "stride", "padding", "dilation", "ceil_mode")),
    "AvgPool1d": (nn.AvgPool1d, ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")),
    "AvgPool2d": (nn.AvgPool2d, ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")),
    "AdaptiveAvgPool1d": (nn.AdaptiveAvgPool1d, ("output_size",)),
    "AdaptiveAvgPool2d": (nn.AdaptiveAvgPool2d, ("output_size",)),
}

SUPPORTED = sorted([*STATELESS, "Linear", "Conv1d", "Conv2d", "BatchNorm1d", "BatchNorm2d", "ActivationFakeQuant"])


def stateless_name(m: nn.Module) -> str | None:
    """The registry name of a weightless layer (exact class match), or None."""
    name = type(m).__name__
    entry = STATELESS.get(name)
    return name if entry is not None and type(m) is entry[0] else None


def unsupported(m: nn.Module, what: str) -> TypeError:
    return TypeError(
        f"{what} does not support layer {type(m).__name__}; supported: {', '.join(SUPPORTED)} "
        f"in a flat nn.Sequential"
    )
