"""Result subcommands of the ``orchestrator`` CLI: ``ls``, ``frontier``, ``compare``, ``report``.

Contract with ``orchestrator/cli.py``: ``register(subparsers)`` adds the four subcommands;
each sets ``func``, a handler ``func(args) -> int`` returning the exit code, so ``main`` does
``return args.func(args)``. Exit codes: 0 success; 2 bad input (a missing path, an unknown
objective column, a bad direction or budget), reported on stderr as one line that names the
argument, the value and what is allowed. Handlers catch ``ResultsInputError`` themselves;
argparse's own usage errors exit 2 as well. With ``--json`` stdout holds JSON only.
"""

from __future__ import annotations

import argparse
import json
import sys

import pandas as pd

from orchestrator.results._format import format_frame
from orchestrator.results.compare import (
    DEFAULT_BUDGETS,
    _jsonable,
    compare_sweeps,
    display_frame,
    summarize,
)
from orchestrator.results.frontier import sweep_frontier
from orchestrator.results.objectives import ResultsInputError, parse_objectives
from orchestrator.results.reading import list_sweeps, read_results
from orchestrator.results.report import write_report

__all__ = ["EXIT_BAD_INPUT", "EXIT_OK", "register"]

EXIT_OK = 0
EXIT_BAD_INPUT = 2

_EXAMPLES = {
    "ls": "examples:\n  orchestrator ls\n  orchestrator ls results/ --json",
    "frontier": (
        "examples:\n  orchestrator frontier results/mlp-digits\n"
        "  orchestrator frontier results/mlp-digits/20250101-120000 "
        "--objectives val_accuracy:max size_bytes:min latency_ms_b1:min --json"),
    "compare": (
        "examples:\n  orchestrator compare results/mlp-digits/A results/mlp-digits/B\n"
        "  orchestrator compare results/mlp-digits --budgets 0.25 0.1 --json"),
    "report": (
        "examples:\n  orchestrator report results/mlp-digits -o report.html\n"
        "  orchestrator report results/a/S1 results/b/S2 -o out/compare.html"),
}


