"""Accuracy-vs-size plot of a comparison: one colour per sweep, frontiers as step lines.

x is ``size_bytes`` on a log axis, y ``val_accuracy``; dominated configurations are faded,
each sweep's dense baseline is a star, and replicated configurations get 95 % CI error bars.
Drawn on a bare ``matplotlib.figure.Figure`` (Agg canvas): no pyplot state, no display.
"""

from __future__ import annotations

import os

import numpy as np

from orchestrator.results._io import atomic_path
from orchestrator.results.compare import Comparison

__all__ = ["plot_comparison"]


def _draw_sweep(ax, sweep, colour, step: bool) -> None:
    configs = sweep.configs.dropna(subset=["size_bytes", "val_accuracy"])
    dominated, front = configs[~configs["on_front"]], configs[configs["on_front"]]
    ax.scatter(dominated["size_bytes"], dominated["val_accuracy"], s=12, color=colour,
               alpha=0.2, linewidths=0)
    front = front.sort_values("size_bytes")
    ax.plot(front["size_bytes"], front["val_accuracy"], color=colour, marker="o", ms=4,
            drawstyle="steps-post" if step else "default", label=sweep.label)
    ci = front.get("val_accuracy_ci95")
    if ci is not None and np.isfinite(ci.to_numpy(dtype=float)).any():
        ax.errorbar(front["size_bytes"], front["val_accuracy"],
                    yerr=np.nan_to_num(ci.to_numpy(dtype=float)), fmt="none", ecolor=colour,
                    elinewidth=1, capsize=2)
    base = sweep.baseline.dropna(subset=["size_bytes", "val_accuracy"])
    if len(base):
        ax.scatter(base["size_bytes"], base["val_accuracy"], marker="*", s=160, color=colour,
                   edgecolors="black", linewidths=0.6, zorder=5)


def plot_comparison(comparison: Comparison, out_png: str | os.PathLike,
                    title: str | None = None) -> str:
    """Write the comparison's accuracy-vs-size plot as a PNG (atomically); returns its path.

    The frontier is drawn as a step line when the objectives are exactly accuracy and size;
    for other objectives the frontier points (on those objectives) are joined in size order.
    """
    import matplotlib
    from matplotlib.figure import Figure

    columns = {o.column for o in comparison.objectives}
    step = columns == {"val_accuracy", "size_bytes"}
    fig = Figure(figsize=(8, 5), dpi=110)
    ax = fig.subplots()
    colours = matplotlib.colormaps["tab10"].colors
    for i, sweep in enumerate(comparison.sweeps):
        _draw_sweep(ax, sweep, colours[i % len(colours)], step)
    ax.set_xscale("log")
    ax.set_xlabel("size (bytes, log scale)")
    ax.set_ylabel("validation accuracy")
    ax.set_title(title or "accuracy vs size  (star: dense baseline, faded: dominated)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    out_png = os.fspath(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    return out_png
