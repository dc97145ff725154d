"""GPU check for a rented single-GPU machine (about 2 minutes; bench/gpu_check.sh runs it).

What it checks, everything printed to stdout:
  1. versions (python, torch, CUDA, NCCL, GPU); exits 3 with a "no CUDA" message if torch
     cannot see a GPU.
  2. nccl: DDP, FSDP2 (the project's shard_model/full_state_dict when importable) and the
     project's PipelineRunner, each a few SGD steps compared with a single-process run on
     the same GPU. NCCL refuses two ranks on one GPU ("Duplicate GPU detected"), so the
     world size is min(2, GPU count): on one GPU it is 1, which still runs the nccl
     backend, the device mesh and the collectives, but not cross-rank traffic.
  3. compression: the project's training loop with pruning + QAT + KD on the GPU vs on CPU.
  4. fractional packing: 4 small MLP training jobs as 4 processes on the one GPU, one at a
     time, then all at once; prints wall-clock times and the ratio. If Ray is importable,
     the same 4 jobs again as Ray tasks with num_gpus=0.25.
Exit status: 0 all checks passed, 1 a check failed, 3 no CUDA.

``--cpu-dry-run`` runs the same code on CPU with gloo (2 ranks, fewer steps, no Ray): it
checks this script's own logic on a machine without a GPU; its timings mean nothing.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root

STEPS, BATCH, LR, RTOL = 5, 64, 0.05, 1e-4
PACK_JOBS, PACK_STEPS = 4, 3000
DRY_RUN = "--cpu-dry-run" in sys.argv  # spawned children re-import this module: same argv


def _device(index: int) -> torch.device:
    return torch.device("cpu") if DRY_RUN else torch.device("cuda", index)


def _pack_steps() -> int:
    return PACK_STEPS // 100 if DRY_RUN else PACK_STEPS


def _sync() -> None:
    if not DRY_RUN:
        torch.cuda.synchronize()


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 128),
                         nn.ReLU(), nn.Linear(128, 10))


def _data(device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(BATCH, 4, 8, generator=g), torch.randint(0, 10, (BATCH,), generator=g)
    return x.to(device), y.to(device)


def _project(say: bool):
    """The project's model_parallel module, or None (its package may need pydantic etc.)."""
    try:
        from orchestrator.train import model_parallel
        return model_parallel
    except Exception as e:  # any import problem: fall back to plain torch, say so
        if say:
                print(f"  note: orchestrator.train.model_parallel not importable ({e!r}); "
                  "FSDP2 uses torch's fully_shard directly and the pipeline check is skipped")
        return None


def versions() -> bool:
    print(f"python {platform.python_version()} on {platform.platform()}")
    print(f"torch {torch.__version__}  built for CUDA {torch.version.cuda}")
    if not torch.cuda.is_available():
        print("no CUDA: torch.cuda.is_available() is False (a CPU-only torch build, no "
              "NVIDIA driver, or no GPU visible); nothing on the GPU was checked.")
        return False
    print(f"NCCL {'.'.join(map(str, torch.cuda.nccl.version()))}  "
          f"GPUs {torch.cuda.device_count()}: "
          + ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())))
    return True


# --- 2. nccl: DDP, FSDP2, pipeline ------------------------------------------------------


def _train(model, params, x, y, world: int) -> list[float]:
    opt, losses = torch.optim.SGD(params, lr=LR), []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        mean = loss.detach().clone()
        if world > 1:
            dist.all_reduce(mean)
        losses.append(mean.item() / world)
    return losses


def _nccl_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    device = _device(rank)
    if DRY_RUN:
        dist.init_process_group("gloo", rank=rank, world_size=world)
    else:
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", rank=rank, world_size=world, device_id=device)
    project, results = _project(say=rank == 0), {}
    x, y = _data(device)
    xs, ys = x.chunk(world)[rank], y.chunk(world)[rank]
    try:
        ddp = nn.parallel.DistributedDataParallel(
            _mlp().to(device), device_ids=None if DRY_RUN else [rank])
        results["ddp"] = {"losses": _train(ddp, ddp.parameters(), xs, ys, world),
                          "state": {k.removeprefix("module."): v.cpu()
                                    for k, v in ddp.state_dict().items()}}
        model = _mlp().to(device)
        if project is not None:
            model = project.shard_model(model)
        else:
            from torch.distributed.fsdp import fully_shard
            for layer in model:
                if isinstance(layer, nn.Linear):
                    fully_shard(layer)
            fully_shard(model)
        losses = _train(model, model.parameters(), xs, ys, world)
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True,
                                                                     cpu_offload=True))
        results["fsdp2"] = {"losses": losses, "state": state}
        if project is not None:
            schedule = "1f1b" if world > 1 else "gpipe"
            runner = project.PipelineRunner(_mlp(), F.cross_entropy, n_microbatches=4,
                                            schedule=schedule, device=device)
            opt, losses = torch.optim.SGD(runner.module.parameters(), lr=LR), []
            for _ in range(STEPS):
                opt.zero_grad()
                losses.append(runner.train_step(x, y).item())
                opt.step()
            results["pipeline"] = {"losses": losses, "state": runner.full_state_dict()}
        if rank == 0:
            torch.save(results, os.path.join(out, "nccl.pt"))
    finally:
        dist.destroy_process_group()


