"""Tensor codec of the artifact (see ``size.py``): b-bit packing, sparsity patterns, qparams.

A tensor spec (JSON) points at byte ranges of the payload:

- ``values``: fp32 values, or b-bit integer codes (code - qmin) packed little-endian, for all
  entries (``enc="dense"``) or only the nonzeros (``enc="bitmask"`` / ``"gaps"``);
- ``pattern``: where the nonzeros are: a bitmask (1 bit per entry), or the gaps between
  successive nonzeros Golomb-Rice coded (unary quotient + k-bit remainder: the relative
  index of Deep Compression, within a few percent of the entropy of a random pattern and
  always smaller than a plain index list), whichever is smaller (dense when that is smaller
  still);
- ``scale`` (fp32) and ``zero_point`` (b-bit packed, omitted when all 0), per tensor or per
  output channel.

Decoding dequantizes with the same float32 arithmetic as the fake quantizer, so weights come
back bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


# ---------------------------------------------------------------- bit packing


def _pack(values: np.ndarray, bits: int) -> bytes:
    values = values.astype(np.uint64)
    if bits == 8:
        return values.astype(np.uint8).tobytes()
    planes = ((values[:, None] >> np.arange(bits, dtype=np.uint64)) & 1).astype(np.uint8)
    return np.packbits(planes.reshape(-1), bitorder="little").tobytes()


def _unpack(buf: bytes, count: int, bits: int) -> np.ndarray:
    if bits == 8:
        return np.frombuffer(buf, np.uint8, count=count).astype(np.int64)
    planes = np.unpackbits(np.frombuffer(buf, np.uint8), count=count * bits, bitorder="little")
    return planes.reshape(count, bits).astype(np.int64) @ (1 << np.arange(bits, dtype=np.int64))


def _rice_cost(gaps: np.ndarray, k: int) -> int:
    return int((gaps >> k).sum()) + len(gaps) * (k + 1)


def _rice_encode(gaps: np.ndarray, k: int) -> bytes:
    """Golomb-Rice code of non-negative ints: ``q = g >> k`` ones, a zero, then k remainder
    bits (little-endian), packed LSB first."""
    gaps = gaps.astype(np.int64)
    q, r = gaps >> k, gaps & ((1 << k) - 1)
    lengths = q + 1 + k
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    stream = np.zeros(int(lengths.sum()), np.uint8)
    stream[np.repeat(starts, q) + (np.arange(int(q.sum())) - np.repeat(np.cumsum(q) - q, q))] = 1
    if k:
        positions = (starts + q + 1)[:, None] + np.arange(k)
        stream[positions.reshape(-1)] = ((r[:, None] >> np.arange(k)) & 1).astype(np.uint8).reshape(-1)
    return np.packbits(stream, bitorder="little").tobytes()


def _rice_decode(buf: bytes, count: int, k: int) -> np.ndarray:
    stream = np.unpackbits(np.frombuffer(buf, np.uint8), bitorder="little")
    zeros = np.flatnonzero(stream == 0)
    weights = 1 << np.arange(k, dtype=np.int64)
    out = np.empty(count, np.int64)
    pos = 0
    for i in range(count):  # each code's length depends on the one before: sequential
        end = int(zeros[np.searchsorted(zeros, pos)])  # the zero that ends the unary part
        out[i] = ((end - pos) << k) + int(stream[end + 1:end + 1 + k] @ weights)
        pos = end + 1 + k
    return out


class Payload:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> list[int]:
        self.chunks.append(data)
        self.size += len(data)
        return [self.size - len(data), len(data)]


# ---------------------------------------------------------------- tensors


def qparams_of(m: nn.Module) -> tuple[torch.Tensor, torch.Tensor, int, int] | None:
    if getattr(m, "weight_scale", None) is None:
        return None
    qmin, qmax = (int(v) for v in m.weight_qrange)
    return m.weight_scale.float().cpu(), m.weight_zero_point.to(torch.int32).cpu(), qmin, qmax


def _rows(t: torch.Tensor, ndim: int) -> torch.Tensor:
    return t.reshape(-1, *([1] * (ndim - 1))) if t.numel() > 1 else t.reshape(())


def _codes(w: torch.Tensor, q: tuple) -> tuple[np.ndarray, int]:
    scale, zp, qmin, qmax = q
    s, z = _rows(scale, w.dim()), _rows(zp, w.dim()).float()
    codes = (torch.round(w * (1.0 / s)) + z).clamp(qmin, qmax)
    if not torch.equal((codes - z) * s, w):
        raise ValueError("weights are not on their quantization grid; export after CompressionHooks.finish")
    return (codes - qmin).to(torch.int64).reshape(-1).numpy(), max(1, math.ceil(math.log2(qmax - qmin + 1)))


def encode_tensor(w: torch.Tensor, q: tuple | None, payload: Payload) -> dict:
    w = w.detach().float().cpu().contiguous()
    flat, n = w.reshape(-1), w.numel()
    nz = (flat != 0).numpy()
    nnz = int(nz.sum())
    if q is None:
        values, bits = flat.numpy(), 32
    else:
        values, bits = _codes(w, q)
    cost = {"dense": n * bits, "bitmask": nnz * bits + n}
    if nnz:
        gaps = np.diff(np.flatnonzero(nz), prepend=-1) - 1
        rice_k = min(range(17), key=lambda k: _rice_cost(gaps, k))
        cost["gaps"] = nnz * bits + _rice_cost(gaps, rice_k)
    enc = min(cost, key=cost.get)
    spec: dict = {"shape": list(w.shape), "enc": enc, "bits": bits, "nnz": nnz}
    stored = values if enc == "dense" else values[nz]
    spec["values"] = payload.add(stored.astype(np.float32).tobytes() if q is None else _pack(stored, bits))
    if enc == "bitmask":
        spec["pattern"] = payload.add(np.packbits(nz, bitorder="little").tobytes())
    elif enc == "gaps":
        spec["pattern"] = payload.add(_rice_encode(gaps, rice_k))
        spec["rice_k"] = rice_k
    if q is not None:
        scale, zp, qmin, qmax = q
        spec.update(qmin=qmin, qmax=qmax, channels=scale.numel())
        spec["scale"] = payload.add(scale.numpy().astype("<f4").tobytes())
        if bool((zp != 0).any()):
            spec["zero_point"] = payload.add(_pack((zp - qmin).to(torch.int64).numpy(), bits))
    return spec


def decode_tensor(spec: dict, payload: memoryview) -> tuple[torch.Tensor, tuple | None]:
    shape, n, bits, nnz = tuple(spec["shape"]), math.prod(spec["shape"]), int(spec["bits"]), int(spec["nnz"])
    count = n if spec["enc"] == "dense" else nnz
    raw = _slice(payload, spec["values"])
    quantized = "scale" in spec
    values = np.frombuffer(raw, "<f4", count=count).astype(np.float32) if not quantized else _unpack(raw, count, bits)
    if spec["enc"] == "bitmask":
        where = np.unpackbits(np.frombuffer(_slice(payload, spec["pattern"]), np.uint8), count=n, bitorder="little").astype(bool)
    elif spec["enc"] == "gaps":
        k = int(spec["rice_k"])
        if not 0 <= k <= 16:
            raise ValueError(f"corrupt artifact: rice_k={k}")
        positions = np.cumsum(_rice_decode(_slice(payload, spec["pattern"]), nnz, k) + 1) - 1
        if nnz and (positions[-1] >= n or positions[0] < 0):
            raise ValueError("corrupt artifact: sparsity pattern outside the tensor")
        where = np.zeros(n, bool)
        where[positions] = True
    else:
        where = None
    if not quantized:
        full = values if where is None else np.zeros(n, np.float32)
        if where is not None:
            full[where] = values
        return torch.from_numpy(full.copy()).reshape(shape), None
    qmin, qmax, channels = int(spec["qmin"]), int(spec["qmax"]), int(spec["channels"])
    scale = torch.from_numpy(np.frombuffer(_slice(payload, spec["scale"]), "<f4", count=channels).copy())
    zp = torch.zeros(channels, dtype=torch.int32)
    if "zero_point" in spec:
        zp = torch.from_numpy(_unpack(_slice(payload, spec["zero_point"]), channels, bits) + qmin).to(torch.int32)
    s, z = _rows(scale, len(shape)), _rows(zp, len(shape)).float()
    codes = torch.from_numpy(values + qmin).float()
    if where is None:
        w = (codes.reshape(shape) - z) * s
    else:
        full = z.expand(shape).reshape(-1).clone() if z.dim() else torch.full((n,), float(z))
        full[torch.from_numpy(where)] = codes
        w = (full.reshape(shape) - z) * s
    return w, (scale, zp, qmin, qmax)


def _slice(payload: memoryview, where: list[int]) -> bytes:
    start, length = int(where[0]), int(where[1])
    if start < 0 or length < 0 or start + length > len(payload):
        raise ValueError(f"corrupt artifact: byte range {where} outside the payload")
    return bytes(payload[start : start + length])
