"""Recipe search-space leaves → Ray Tune's param_space (flat, keyed by dotted path)."""

from __future__ import annotations

from ray import tune

from orchestrator.recipe.space import Leaf


def to_tune_domain(leaf: Leaf):
    if leaf.kind == "grid":
        return tune.grid_search(list(leaf.values))
    if leaf.kind == "choice":
        return tune.choice(list(leaf.values))
    lo, hi = leaf.values
    if leaf.kind == "uniform":
        return tune.uniform(lo, hi)
    if leaf.kind == "loguniform":
        return tune.loguniform(lo, hi)
    if leaf.kind == "randint":
        return tune.randint(lo, hi)
    raise ValueError(f"unknown search-space leaf kind {leaf.kind!r}")


def param_space(leaves: tuple[Leaf, ...]) -> dict:
    return {leaf.path: to_tune_domain(leaf) for leaf in leaves}


def count_trials(leaves: tuple[Leaf, ...], num_samples: int) -> int:
    """Tune repeats the full grid ``num_samples`` times, sampling other leaves each time."""
    grid = 1
    for leaf in leaves:
        if leaf.kind == "grid":
            grid *= len(leaf.values)
    return grid * num_samples
