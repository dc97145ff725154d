"""Where the time of a 2-worker DDP trial goes: run a small DDP sweep (Ray already started,
like bench/overhead.py), then print every actor task of every trial on one time axis, from
Ray's task events (State API), relative to the sweep's start.

Run: PYTHONPATH=. .venv/bin/python bench/ddp_timeline.py [--trials 2] [--epochs 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")

import ray  # noqa: E402
from rich.console import Console  # noqa: E402

from orchestrator.recipe import build_template  # noqa: E402
from orchestrator.sweep.runner import run_sweep  # noqa: E402

SKIP = {"get", "poll_status", "get_metadata", "get_train_context", "get_status"}


def recipe(trials: int, epochs: int, results: str) -> dict:
    return {
        "name": "bench-ddp-timeline",
        "data": {"name": "digits"},
        "model": {"name": "mlp", "hidden": [256, 256]},
        "train": {"epochs": epochs, "batch_size": 64, "lr": {"grid": [round(0.02 + 0.01 * i, 4) for i in range(trials)]}},
        "parallel": {"workers": 2},
        "baseline": {"enabled": False},
        "search": {"scheduler": {"name": "none"}},
        "results": {"path": results},
    }


def events(task) -> dict:
    return {e["state"]: e["created_ms"] / 1000 for e in (task.get("events") or [])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--timeline", action="store_true", help="print every task")
    parser.add_argument("--all", action="store_true", help="also list polling calls")
    args = parser.parse_args()
    ray.init(num_cpus=2, log_to_driver=False, logging_level=logging.WARNING)
    from ray.util.state import list_actors, list_tasks

    with tempfile.TemporaryDirectory() as results:
        t0 = time.time()
        outcome = run_sweep(build_template(recipe(args.trials, args.epochs, results)), quiet=True,
                            console=Console(file=open(os.devnull, "w")))
        wall = time.time() - t0
    print(f"sweep wall {wall:.2f} s for {args.trials} trials; statuses {list(outcome.trials['status'])}")
    time.sleep(2)  # let task events flush
    address = ray.get_runtime_context().gcs_address  # other Ray sessions may run on this machine
    actors = {a["actor_id"]: a for a in list_actors(address=address, detail=True, limit=10000,
                                                    raise_on_missing_output=False)}
    tasks = list_tasks(address=address, detail=True, limit=10000, raise_on_missing_output=False)
    rows = []
    for t in tasks:
        name = t["name"]
        if not args.all and name.split(".")[-1] in SKIP:
            continue
        ev = events(t)
        if not ev:
            continue
        start = min(ev.values())
        end = ev.get("FINISHED") or ev.get("FAILED") or max(ev.values())
        running = ev.get("RUNNING")
        actor = actors.get(t.get("actor_id") or "", {})
        rows.append((start - t0, (running - t0) if running else float("nan"), end - t0, name,
                     actor.get("pid", t.get("worker_pid")), t["state"]))
    rows.sort()
    if args.timeline:
        print_timeline(rows)
    print_phases(rows)
    ray.shutdown()


PHASES = [  # (label, task name, which event: first submit / last end)
    ("trial actor start/reset", ("ImplicitFunc.__init__", "run_trial.reset"), "span"),
    ("TrainController start", ("TrainController.__init__",), "span"),
    ("workers (+PG cleaner, sync actor) start", ("RayTrainWorker.__init__",), "span"),
    ("init_train_context (unpickle task: imports)", ("RayTrainWorker.init_train_context",), "span"),
]


def print_phases(rows) -> None:
    """Per trial: where its wall time went, from the task events (windows end at each
    TrainController.run end)."""
    ends = sorted(end for _, _, end, name, _, _ in rows if name == "TrainController.run")
    starts = [0.0] + ends[:-1]
    print(f"{'trial':>5} {'actor':>6} {'ctrl':>6} {'workers':>7} {'ctx':>6} {'->1st':>6} {'reports':>7} {'teardown':>8} {'total':>6}")
    for k, (lo, hi) in enumerate(zip(starts, ends)):
        mine = [r for r in rows if lo <= r[0] < hi or (r[0] >= hi and r[3] == "TrainController.run" and False)]
        def span(*names):
            sel = [r for r in mine if r[3] in names]
            return (min(r[0] for r in sel), max(r[2] for r in sel)) if sel else (float("nan"),) * 2
        actor = span("ImplicitFunc.__init__", "run_trial.reset")
        ctrl = span("TrainController.__init__")
        workers = span("RayTrainWorker.__init__")
        ctx = span("RayTrainWorker.init_train_context")
        run = span("RayTrainWorker.run_train_fn")
        sync = span("SynchronizationActor.broadcast_from_rank_zero")
        first = min((r[0] for r in mine if r[3] == "SynchronizationActor.broadcast_from_rank_zero"), default=float("nan"))
        last = sync[1]
        print(f"{k:>5} {actor[1] - lo:6.2f} {ctrl[1] - ctrl[0]:6.2f} {workers[1] - ctrl[1]:7.2f} {ctx[1] - workers[1]:6.2f} "
              f"{first - run[0]:6.2f} {last - first:7.2f} {hi - last:8.2f} {hi - lo:6.2f}")


def print_timeline(rows) -> None:
    print(f"{'submit':>8} {'run':>8} {'end':>8} {'dur':>6}  task")
    for sub, run, end, name, pid, state in rows:
        print(f"{sub:8.2f} {run:8.2f} {end:8.2f} {end - sub:6.2f}  {name} pid={pid} {state}")


if __name__ == "__main__":
    main()
