"""FSDP2 and pipeline training across 2 gloo processes match single-process training.

One ``torch.multiprocessing.spawn`` of 2 ranks (127.0.0.1, a free port) runs every
distributed case and saves what it saw; the tests compare that with a single-process run
of the same model, data, seed and optimizer (5 steps of SGD with momentum, float32).
Measured on the 2-core dev machine, worst case over FSDP2, GPipe and 1F1B: losses agree to
1.7e-7 relative, logits to 1.1e-7 and weights to 3e-8 absolute (only the float summation
order differs). The tests allow 1e-5 relative on losses and logits, 1e-6 on weights.
"""

from __future__ import annotations

import functools
import os
import re

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from orchestrator.train import pipeline
from orchestrator.train.model_parallel import (
    PipelineError,
    PipelineRunner,
    full_state_dict,
    shard_model,
    split_stages,
    stage_io_shapes,
)
from tests.train.gloo import init_rank, spawn_ranks

WORLD, STEPS, BATCH, MICRO, LR = 2, 5, 16, 4, 0.1
RTOL = 1e-5


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                         nn.Linear(32, 4))


def _cnn() -> nn.Sequential:
    # No BatchNorm: with microbatches (pipeline) or per-rank shards (FSDP) its batch
    # statistics differ from the whole batch's, so it could not match the reference.
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv1d(4, 4, 3, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(32, 4))


