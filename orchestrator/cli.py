"""``orchestrator`` command line: one subcommand per verb.

Exit codes: 0 success, 2 bad input (the message says what to fix), 1 a run that failed.
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

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
    console = Console()
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
    console = Console()
    if not console.is_terminal:  # logs and pipes: wide enough for the tables, never wrapped
        console = Console(width=160)
    from orchestrator.recipe import load_recipe

    template = load_recipe(args.recipe, args.overrides)  # nothing is started or written before this passes
    from orchestrator.sweep.report import print_summary
    from orchestrator.sweep.runner import run_sweep

    outcome = run_sweep(template, address=args.address, console=console, quiet=args.quiet)
    print_summary(outcome, console)
    failed = (outcome.trials["status"] == "failed").sum()
    return EXIT_FAILED if failed == len(outcome.trials) else EXIT_OK


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
    run.set_defaults(func=_cmd_run)

    validate = sub.add_parser("validate", help="check a recipe without running it",
                              description="Check a recipe (and overrides) without running anything.",
                              epilog="example:\n  orchestrator validate recipes/quickstart.yaml train.epochs=3",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_recipe_args(validate)
    validate.set_defaults(func=_cmd_validate)

    from orchestrator.results.cli import register as register_results

    register_results(sub)  # ls | frontier | compare | report
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
