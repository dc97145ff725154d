"""What ``orchestrator run`` prints when a sweep ends: where the files are, the best trials."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.table import Table

from orchestrator.results.schema import PARAM_PREFIX
from orchestrator.sweep.progress import fmt, short_name


def best_trials(trials: pd.DataFrame, metric: str, mode: str, n: int = 5) -> pd.DataFrame:
    done = trials[trials["status"] != "failed"]
    return done.sort_values(metric, ascending=(mode == "min"), na_position="last").head(n)


def _frontier_table(frontier: pd.DataFrame, params: list[str]) -> Table:
    table = Table(title="Pareto frontier (val_accuracy max, size_bytes min)", title_justify="left")
    for column in ["trial", *[short_name(p[len(PARAM_PREFIX):]) for p in params], "val acc", "test acc", "bytes", "ratio"]:
        table.add_column(column, no_wrap=column == "trial", justify="left" if column == "trial" else "right")
    for _, row in frontier.iterrows():
        table.add_row(str(row["trial_id"]), *[fmt(row.get(p)) for p in params], fmt(row["val_accuracy"]),
                      fmt(row["test_accuracy"]), fmt(row["size_bytes"]), fmt(row["compression_ratio"]))
    return table


def print_summary(outcome, console: Console, n: int = 5) -> None:
    trials = outcome.trials
    metric, mode = "val_accuracy", "max"
    counts = trials.groupby(["stage", "status"]).size().to_dict()
    console.print(f"\n[bold]sweep {outcome.sweep.sweep_id}[/] finished in {outcome.wall_s:.1f}s: "
                  + ", ".join(f"{n} {stage} {status}" for (stage, status), n in sorted(counts.items())))
    params = [c for c in trials.columns if c.startswith(PARAM_PREFIX)]
    table = Table(title=f"best {n} trials by {metric}", title_justify="left")
    for column in ["trial", "status", *[short_name(p[len(PARAM_PREFIX):]) for p in params],
                   "val acc", "test acc", "bytes", "ratio", "epochs"]:
        if column in ("trial", "status"):
            table.add_column(column, no_wrap=True, min_width=11 if column == "trial" else 9)
        else:
            table.add_column(column, justify="right")
    for _, row in best_trials(trials, metric, mode, n).iterrows():
        trial = "baseline" if row["stage"] == "baseline" else row["trial_id"]
        cells = [trial, row["status"], *[fmt(row[p]) for p in params],
                 fmt(row["val_accuracy"]), fmt(row["test_accuracy"]), fmt(row["size_bytes"]),
                 fmt(row["compression_ratio"]), fmt(row["epochs_run"])]
        table.add_row(*[str(c) for c in cells])
    console.print(table)
    failed = trials[trials["status"] == "failed"]
    for _, row in failed.head(3).iterrows():
        console.print(f"[red]failed[/] {row['trial_id']}: {row['error']}")
    if outcome.frontier is not None and len(outcome.frontier):
        console.print(_frontier_table(outcome.frontier, params))
    console.print(f"results: {outcome.sweep.path}")
    for name, path in outcome.files.items():
        console.print(f"  {name}: {path}")
