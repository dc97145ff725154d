import time

import torch

from orchestrator.compress import export_artifact, load_artifact, measure_latency
from tests.compress.test_size import _compressed


def test_latency_is_measured_per_batch_size_within_a_second(tmp_path):
    model, shape = _compressed("mlp", 0.9, 8)
    export_artifact(model, tmp_path / "m.art")
    loaded = load_artifact(tmp_path / "m.art")
    start = time.perf_counter()
    lat = measure_latency(loaded, shape, batch_sizes=(1, 256))
    assert time.perf_counter() - start < 1.0
    assert lat["latency_ms_b1"] > 0 and lat["latency_ms_b256"] > 0
    assert {lat["latency_backend_b1"], lat["latency_backend_b256"]} <= {"dense", "int8_dynamic", "sparse_csr"}
    print("\nlatency (ms):", lat)


def test_backends_compute_the_same_predictions():
    from orchestrator.compress.latency import _candidates

    model, shape = _compressed("mlp", 0.9, 8)
    x = torch.randn(64, *shape)
    ref = model(x)
    cands = _candidates(model)
    assert set(cands) == {"dense", "int8_dynamic", "sparse_csr"}
    for name, m in cands.items():
        agree = (m(x).argmax(1) == ref.argmax(1)).float().mean()
        assert agree >= 0.95, f"{name} agrees on {agree:.2f} of predictions"
