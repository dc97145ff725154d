"""Export a trained model to an artifact that cannot execute code; its size on disk is the size.

Layout: ``MAGIC`` (8 bytes) | header length (uint32 little endian) | zlib(JSON header) |
payload. (zlib because on small models the JSON would otherwise be most of the file.) The
header lists the layers of a flat nn.Sequential: a type from the allow-list in
``layers.py``, its constructor arguments, and tensor specs (``_codec.py``) pointing into the
payload. Nothing is unpickled and no name from the file is imported: ``load_artifact`` only
instantiates allow-listed classes with JSON scalars.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from orchestrator.compress._codec import Payload, decode_tensor, encode_tensor, qparams_of
from orchestrator.compress.layers import NORM_LAYERS, STATELESS, WEIGHT_LAYERS, stateless_name, unsupported
from orchestrator.compress.quantize import ActivationFakeQuant, quantized_bits

MAGIC = b"ORCART01"
_WEIGHT_ARGS = {
    "Linear": ("in_features", "out_features"),
    "Conv1d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "padding_mode"),
    "Conv2d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "padding_mode"),
}
_NORM_ARGS = ("num_features", "eps", "momentum", "affine", "track_running_stats")
_NORM_TENSORS = ("weight", "bias", "running_mean", "running_var")
_CLASSES = {**{k: v[0] for k, v in STATELESS.items()}, "Linear": nn.Linear, "Conv1d": nn.Conv1d,
            "Conv2d": nn.Conv2d, "BatchNorm1d": nn.BatchNorm1d, "BatchNorm2d": nn.BatchNorm2d}


@dataclass(frozen=True)
class ArtifactInfo:
    """Measured on the exported file. ``sparsity``: zero weights among the prunable
    (Linear/Conv) weights of the dense reference, so channels removed by structured pruning
    count as zeros. ``bits``: weight bit width (32 when not quantized)."""

    path: str
    size_bytes: int
    dense_bytes: int
    compression_ratio: float
    nonzero_params: int
    sparsity: float
    bits: int


def dense_size_bytes(model: nn.Module) -> int:
    """fp32 bytes needed for inference: every parameter plus BatchNorm running statistics."""
    n = 0
    for m in model.modules():
        if isinstance(m, (*WEIGHT_LAYERS, *NORM_LAYERS)):
            n += sum(getattr(m, a).numel() for a in _NORM_TENSORS if getattr(m, a, None) is not None)
        else:
            n += sum(p.numel() for p in m.parameters(recurse=False))
    return 4 * n


def _json_arg(v):
    return list(v) if isinstance(v, tuple) else v


def _py_arg(v):
    if isinstance(v, list):
        return tuple(_py_arg(x) for x in v)
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise ValueError(f"corrupt artifact: argument {v!r} is not a JSON scalar or list")


def _layer_record(m: nn.Module, payload: Payload) -> dict:
    name = type(m).__name__
    if isinstance(m, WEIGHT_LAYERS):
        args = {a: _json_arg(getattr(m, a)) for a in _WEIGHT_ARGS[name]}
        args["bias"] = m.bias is not None
        tensors = {"weight": encode_tensor(m.weight, qparams_of(m), payload)}
        if m.bias is not None:
            tensors["bias"] = encode_tensor(m.bias, None, payload)
        return {"type": name, "args": args, "tensors": tensors}
    if isinstance(m, NORM_LAYERS) and type(m) in (nn.BatchNorm1d, nn.BatchNorm2d):
        tensors = {a: encode_tensor(getattr(m, a), None, payload) for a in _NORM_TENSORS if getattr(m, a) is not None}
        return {"type": name, "args": {a: getattr(m, a) for a in _NORM_ARGS}, "tensors": tensors}
    if isinstance(m, ActivationFakeQuant):
        return {"type": name, "args": {"bits": m.bits, "power_of_two": m.power_of_two},
                "range": [float(m.lo), float(m.hi)], "initialized": bool(m.initialized)}
    if stateless_name(m) is not None:
        return {"type": name, "args": {a: _json_arg(getattr(m, a)) for a in STATELESS[name][1]}}
    raise unsupported(m, "export_artifact")


def export_artifact(model: nn.Module, path: str | os.PathLike, *, dense_bytes: int | None = None,
                    dense_weights: int | None = None) -> ArtifactInfo:
    """Write ``model`` (a flat nn.Sequential, after ``CompressionHooks.finish``) to ``path``.

    ``dense_bytes`` / ``dense_weights``: fp32 bytes and Linear/Conv weight count of the dense
    model it came from (default: measured on ``model``, right unless structured pruning shrank
    it; ``CompressionHooks.export`` passes the values it recorded in ``prepare``).
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"export_artifact needs an nn.Sequential, got {type(model).__name__}")
    payload = Payload()
    header = {"format": "orchestrator-artifact", "version": 1, "layers": [_layer_record(m, payload) for m in model]}
    blob = zlib.compress(json.dumps(header, separators=(",", ":")).encode(), 9)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:  # write aside, then rename: never a half file
        f.write(MAGIC + struct.pack("<I", len(blob)) + blob)
        for chunk in payload.chunks:
            f.write(chunk)
    os.replace(tmp, path)
    return _info(model, path, dense_bytes, dense_weights)


