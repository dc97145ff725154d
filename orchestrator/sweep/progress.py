"""A live trial table in the terminal (rich), fed by Tune's callback API instead of Ray's logs."""

from __future__ import annotations

import time

import pandas as pd

from ray import tune
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

STATUS_STYLE = {"PENDING": "dim", "RUNNING": "cyan", "TERMINATED": "green", "ERROR": "red", "PAUSED": "yellow"}
MAX_ROWS = 24


def short_name(path: str) -> str:
    """``train.lr_schedule.decay`` → ``decay``: column headers stay narrow."""
    return path.rsplit(".", 1)[-1]


def fmt(value) -> str:
    try:
        missing = value is None or bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and other non-scalars
        missing = False
    if missing:
        return "-"
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() and abs(value) >= 1e4 else f"{value:.4g}"
    return str(value)


class LiveTrialTable(tune.Callback):
    """Redraws a table of trials (status, swept values, epoch, metric) as results arrive."""

    def __init__(self, console: Console, title: str, param_paths: list[str], metric: str, mode: str, epochs: int):
        self.console, self.title, self.params = console, title, param_paths
        self.metric, self.mode, self.epochs = metric, mode, epochs
        self.rows: dict[str, dict] = {}
        self.started = time.monotonic()
        self.live = Live(self._render(), console=console, refresh_per_second=4, transient=False)
        self.live.start()

    def __getstate__(self):
        # Tune pickles its callbacks with the experiment state; the terminal stays here.
        return {**self.__dict__, "live": None, "console": None}

    def close(self) -> None:
        if self.live is None:
            return
        self.live.update(self._render())
        self.live.stop()
        if not self.console.is_terminal:
            self.console.print()

    def _row(self, trial) -> dict:
        row = self.rows.setdefault(trial.trial_id, {"epoch": 0, "value": None, "best": None})
        row["status"] = trial.status
        row["config"] = trial.config
        return row

    def _refresh(self) -> None:
        if self.live is not None:  # None in a copy Tune unpickled (a restored experiment)
            self.live.update(self._render())

    def on_trial_start(self, iteration, trials, trial, **info):
        self._row(trial)
        self._refresh()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        row = self._row(trial)
        row["epoch"] = result.get("epoch", row["epoch"])
        value = result.get(self.metric)
        row["value"] = value
        if value is not None:
            better = max if self.mode == "max" else min
            row["best"] = value if row["best"] is None else better(row["best"], value)
        self._refresh()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._row(trial)["status"] = "TERMINATED"
        self._refresh()

    def on_trial_error(self, iteration, trials, trial, **info):
        self._row(trial)["status"] = "ERROR"
        self._refresh()

    def _render(self):
        table = Table(title=self.title, title_justify="left", expand=False, pad_edge=False)
        table.add_column("trial")
        table.add_column("status")
        for path in self.params:
            table.add_column(short_name(path), justify="right")
        table.add_column("epoch", justify="right")
        table.add_column(self.metric, justify="right")
        table.add_column("best", justify="right")
        items = list(self.rows.items())
        running = [kv for kv in items if kv[1].get("status") == "RUNNING"]
        shown = (running + [kv for kv in items if kv not in running])[:MAX_ROWS]
        for trial_id, row in shown:
            status = row.get("status", "PENDING")
            cells = [fmt(row.get("config", {}).get(p)) for p in self.params]
            table.add_row(trial_id, Text(status.lower(), style=STATUS_STYLE.get(status, "")), *cells,
                          f"{row['epoch']}/{self.epochs}", fmt(row["value"]), fmt(row["best"]))
        counts: dict[str, int] = {}
        for _, row in items:
            counts[row.get("status", "PENDING")] = counts.get(row.get("status", "PENDING"), 0) + 1
        summary = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
        footer = Text(f"{len(items)} trials ({summary}) · {time.monotonic() - self.started:.0f}s", style="dim")
        if len(items) > MAX_ROWS:
            footer.append(f" · showing {MAX_ROWS}")
        return Group(table, footer)
