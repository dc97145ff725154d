import json
import os
import struct
import zlib

import numpy as np
import pytest
import torch
from torch import nn

from orchestrator.compress import (
    PruningConfig, QuantizationConfig, dense_size_bytes, export_artifact, load_artifact, prune_, quantize_ptq,
)
from orchestrator.compress.size import MAGIC
from tests.compress.conftest import MODELS, mlp


def _header(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<I", data[8:12])
    return json.loads(zlib.decompress(data[12 : 12 + n]))


def _compressed(name, sparsity, bits, structured=False, per_channel=True, symmetric=True, activations=False):
    build, shape = MODELS[name]
    model = build()
    model(torch.randn(64, *shape))  # BN statistics
    model.eval()
    if sparsity:
        prune_(model, PruningConfig(sparsity=sparsity, structured=structured, scope="layer" if structured else "global"))
    if bits:
        cfg = QuantizationConfig(mode="ptq", bits=bits, symmetric=symmetric, activations=activations,
                                 granularity="per_channel" if per_channel else "per_tensor")
        model = quantize_ptq(model, cfg, [torch.randn(32, *shape) for _ in range(2)])
    return model.eval(), shape


@pytest.mark.parametrize("name, sparsity, bits, structured, per_channel, symmetric, activations", [
    ("mlp", 0.9, 4, False, True, True, False),
    ("mlp", 0.0, None, False, True, True, False),
    ("mlp", 0.5, 8, False, False, False, True),
    ("cnn1d", 0.5, 3, True, True, False, True),
    ("cnn2d", 0.7, 6, False, False, True, False),
    ("cnn2d", 0.4, 2, True, True, True, True),
])
def test_artifact_round_trip(tmp_path, name, sparsity, bits, structured, per_channel, symmetric, activations):
    model, shape = _compressed(name, sparsity, bits, structured, per_channel, symmetric, activations)
    path = tmp_path / "model.art"
    info = export_artifact(model, path)
    assert info.size_bytes == os.path.getsize(path)
    loaded = load_artifact(path)
    x = torch.randn(32, *shape)
    ref, got = model(x), loaded(x)
    assert torch.equal(ref.argmax(1), got.argmax(1))
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(model, loaded):
        for t in ("weight", "bias", "running_mean", "running_var"):
            if getattr(a, t, None) is not None:
                assert torch.equal(getattr(a, t), getattr(b, t)), (a, t)  # bit for bit
    assert info.bits == (bits or 32)
    assert info.sparsity >= (sparsity if not structured else 0.0) - 1e-6


def test_ninety_percent_sparse_4bit_mlp_compresses_well_above_10x(tmp_path):
    model, _ = _compressed("mlp", 0.9, 4)
    info = export_artifact(model, tmp_path / "m.art")
    print(f"\n90%-sparse 4-bit MLP 64-256-256-10: {info.size_bytes} B vs dense {info.dense_bytes} B "
          f"-> ratio {info.compression_ratio:.1f}x")
    assert info.dense_bytes == 4 * sum(p.numel() for p in mlp().parameters())
    assert info.compression_ratio > 15
    assert info.sparsity == pytest.approx(0.9, abs=0.01)
    assert info.nonzero_params <= 0.1 * 84480 + 522 + 10


def test_pattern_encoding_is_the_smaller_one(tmp_path):
    model = nn.Sequential(nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 100))
    with torch.no_grad():
        model[0].weight[torch.rand(100, 100) < 0.99] = 0  # very sparse: coded gaps
        model[2].weight[torch.rand(100, 100) < 0.3] = 0  # mostly dense: bitmask
        model[4].weight.add_(1.0)  # no zeros: dense
    export_artifact(model, tmp_path / "p.art")
    encs = [layer["tensors"]["weight"]["enc"] for layer in _header(tmp_path / "p.art")["layers"] if "tensors" in layer]
    assert encs == ["gaps", "bitmask", "dense"]
    torch.testing.assert_close(load_artifact(tmp_path / "p.art")(torch.ones(2, 100)), model(torch.ones(2, 100)))


def test_structured_artifact_is_smaller_and_reports_reference_sparsity(tmp_path):
    dense, _ = _compressed("cnn1d", 0.0, None)
    small, _ = _compressed("cnn1d", 0.5, None, structured=True)
    ref_bytes = dense_size_bytes(dense)
    n_weights = sum(m.weight.numel() for m in dense if isinstance(m, (nn.Linear, nn.Conv1d)))
    info = export_artifact(small, tmp_path / "s.art", dense_bytes=ref_bytes, dense_weights=n_weights)
    assert info.dense_bytes == ref_bytes and info.compression_ratio > 2.0
    assert info.sparsity > 0.5


def test_load_rejects_what_it_does_not_know(tmp_path):
    bad = tmp_path / "bad.art"
    header = json.dumps({"format": "orchestrator-artifact", "version": 1,
                         "layers": [{"type": "os.system", "args": {}}]}).encode()
    header = zlib.compress(header)
    bad.write_bytes(MAGIC + struct.pack("<I", len(header)) + header)
    with pytest.raises(ValueError, match="not allowed"):
        load_artifact(bad)
    bad.write_bytes(b"\x80\x04K\x01." + b"\0" * 20)  # a pickle
    with pytest.raises(ValueError, match="magic"):
        load_artifact(bad)
    with pytest.raises(TypeError, match="LSTM"):
        export_artifact(nn.Sequential(nn.Linear(4, 4), nn.LSTM(4, 4)), tmp_path / "x.art")


@pytest.mark.parametrize("density", [0.0005, 0.01, 0.05, 0.2, 0.5])
@pytest.mark.parametrize("k", [0, 1, 4, 9])
def test_rice_coded_gaps_round_trip(density, k):
    from orchestrator.compress._codec import _rice_cost, _rice_decode, _rice_encode

    rng = np.random.default_rng(int(density * 10_000) + k)
    where = np.flatnonzero(rng.random(20_000) < density)
    gaps = np.diff(where, prepend=-1) - 1
    encoded = _rice_encode(gaps, k)
    assert len(encoded) == -(-_rice_cost(gaps, k) // 8)
    assert np.array_equal(_rice_decode(encoded, len(gaps), k), gaps)


def test_sparse_pattern_costs_near_its_entropy():
    """A 95 %-sparse random pattern is stored in about its entropy (0.29 bits per entry),
    far below a bitmask (1 bit per entry)."""
    from orchestrator.compress._codec import Payload, decode_tensor, encode_tensor

    torch.manual_seed(0)
    w = torch.randn(256, 256) * (torch.rand(256, 256) < 0.05)
    payload = Payload()
    spec = encode_tensor(w, None, payload)
    pattern_bits = spec["pattern"][1] * 8
    entropy_bits = w.numel() * -(0.05 * np.log2(0.05) + 0.95 * np.log2(0.95))
    assert spec["enc"] == "gaps"
    assert pattern_bits < 1.15 * entropy_bits, (pattern_bits, entropy_bits)
    decoded, _ = decode_tensor(spec, memoryview(b"".join(payload.chunks)))
    assert torch.equal(decoded, w)