def _objective(text: str):
    try:
        return parse_objectives([text])[0]
    except ResultsInputError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _budget(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value:  # also rejects NaN
        raise argparse.ArgumentTypeError(
            f"budget must be a positive fraction of the dense size (e.g. 0.25), got {text!r}")
    return value


def _parser(subparsers, name: str, help: str, usage: str):
    return subparsers.add_parser(
        name, help=help, description=help, usage=f"orchestrator {name} {usage}",
        epilog=_EXAMPLES[name], formatter_class=argparse.RawDescriptionHelpFormatter)


def _add_common(p, objectives: bool = True) -> None:
    if objectives:
        p.add_argument("--objectives", nargs="+", type=_objective, metavar="COLUMN:max|min",
                       help="objectives (default: val_accuracy:max size_bytes:min)")
    p.add_argument("--json", action="store_true", help="print JSON only, nothing else")


def register(subparsers) -> None:
    """Add ``ls``, ``frontier``, ``compare`` and ``report`` to an argparse subparsers object."""
    p = _parser(subparsers, "ls", "List the sweeps under a results root.", "[ROOT] [--json]")
    p.add_argument("root", nargs="?", default="results", metavar="ROOT",
                   help="results root, recipe folder or sweep folder (default: results)")
    _add_common(p, objectives=False)
    p.set_defaults(func=_handler(_ls))

    p = _parser(subparsers, "frontier", "Print the Pareto frontier of each sweep under PATH.",
                "PATH [--objectives COLUMN:max|min ...] [--json]")
    p.add_argument("path", metavar="PATH", help="results root, recipe folder or sweep folder")
    _add_common(p)
    p.set_defaults(func=_handler(_frontier))

    p = _parser(subparsers, "compare", "Compare the frontiers of sweeps (the first is the base).",
                "A [B ...] [--objectives COLUMN:max|min ...] [--budgets F ...] [--json]")
    p.add_argument("paths", nargs="+", metavar="PATH", help="sweep, recipe or root folders")
    p.add_argument("--budgets", nargs="+", type=_budget, default=list(DEFAULT_BUDGETS),
                   metavar="F", help="size budgets as fractions of the dense size "
                   "(default: 0.25 0.1 0.025)")
    _add_common(p)
    p.set_defaults(func=_handler(_compare))

    p = _parser(subparsers, "report", "Write a self-contained HTML report comparing sweeps.",
                "PATH [PATH ...] -o REPORT.html [--objectives COLUMN:max|min ...]")
    p.add_argument("paths", nargs="+", metavar="PATH", help="sweep, recipe or root folders")
    p.add_argument("-o", "--output", required=True, metavar="REPORT.html",
                   help="where to write the HTML (the PNG goes beside it)")
    p.add_argument("--objectives", nargs="+", type=_objective, metavar="COLUMN:max|min")
    p.add_argument("--title", help="report title")
    p.set_defaults(func=_handler(_report))


def _handler(command):
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except ResultsInputError as e:
            print(f"orchestrator {command.__name__.lstrip('_')}: error: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT

    return run


# Short headers so that tables fit an 80-column terminal.
_SHORT = {
    "best_val_accuracy": "best acc", "smallest_size_bytes": "min size", "val_accuracy": "val acc",
    "size_bytes": "size", "compression_ratio": "ratio", "config_id": "config", "trial_id": "trial",
    "n_seeds": "seeds", "hypervolume": "HV", "hv_low": "HV low", "hv_high": "HV high",
    "hv_gain": "HV gain", "hv_gain_rel": "gain %", "exceeds_noise": "beyond noise",
    "base_points_dominated": "base pts dominated", "points_dominated_by_base": "dominated by base",
    "max_size_bytes": "max size", "delta_vs_base": "Δ vs base", "delta_ci95": "Δ ±95%",
}


def _print_json(payload) -> None:
    sys.stdout.write(json.dumps(_jsonable(payload), indent=2) + "\n")


def _print_table(df: pd.DataFrame, title: str | None = None) -> None:
    from rich.table import Table

    from orchestrator.console import output_console

    cells = format_frame(df)
    table = Table(title=title, title_justify="left")
    for column in cells.columns:
        header = _SHORT.get(column, column)
        if header.startswith("param."):  # param.compression.pruning.sparsity -> pruning.sparsity
            header = ".".join(header.split(".")[-2:])
        table.add_column(header, overflow="fold")
    for row in cells.itertuples(index=False):
        table.add_row(*row)
    output_console().print(table if len(df) else f"{title or ''}: none")


def _ls(args) -> int:
    sweeps = list_sweeps(args.root)
    trials = read_results(args.root)
    stats = summarize(trials) if not trials.empty else pd.DataFrame(columns=["sweep_id"])
    table = sweeps[["recipe_name", "sweep_id", "created_at"]].merge(stats, on="sweep_id",
                                                                    how="left")
    table = table.rename(columns={"recipe_name": "recipe", "created_at": "date"})
    if args.json:
        _print_json(table.to_dict("records"))
    else:
        _print_table(table.drop(columns=["dense_size_bytes"]),
                     f"sweeps under {args.root}")
    return EXIT_OK


def _frontier(args) -> int:
    objectives = parse_objectives(args.objectives)
    trials = read_results(args.path)
    if trials.empty:
        raise ResultsInputError(f"PATH {args.path!r}: no trials.parquet at or below it")
    payload = []
    for sweep_id, df in trials.groupby("sweep_id", sort=False):
        front = display_frame(sweep_frontier(df, objectives), objectives)
        payload.append({"sweep_id": sweep_id, "recipe_name": df["recipe_name"].iloc[0],
                        "frontier": front})
    if args.json:
        _print_json({"objectives": [str(o) for o in objectives],
                     "sweeps": [{**p, "frontier": p["frontier"].to_dict("records")}
                                for p in payload]})
        return EXIT_OK
    for p in payload:
        _print_table(p["frontier"].drop(columns=["sweep_id"]),
                     f"frontier of {p['recipe_name']}/{p['sweep_id']} "
                                    f"({', '.join(map(str, objectives))})")
    return EXIT_OK


def _compare(args) -> int:
    comparison = compare_sweeps(args.paths, args.objectives, args.budgets)
    if args.json:
        _print_json(comparison.to_dict())
        return EXIT_OK
    # The terminal gets the essentials; --json and the HTML report carry every column.
    summary = comparison.summary().drop(columns=["configs", "failed", "hv_low", "hv_high",
                                                 "hv_gain"])
    summary["hv_gain_rel"] *= 100
    _print_table(summary, "hypervolume (gain relative to the first sweep)")
    for g in comparison.gains:
        print(f"{g.base} frontier points dominated by {g.other}: "
              f"{', '.join(g.base_dominated['config_id'].astype(str)) or 'none'}")
        print(f"{g.other} frontier points dominated by {g.base}: "
              f"{', '.join(g.other_dominated['config_id'].astype(str)) or 'none'}")
    budgets = comparison.budgets.drop(columns=["val_accuracy_std", "max_size_bytes"],
                                      errors="ignore")
    _print_table(budgets, "best val accuracy within a size budget (fraction of dense size)")
    return EXIT_OK


def _report(args) -> int:
    out = write_report(args.paths, args.output, args.objectives, title=args.title)
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return EXIT_OK
