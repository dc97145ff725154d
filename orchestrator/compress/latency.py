"""Inference latency of an exported model on CPU, with the fastest real kernel PyTorch offers.

Candidates, each timed on the same input (median of ``repeats`` forwards after one warm-up):

- ``dense``: the model as loaded (fp32 dense kernels);
- ``int8_dynamic``: torch.ao dynamic-quantized Linear (int8 weights, fbgemm/x86 kernels),
  only when the model's Linear weights were quantized to <= 8 bits;
- ``sparse_csr``: Linear weights as CSR tensors (torch.sparse.mm), only when the Linear
  weights are at least ``SPARSE_MIN`` sparse.

The fastest candidate per batch size is reported, with its name: on tiny models fp32 dense
often wins (kernel overheads dominate), and the numbers say so rather than assuming.
"""

from __future__ import annotations

import copy
import statistics
import time
import warnings

import torch
from torch import nn

SPARSE_MIN = 0.7


class _CSRLinear(nn.Module):
    def __init__(self, m: nn.Linear):
        super().__init__()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Sparse CSR tensor support is in beta state"
            self.weight = m.weight.detach().to_sparse_csr()
        self.bias = None if m.bias is None else m.bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.sparse.mm(self.weight, x.reshape(-1, x.shape[-1]).t()).t()
        return y if self.bias is None else y + self.bias


def _swap_linears(model: nn.Module, make) -> nn.Module:
    model = copy.deepcopy(model)
    for name, m in list(model.named_children()):
        if isinstance(m, nn.Linear):
            setattr(model, name, make(m))
    return model


def _candidates(model: nn.Module) -> dict[str, nn.Module]:
    found = {"dense": model}
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        return found
    if all(getattr(m, "weight_qrange", None) is not None for m in linears):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated in 2.13, still the CPU int8 path
            from torch.ao.quantization import quantize_dynamic

            found["int8_dynamic"] = quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)
    zeros = sum(int((m.weight == 0).sum()) for m in linears) / sum(m.weight.numel() for m in linears)
    if zeros >= SPARSE_MIN:
        found["sparse_csr"] = _swap_linears(model, _CSRLinear)
    return found


@torch.inference_mode()
def _median_ms(model: nn.Module, x: torch.Tensor, repeats: int, budget_s: float) -> float:
    model(x)  # warm-up
    times, deadline = [], time.perf_counter() + budget_s
    for _ in range(repeats):
        t = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t)
        if time.perf_counter() > deadline:
            break
    return 1000.0 * statistics.median(times)


def measure_latency(model: nn.Module, example_input_shape: tuple[int, ...],
                    batch_sizes: tuple[int, ...] = (1, 256), repeats: int = 15,
                    budget_s: float = 0.1) -> dict[str, float | str]:
    """Median ms per forward for each batch size (``example_input_shape`` excludes the batch
    dimension), with the fastest backend: ``{"latency_ms_b1": .., "latency_backend_b1": ..}``.
    Each (backend, batch size) is capped at ``budget_s`` seconds of timing."""
    model = model.eval()
    candidates = _candidates(model)
    result: dict[str, float | str] = {}
    for bs in batch_sizes:
        x = torch.randn(bs, *example_input_shape)
        timed = {name: _median_ms(m, x, repeats, budget_s) for name, m in candidates.items()}
        best = min(timed, key=timed.get)
        result[f"latency_ms_b{bs}"] = timed[best]
        result[f"latency_backend_b{bs}"] = best
    return result
