"""``orchestrator`` command line: one subcommand per verb.

Exit codes: 0 success, 2 bad input (the message says what to fix), 1 a run that failed.
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from orchestrator.console import output_console
from orchestrator.errors import RecipeError, UsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's default exit code is 2 as well; keep one style
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _add_recipe_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="path to a recipe YAML file")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="override recipe values, e.g. train.epochs=3 'train.lr={grid: [0.1, 0.05]}'")


def _cmd_validate(args) -> int:
    console = output_console()
    from orchestrator.recipe import load_recipe
    from orchestrator.sweep.space import count_trials

    template = load_recipe(args.recipe, args.overrides)
    recipe = template.base
    total = count_trials(template.leaves, recipe.search.num_samples)
    console.print(f"[green]ok[/] {args.recipe}: recipe {recipe.name!r}, {total} sweep trials, "
                  f"{len(template.leaves)} search-space leaves")
    for leaf in template.leaves:
        console.print(f"  {leaf.path}: {leaf.to_data()}")
    return EXIT_OK


def _cmd_run(args) -> int:
    console = output_console()
    from orchestrator.recipe import load_recipe

    template = load_recipe(args.recipe, args.overrides)  # nothing is started or written before this passes
    from orchestrator.sweep.cluster import default_cluster_file
    from orchestrator.sweep.report import print_summary
    from orchestrator.sweep.runner import run_sweep

    cluster = args.cluster
    if cluster is None and (found := default_cluster_file(args.address)) is not None:
        console.print(f"sizing concurrency from this cluster's launcher config {found} (--cluster to choose another)")
        cluster = str(found)
    outcome = run_sweep(template, address=args.address, console=console, quiet=args.quiet, cluster=cluster,
                        resume=args.resume)
    print_summary(outcome, console)
    failed = (outcome.trials["status"] == "failed").sum()
    return EXIT_FAILED if failed == len(outcome.trials) else EXIT_OK


def _cmd_plan(args) -> int:
    import os

    from orchestrator.recipe import load_recipe
    from orchestrator.sweep.cluster import nodes_needed, read_node_types
    from orchestrator.sweep.planner import PlanError
    from orchestrator.sweep.runner import plan_sweep

    console = output_console()
    template = load_recipe(args.recipe, args.overrides)
    node_types = read_node_types(args.cluster) if args.cluster else None
    local = {"CPU": float(os.cpu_count() or 1), "GPU": float(_local_gpus())}
    try:
        plan = plan_sweep(template, local, address=None, node_types=node_types)
    except PlanError as exc:
        raise UsageError(str(exc)) from None
    where = f"cluster {args.cluster}" if node_types else f"this machine ({local['CPU']:g} CPUs, {local['GPU']:g} GPUs)"
    console.print(f"[bold]{template.name}[/] on {where}")
    console.print(f"  trials: {plan.total_trials} (+1 dense baseline)" if template.base.baseline.enabled
                  else f"  trials: {plan.total_trials}")
    console.print(f"  per trial: {plan.workers} worker(s) × ({plan.cpus_per_worker:g} CPU, {plan.gpus_per_worker:g} GPU)"
                  + (" + a 0.01-CPU driver" if plan.workers > 1 else ""))
    console.print(f"  concurrency: {plan.max_concurrent} trials at once")
    for note in plan.notes:
        console.print(f"  [yellow]note:[/] {note}")
    if node_types:
        units = plan.max_concurrent * plan.workers
        added = nodes_needed(node_types, units, plan.cpus_per_worker, plan.gpus_per_worker)
        console.print("  autoscaler adds: " + (", ".join(f"{n} × {name}" for name, n in added.items()) or "nothing"))
    if not args.no_estimate:
        from orchestrator.sweep.estimate import estimate

        est = estimate(template, plan)
        console.print(f"  estimate (timed here): {est.epoch_s:.2f} s/epoch, {est.trial_s:.1f} s per full trial, "
                      f"≤ {est.wall_s:.0f} s wall (ASHA stops shorten it), {est.gpu_hours:.3f} GPU-hours")
    return EXIT_OK


def _local_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="orchestrator", description=__doc__.splitlines()[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="train the baseline and run the recipe's sweep",
                         description="Train the dense baseline, sweep with Ray Tune, write Parquet results.",
                         epilog="examples:\n  orchestrator run recipes/quickstart.yaml\n"
                                "  orchestrator run recipes/quickstart.yaml train.epochs=3 search.num_samples=2\n"
                                "  orchestrator run recipes/quickstart.yaml --address auto   # on a Ray cluster's head",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_recipe_args(run)
    run.add_argument("--address", default=None,
                     help="Ray cluster address ('auto' on a cluster head); default: an embedded local Ray")
    run.add_argument("--quiet", action="store_true", help="no live trial table")
    run.add_argument("--resume", nargs="?", const="latest", default=None, metavar="SWEEP_ID",
                     help="continue an interrupted sweep of this recipe (default: the newest): finished trials "
                          "are kept, unfinished ones continue from their last checkpoint")
    run.add_argument("--cluster", default=None, metavar="CLUSTER_YAML",
                     help="size concurrency from this cluster launcher config's node types (autoscaling clusters; "
                          "default with --address: the head's ~/ray_bootstrap_config.yaml when it exists)")
    run.set_defaults(func=_cmd_run)

    validate = sub.add_parser("validate", help="check a recipe without running it",
                              description="Check a recipe (and overrides) without running anything.",
                              epilog="example:\n  orchestrator validate recipes/quickstart.yaml train.epochs=3",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_recipe_args(validate)
    validate.set_defaults(func=_cmd_validate)

    plan = sub.add_parser("plan", help="show what a sweep will ask for and how long it may take",
                          description="Print the trials, resources per trial, concurrency, the nodes an autoscaler "
                                      "would add and an estimate of wall time and GPU-hours (one epoch is timed here).",
                          epilog="examples:\n  orchestrator plan recipes/quickstart.yaml\n"
                                 "  orchestrator plan recipes/quickstart.yaml --cluster cluster.yaml parallel.use_gpu=true "
                                 "parallel.gpus_per_worker=0.25",
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_recipe_args(plan)
    plan.add_argument("--cluster", default=None, metavar="CLUSTER_YAML",
                      help="plan for this cluster launcher config (default: this machine)")
    plan.add_argument("--no-estimate", action="store_true", help="skip timing one epoch")
    plan.set_defaults(func=_cmd_plan)

    from orchestrator.results.cli import register as register_results

    register_results(sub)  # ls | frontier | compare | report
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Options may come after the KEY=VALUE overrides (``run R.yaml a=1 --quiet``): argparse
    stops a ``nargs='*'`` positional at the first option, so parse the rest in a second pass
    and append the overrides that follow."""
    args, rest = parser.parse_known_args(argv)
    if rest and hasattr(args, "overrides"):
        extra = [item for item in rest if "=" in item and not item.startswith("-")]
        unknown = [item for item in rest if item not in extra]
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.overrides = list(args.overrides) + extra
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(build_parser(), argv)
    errors = Console(stderr=True, soft_wrap=True)  # one problem per line, even in CI logs
    try:
        return args.func(args)
    except RecipeError as exc:
        errors.print(exc.format(), markup=False, highlight=False)
        return EXIT_USAGE
    except UsageError as exc:
        errors.print(f"error: {exc}", markup=False, highlight=False)
        return EXIT_USAGE
    except KeyboardInterrupt:
        errors.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
