"""Long hostile-input fuzz of recipes: the CI fuzz test's generators, many more cases.

Prints, per generator: cases, valid templates, clean RecipeErrors, escapes (any other
exception, a case past the time limit, a valid template that cannot run), the first escaping
inputs, the escapes grouped by exception type, and the time per case.

    PYTHONPATH=. .venv/bin/python bench/fuzz_recipes.py --cases 20000 --seed 1
    PYTHONPATH=. .venv/bin/python bench/fuzz_recipes.py --cases 2000 --only text --show 10
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load_fuzz_module():
    """tests/ is not a package (pytest runs with --import-mode=importlib): load by path."""
    spec = importlib.util.spec_from_file_location("recipe_fuzz", ROOT / "tests" / "recipe" / "test_fuzz.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _kind(detail: str) -> str:
    """Exception type; for the oracle's own AssertionErrors, which check failed."""
    kind, _, rest = detail.partition(":")
    return f"{kind} ({re.sub(r'[0-9]+', 'N', rest.strip())[:32]}...)" if kind == "AssertionError" else kind


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20_000, help="total cases, split 3:5:2 over text/mutated/overrides")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed (the CI test uses derandomize instead)")
    parser.add_argument("--only", choices=["text", "mutated", "overrides"], help="run one generator")
    parser.add_argument("--show", type=int, default=5, help="escaping inputs to print per generator")
    args = parser.parse_args(argv)

    fz = _load_fuzz_module()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "fuzz.yaml"
        base.write_text(fz.SHIPPED[0].read_text(encoding="utf-8"), encoding="utf-8")
        generators = {
            "text": (fz.yaml_texts, fz._text_case, 3),
            "mutated": (fz.mutated_recipes(), fz._mutated_case, 5),
            "overrides": (fz.st.lists(fz.override_items, min_size=1, max_size=4), fz._overrides_case(base), 2),
        }
        if args.only:
            generators = {args.only: generators[args.only]}
        weight = sum(w for _, _, w in generators.values())
        totals = collections.Counter()
        for name, (strategy, call, share) in generators.items():
            n = max(1, args.cases * share // weight)
            started = time.perf_counter()
            run = fz.fuzz(strategy, n, call, seed=args.seed)
            wall = time.perf_counter() - started
            totals.update(run.counts)
            kinds = collections.Counter(_kind(detail) for detail, _ in run.escapes)
            print(f"\n== {name}: {run.total} cases in {wall:.1f} s "
                  f"({1000 * run.seconds / max(run.total, 1):.2f} ms/case in the code under test, "
                  f"{1000 * wall / max(run.total, 1):.2f} ms/case with generation)")
            print(f"   valid {run.counts['valid']}, clean errors {run.counts['error']}, escapes {run.counts['escape']}"
                  f" ({100 * run.counts['escape'] / max(run.total, 1):.2f} %)")
            if kinds:
                print("   escapes by kind: " + ", ".join(f"{k} x{v}" for k, v in kinds.most_common()))
            for detail, case in run.escapes[:args.show]:
                print(f"   - {detail[:300]}\n     input: {case[:400]}")
    total = sum(totals.values())
    print(f"\nall: {total} cases, valid {totals['valid']}, clean errors {totals['error']}, "
          f"escapes {totals['escape']} ({100 * totals['escape'] / max(total, 1):.2f} %)")
    return 1 if totals["escape"] else 0


if __name__ == "__main__":
    sys.exit(main())