def _rel(a, b) -> float:
    a, b = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    return ((a - b).abs() / b.abs()).max().item()


def check_nccl() -> bool:
    world = 2 if DRY_RUN else min(2, torch.cuda.device_count())
    if world == 1:
        print("  note: 1 GPU: NCCL refuses 2 ranks on one GPU, so these run at world size 1 "
              "(nccl backend, mesh and collectives exercised; no cross-rank traffic)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tempfile.mkdtemp(prefix="gpu_check_")
    t0 = time.perf_counter()
    mp.spawn(_nccl_worker, args=(world, port, out), nprocs=world, join=True)
    backend = "gloo" if DRY_RUN else "nccl"
    print(f"  {world} {backend} rank(s) ran in {time.perf_counter() - t0:.1f} s")
    results = torch.load(os.path.join(out, "nccl.pt"))
    device = _device(0)
    ref_model, (x, y) = _mlp().to(device), _data(device)
    ref_losses = _train(ref_model, ref_model.parameters(), x, y, 1)
    ref_state = {k: v.cpu() for k, v in ref_model.state_dict().items()}
    ok = True
    for name, got in results.items():
        loss_rel = _rel(got["losses"], ref_losses)
        w_abs = max((got["state"][k] - v).abs().max().item() for k, v in ref_state.items())
        passed = loss_rel < RTOL and w_abs < 1e-4
        ok &= passed
        print(f"  {'PASS' if passed else 'FAIL'} {name:9s} losses {got['losses'][0]:.5f}->"
              f"{got['losses'][-1]:.5f}  max rel diff to 1 process {loss_rel:.1e}  "
              f"weights max abs diff {w_abs:.1e}")
    return ok


# --- 3. fractional packing ---------------------------------------------------------------


def _pack_job(index: int, barrier=None) -> dict:
    """Train a small MLP for PACK_STEPS steps on GPU 0; times only the training loop."""
    t_start = time.time()
    device = _device(0)
    if DRY_RUN:
        torch.set_num_threads(1)
    torch.manual_seed(index)
    model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                          nn.Linear(512, 10)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(512, 256, device=device), torch.randint(0, 10, (512,), device=device)
    for _ in range(20):  # warm-up: CUDA context, cuBLAS handles, kernels
        F.cross_entropy(model(x), y).backward()
    _sync()
    if barrier is not None:
        barrier.wait()  # all jobs start training together
    t0 = time.time()
    for _ in range(_pack_steps()):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    _sync()
    t1 = time.time()
    return {"job": index, "start": t_start, "train_start": t0, "train_end": t1,
            "loss": loss.item()}


def _pack_process(index: int, barrier, queue) -> None:
    queue.put(_pack_job(index, barrier))


def _run_processes(concurrent: bool) -> tuple[float, list[dict]]:
    ctx = mp.get_context("spawn")  # CUDA cannot be used in forked children
    queue = ctx.Queue()
    # A timeout so that one crashed job breaks the barrier instead of hanging the others.
    barrier = ctx.Barrier(PACK_JOBS, timeout=120) if concurrent else None
    t0, results = time.time(), []
    procs = [ctx.Process(target=_pack_process, args=(i, barrier, queue)) for i in range(PACK_JOBS)]
    if concurrent:
        for p in procs:
            p.start()
        results = [queue.get(timeout=120) for _ in procs]
        for p in procs:
            p.join()
    else:
        for p in procs:
            p.start()
            results.append(queue.get(timeout=120))
            p.join()
    if any(p.exitcode != 0 for p in procs):
        raise RuntimeError(f"a packing job failed: exit codes {[p.exitcode for p in procs]}")
    return time.time() - t0, results


def _span(results: list[dict]) -> float:
    return max(r["train_end"] for r in results) - min(r["train_start"] for r in results)


def _max_overlap(results: list[dict]) -> int:
    events = sorted([(r["train_start"], 1) for r in results]
                    + [(r["train_end"], -1) for r in results])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def check_packing() -> bool:
    print(f"  {PACK_JOBS} jobs, each {_pack_steps()} steps of a 256-512-512-10 MLP, batch 512")
    seq_wall, seq = _run_processes(concurrent=False)
    con_wall, con = _run_processes(concurrent=True)
    seq_train = sum(r["train_end"] - r["train_start"] for r in seq)
    con_train = _span(con)
    print(f"  one at a time: wall {seq_wall:.1f} s (training {seq_train:.1f} s, "
          f"per job {seq_train / PACK_JOBS:.2f} s)")
    print(f"  all at once:   wall {con_wall:.1f} s (training span {con_train:.1f} s, "
          f"{_max_overlap(con)} jobs overlapping at most)")
    print(f"  ratio one-at-a-time / all-at-once: wall {seq_wall / con_wall:.2f}x, "
          f"training {seq_train / con_train:.2f}x")
    return all(r["loss"] == r["loss"] for r in seq + con)  # no NaN


def check_ray_packing() -> bool | None:
    if DRY_RUN:
        print("  skipped: --cpu-dry-run")
        return None
    try:
        import ray
    except ImportError:
        print("  skipped: ray is not installed here")
        return None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    print(f"  ray {ray.__version__}")
    t0 = time.time()
    ray.init(num_gpus=1, num_cpus=PACK_JOBS + 1, include_dashboard=False, log_to_driver=False)
    try:
        job = ray.remote(num_gpus=1 / PACK_JOBS, num_cpus=1)(_pack_job)
        print(f"  ray.init {time.time() - t0:.1f} s")
        t1 = time.time()
        results = ray.get([job.remote(i) for i in range(PACK_JOBS)], timeout=180)
        wall = time.time() - t1
    finally:
        ray.shutdown()
    print(f"  {PACK_JOBS} Ray tasks with num_gpus={1 / PACK_JOBS}: wall {wall:.1f} s "
          f"(training span {_span(results):.1f} s, {_max_overlap(results)} overlapping at most)")
    return _max_overlap(results) == PACK_JOBS


# --- 4. compression on the device ----------------------------------------------------------


def check_compression() -> bool:
    """The project's training loop with pruning (gradual, global magnitude: mask selection on
    the device) + 4-bit QAT (master weights, foreach ops) + KD on the GPU, against the same
    run on CPU: both must finish at the target sparsity with accuracy within 3 points."""
    try:
        from orchestrator.data import load_splits
        from orchestrator.recipe import build_template
        from orchestrator.sweep.compression import make_hooks
        from orchestrator.train.loop import train_model
    except Exception as e:  # the project's dependencies are not installed: say so, skip
        print(f"  skipped: the project is not importable ({e!r})")
        return True
    recipe = build_template({
        "name": "gpu-compress", "data": {"name": "digits"}, "model": {"hidden": [256, 256]},
        "train": {"epochs": 4, "lr": 0.05},
        "compression": {"pruning": {"sparsity": 0.9, "schedule": "gradual", "end_epoch": 2, "frequency": 5},
                        "quantization": {"bits": 4, "granularity": "per_channel"},
                        "distillation": {"alpha": 0.5, "temperature": 2.0}},
        "search": {"scheduler": {"name": "none"}},
    }).base
    splits = load_splits(recipe.data)
    teacher = 5.0 * F.one_hot(splits.train_y, splits.num_classes).float()  # a teacher that knows the labels
    runs = {}
    for name, device in (("cpu", torch.device("cpu")), ("device", _device(0))):
        hooks = make_hooks(recipe, splits, recipe.train.epochs, teacher)
        t0 = time.perf_counter()
        history = train_model(recipe, splits, lambda *a: None, hooks=hooks, device=device).history
        runs[name] = (history[-1], time.perf_counter() - t0)
        last = history[-1]
        print(f"  {name} ({device}): val_accuracy {last['val_accuracy']:.4f}, sparsity {last['sparsity']:.4f}, "
              f"bits {last['bits']:.0f}, {runs[name][1]:.1f} s")
    (cpu, _), (dev, _) = runs["cpu"], runs["device"]
    ok = abs(dev["sparsity"] - 0.9) < 0.01 and abs(dev["val_accuracy"] - cpu["val_accuracy"]) <= 0.03
    print(f"  {'PASS' if ok else 'FAIL'}: target sparsity reached on the device, accuracy as on CPU")
    return ok


def main() -> int:
    start = time.time()
    print("== versions")
    cuda = versions()
    if DRY_RUN:
        print("CPU DRY RUN: gloo on CPU, checks the script's logic only; timings mean nothing")
    elif not cuda:
        return 3
    checks = {}
    print("== nccl: DDP, FSDP2, pipeline vs one process")
    checks["nccl"] = check_nccl()
    print("== compression on the device: the project's loop, pruning + QAT + KD")
    checks["compression"] = check_compression()
    print("== fractional packing: processes")
    checks["packing"] = check_packing()
    print("== fractional packing: Ray tasks")
    ray_ok = check_ray_packing()
    if ray_ok is not None:
        checks["ray packing"] = ray_ok
    print(f"== summary ({time.time() - start:.0f} s): "
          + ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in checks.items()))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