@torch.no_grad()
def _info(model: nn.Module, path: Path, dense_bytes: int | None, dense_weights: int | None) -> ArtifactInfo:
    weights = [m.weight for m in model.modules() if isinstance(m, WEIGHT_LAYERS)]
    dense_weights = dense_weights or sum(w.numel() for w in weights)
    dense_bytes = dense_bytes or dense_size_bytes(model)
    params = [p for m in model.modules() for p in (getattr(m, "weight", None), getattr(m, "bias", None))
              if isinstance(m, (*WEIGHT_LAYERS, *NORM_LAYERS)) and p is not None]
    nonzero_weights = sum(int((w != 0).sum()) for w in weights)
    size = os.path.getsize(path)
    return ArtifactInfo(
        path=str(path), size_bytes=size, dense_bytes=dense_bytes, compression_ratio=dense_bytes / size,
        nonzero_params=sum(int((p != 0).sum()) for p in params),
        sparsity=1.0 - nonzero_weights / dense_weights, bits=quantized_bits(model),
    )


def load_artifact(path: str | os.PathLike) -> nn.Sequential:
    """Rebuild the exported nn.Sequential (eval mode); weights equal the exported ones exactly."""
    data = Path(path).read_bytes()
    if data[:8] != MAGIC or len(data) < 12:
        raise ValueError(f"{path} is not an orchestrator artifact (bad magic)")
    (hlen,) = struct.unpack("<I", data[8:12])
    if 12 + hlen > len(data):
        raise ValueError(f"corrupt artifact {path}: header length {hlen} beyond the file")
    try:
        header = json.loads(zlib.decompress(data[12 : 12 + hlen]))
    except (zlib.error, ValueError) as exc:
        raise ValueError(f"corrupt artifact {path}: unreadable header ({exc})") from None
    if header.get("format") != "orchestrator-artifact" or header.get("version") != 1:
        raise ValueError(f"{path}: unknown artifact format/version {header.get('format')}/{header.get('version')}")
    payload = memoryview(data)[12 + hlen :]
    return nn.Sequential(*[_build(rec, payload) for rec in header["layers"]]).eval()


def _build(rec: dict, payload: memoryview) -> nn.Module:
    name, args = rec["type"], {k: _py_arg(v) for k, v in rec.get("args", {}).items()}
    if name == "ActivationFakeQuant":
        m = ActivationFakeQuant(int(args["bits"]), bool(args["power_of_two"]))
        m.lo.fill_(float(rec["range"][0]))
        m.hi.fill_(float(rec["range"][1]))
        m.initialized.fill_(bool(rec["initialized"]))
        m.observing = False
        return m
    if name not in _CLASSES:
        raise ValueError(f"artifact layer type {name!r} is not allowed; allowed: {sorted(_CLASSES)}")
    m = _CLASSES[name](**args)
    for tname, spec in rec.get("tensors", {}).items():
        value, q = decode_tensor(spec, payload)
        target = getattr(m, tname)
        if target is None or tuple(target.shape) != tuple(value.shape):
            raise ValueError(f"artifact {name}.{tname} has shape {tuple(value.shape)}, layer expects "
                             f"{None if target is None else tuple(target.shape)}")
        target.data.copy_(value)
        if q is not None:
            m.register_buffer("weight_scale", q[0])
            m.register_buffer("weight_zero_point", q[1])
            m.register_buffer("weight_qrange", torch.tensor([q[2], q[3]], dtype=torch.int32))
    return m