def _data(shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(BATCH, *shape, generator=g), torch.randint(0, 4, (BATCH,), generator=g)


SHAPES = {"mlp": (_mlp, (2, 4)), "cnn": (_cnn, (1, 8))}


def _sgd(params):
    return torch.optim.SGD(params, lr=LR, momentum=0.9)


@functools.cache  # read-only for the tests; computed once per model
def _reference(name: str) -> dict:
    build, shape = SHAPES[name]
    model, (x, y) = build(), _data(shape)
    opt, losses = _sgd(model.parameters()), []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        logits = model(x)
    return {"losses": losses, "logits": logits, "state": model.state_dict()}


def _run_pipeline(name: str, schedule: str) -> dict:
    build, shape = SHAPES[name]
    (x, y), runner = _data(shape), PipelineRunner(build(), F.cross_entropy,
                                                  n_microbatches=MICRO, schedule=schedule)
    opt, losses = _sgd(runner.module.parameters()), []
    for step in range(STEPS):
        opt.zero_grad()
        losses.append(runner.train_step(x, y).item())
        opt.step()
        if step == 1:  # an epoch loop alternates: evaluation must not disturb training
            runner.eval_step(x[: BATCH // 2])
    return {"losses": losses, "logits": runner.eval_step(x), "state": runner.full_state_dict(),
            "half_logits": runner.eval_step(x[: BATCH // 2])}


def _run_fsdp(name: str) -> dict:
    build, shape = SHAPES[name]
    (x, y), model = _data(shape), shard_model(build())
    rank = dist.get_rank()
    xs, ys = x.chunk(WORLD)[rank], y.chunk(WORLD)[rank]  # data parallel: each rank its half
    opt, losses = _sgd(model.parameters()), []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = F.cross_entropy(model(xs), ys)
        loss.backward()
        opt.step()
        dist.all_reduce(mean := loss.detach().clone())
        losses.append(mean.item() / WORLD)
    with torch.no_grad():
        logits = model(x)
    return {"losses": losses, "logits": logits, "state": full_state_dict(model)}


def _errors() -> dict:
    x, y = _data((2, 4))
    cases = {
        "1f1b_few_microbatches": lambda: PipelineRunner(
            _mlp(), F.cross_entropy, n_microbatches=1, schedule="1f1b"),
        # Raised before any communication, on every rank alike, so no rank is left waiting.
        "uneven_batch": lambda: PipelineRunner(
            _mlp(), F.cross_entropy, n_microbatches=MICRO).train_step(x[:6], y[:6]),
    }
    found = {}
    for key, make in cases.items():
        try:
            make()
        except PipelineError as e:
            found[key] = str(e)
    return found


def _worker(rank: int, port: int, out: str) -> None:
    init_rank(rank, WORLD, port)
    try:
        results = {
            "fsdp/mlp": _run_fsdp("mlp"),
            "gpipe/mlp": _run_pipeline("mlp", "gpipe"),
            "1f1b/mlp": _run_pipeline("mlp", "1f1b"),
            "gpipe/cnn": _run_pipeline("cnn", "gpipe"),
            "errors": _errors(),
        }
        torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    return spawn_ranks(_worker, WORLD, tmp_path_factory.mktemp("model_parallel"))


def _rel(a, b) -> float:
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return ((a - b).abs() / b.abs().clamp_min(1e-12)).max().item()


@pytest.mark.parametrize("case", ["fsdp/mlp", "gpipe/mlp", "1f1b/mlp", "gpipe/cnn"])
def test_distributed_training_matches_single_process(ranks, case):
    ref = _reference(case.split("/")[1])
    for rank, seen in enumerate(ranks):
        got = seen[case]
        assert _rel(got["losses"], ref["losses"]) < RTOL, (rank, got["losses"], ref["losses"])
        assert torch.allclose(got["logits"], ref["logits"], rtol=RTOL, atol=1e-6), rank
        if "half_logits" in got:  # a second batch size builds its own stage shapes
            assert torch.allclose(got["half_logits"], ref["logits"][: BATCH // 2],
                                  rtol=RTOL, atol=1e-6), rank
    assert ranks[0][case]["losses"][-1] < ref["losses"][0], "training did not lower the loss"


@pytest.mark.parametrize("case", ["fsdp/mlp", "gpipe/mlp", "1f1b/mlp", "gpipe/cnn"])
def test_gathered_state_dict_equals_single_process_weights(ranks, case):
    ref, full = _reference(case.split("/")[1])["state"], ranks[0][case]["state"]
    assert full.keys() == ref.keys()
    for key, value in ref.items():
        assert torch.allclose(full[key], value, rtol=0, atol=1e-6), key
    assert all(rank[case]["state"] == {} for rank in ranks[1:]), "only rank 0 gets the state"


def test_pipeline_rejects_impossible_settings(ranks):
    errors = ranks[0]["errors"]
    assert "n_microbatches >= the number of stages" in errors["1f1b_few_microbatches"]
    assert "6 rows cannot be split into 4 equal microbatches" in errors["uneven_batch"]


# --- single process: splitting rules and errors ------------------------------------------


def test_split_balances_parameter_counts_and_keeps_names():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256),
                          nn.ReLU(), nn.Linear(256, 10))
    stages = split_stages(model, 3)
    assert [list(dict(s.named_children())) for s in stages] == [["0", "1", "2"], ["3", "4"], ["5"]]
    merged = {k: v for s in stages for k, v in s.state_dict().items()}
    assert merged.keys() == model.state_dict().keys()
    # 2 stages: the 256x256 layer (65 792 params) is the bottleneck wherever we cut; the
    # best split puts the small first layer alone, largest stage 68 362 params.
    sizes = [sum(p.numel() for p in s.parameters()) for s in split_stages(model, 2)]
    assert sizes == [16640, 68362]


def test_split_keeps_norms_with_their_layer_and_derives_shapes():
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                          nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    stages = split_stages(model, 3)
    assert [list(dict(s.named_children())) for s in stages] == [
        ["0", "1", "2", "3"], ["4", "5", "6"], ["7"]]
    io = stage_io_shapes(stages, torch.zeros(5, 1, 8, 8))
    assert [tuple(o.shape) for _, o in io] == [(5, 8, 4, 4), (5, 128), (5, 10)]
    assert all(t.device.type == "meta" for pair in io for t in pair)


@pytest.mark.parametrize(
    "model, stages, message",
    [
        (nn.Linear(4, 4), 2, "needs an nn.Sequential model, but got Linear"),
        (nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)), 3,
         "only 2 layers with weights"),
        (nn.Sequential(nn.ReLU()), 1, "only 0 layers with weights"),
        (nn.Sequential(nn.Linear(4, 4)), 0, "num_stages must be a positive integer"),
    ],
)
def test_split_errors_name_the_problem(model, stages, message):
    with pytest.raises(PipelineError, match=message):
        split_stages(model, stages)


def test_runner_and_sharding_need_an_initialised_process_group():
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="initialised"):
        PipelineRunner(_mlp(), F.cross_entropy)
    with pytest.raises(RuntimeError, match="not initialised"):
        shard_model(_mlp())


def test_a_single_rank_pipeline_is_plain_training():
    # A pipeline "strategy" with one Train worker: first and last stage on the same rank.
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        got = _run_pipeline("mlp", "gpipe")
    finally:
        dist.destroy_process_group()
    ref = _reference("mlp")
    assert _rel(got["losses"], ref["losses"]) < RTOL
    assert torch.allclose(got["logits"], ref["logits"], rtol=RTOL, atol=1e-6)
    assert all(torch.allclose(got["state"][k], v, atol=1e-6) for k, v in ref["state"].items())


@pytest.mark.parametrize(
    "schedule, micro, stages, message",
    [
        ("pipedream", 4, 2, "schedule must be one of ['1f1b', 'gpipe'], but got 'pipedream'"),
        ("gpipe", 0, 2, "n_microbatches must be a positive integer, but got 0"),
        ("1f1b", 2, 4, "needs n_microbatches >= the number of stages"),
    ],
)
def test_runner_settings_errors_name_the_problem(schedule, micro, stages, message):
    with pytest.raises(PipelineError, match=re.escape(message)):
        pipeline._check_settings(schedule, micro, stages)
