"""Where the CPU goes while a 2-worker DDP trial trains: per-process CPU use (from /proc),
sampled for a few seconds in the middle of training.

On a 2-core machine the two Ray Train workers can only be as fast as what the rest leaves
them: this shows how much the Ray control processes (Train controller, Tune's trial
driver and queue, the report barrier, GCS, raylet, log monitor, dashboard agent) take.

Run: .venv/bin/python bench/ddp_cpu_breakdown.py [--epochs 30] [--sample-after 26] [--seconds 6]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import threading
import time

from ddp_speedup import epoch_seconds

import ray

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_times() -> dict[str, tuple[float, str]]:
    """pid -> (user + system CPU seconds, command line) of every process."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline") as f:
                command = f.read().replace("\0", " ").strip()[:90] or f"[pid {pid}]"
        except OSError:  # the process ended between listing and reading
            continue
        found[pid] = ((int(fields[11]) + int(fields[12])) / TICKS, command)
    return found


def sample(after: float, seconds: float, report: list[str]) -> None:
    time.sleep(after)
    before, started = cpu_times(), time.monotonic()
    time.sleep(seconds)
    now, elapsed = cpu_times(), time.monotonic() - started
    usage = sorted(((now[p][0] - before[p][0]) / elapsed * 100, now[p][1]) for p in now if p in before)
    busy = [(pct, cmd) for pct, cmd in usage if pct >= 0.3]
    report += [f"{pct:6.1f} %  {cmd}" for pct, cmd in reversed(busy)]
    workers = sum(pct for pct, cmd in usage if "RayTrainWorker" in cmd)
    report.append(f"total {sum(p for p, _ in usage):.0f} % of {100 * os.cpu_count()} %; "
                  f"Train workers {workers:.0f} %, everything else {sum(p for p, _ in usage) - workers:.0f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--sample-after", type=float, default=26.0, help="seconds: start-up takes ~20 s")
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    report: list[str] = []
    threading.Thread(target=sample, args=(args.sample_after, args.seconds, report), daemon=True).start()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    with tempfile.TemporaryDirectory() as results:
        per_epoch = epoch_seconds(2, args.epochs, results)
    ray.shutdown()
    print("\n".join(report) or "no sample: training ended before --sample-after")
    print(f"2 DDP workers: {per_epoch:.3f} s/epoch")


if __name__ == "__main__":
    main()
