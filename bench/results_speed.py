"""Speed of the results layer, measured in one run (not a test; numbers vary by machine).

    python bench/results_speed.py

Targets: Pareto front of 1,000,000 rows x 2 objectives <= 1 s; exact 2-D hypervolume of
100,000 points <= 0.5 s; compare of two sweeps of 10,000 trials <= 3 s. Each timing is the
best of ``--repeat`` runs; the brute-force columns show what the O(n log n) paths save.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout, not an install

from orchestrator.results import compare_sweeps, hypervolume, pareto_mask
from orchestrator.results._synth import synthetic_trials
from orchestrator.results.pareto import _front_nd


def best_of(repeat, fn, *args):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []

    points = rng.random((1_000_000, 2))
    t, mask = best_of(args.repeat, pareto_mask, points)
    rows.append(("pareto front, 1,000,000 x 2", t, 1.0, f"{mask.sum()} on front"))
    sub = points[:20_000]
    t_fast, _ = best_of(args.repeat, pareto_mask, sub)
    t_nd, _ = best_of(1, _front_nd, sub)
    rows.append(("  20,000 x 2: general path / fast path", t_nd / t_fast, None, "ratio"))

    angles = rng.uniform(0, np.pi / 2, 100_000)  # all on one front: the worst case
    front = np.column_stack([np.cos(angles), np.sin(angles)])
    t, hv = best_of(args.repeat, hypervolume, front, [1.0, 1.0])
    rows.append(("hypervolume 2-D, 100,000 points", t, 0.5, f"hv={hv:.6f}"))
    t, hv = best_of(args.repeat, hypervolume, np.abs(rng.normal(size=(10_000, 3))) * -1 + 4,
                    [4.0, 4.0, 4.0])
    rows.append(("hypervolume 3-D, 10,000 points", t, None, f"hv={hv:.3f}"))

    a = synthetic_trials("a", n_configs=10_000, rng=1)
    b = synthetic_trials("b", n_configs=10_000, skill=0.01, rng=2)
    t, c = best_of(args.repeat, compare_sweeps, [a, b])
    rows.append(("compare, 2 sweeps x 10,000 trials", t, 3.0,
                 f"hv gain {c.gains[0].hv_gain_rel:+.2%}"))
    a3 = synthetic_trials("a3", n_configs=3_334, seeds=(0, 1, 2), rng=1)
    b3 = synthetic_trials("b3", n_configs=3_334, seeds=(0, 1, 2), skill=0.01, rng=2)
    t, _ = best_of(args.repeat, compare_sweeps, [a3, b3])
    rows.append(("compare, 2 sweeps x 10,002 trials (3 seeds)", t, 3.0, ""))

    print(f"{'case':46s} {'seconds':>9s} {'target':>7s}  note")
    for name, value, target, note in rows:
        if note == "ratio":
            print(f"{name:46s} {value:8.1f}x {'':>7s}")
            continue
        verdict = "" if target is None else ("ok" if value <= target else "SLOW")
        shown = "" if target is None else f"{target:g}"
        print(f"{name:46s} {value:9.3f} {shown:>7s}  {verdict:4s} {note}")


if __name__ == "__main__":
    main()
