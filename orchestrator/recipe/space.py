"""Search-space leaves: any value in a recipe may be one of these one-key mappings.

    {grid: [a, b, c]}       every value, in every combination with other grid leaves
    {choice: [a, b, c]}     one value drawn per sample
    {uniform: [lo, hi]}     float drawn uniformly from [lo, hi)
    {loguniform: [lo, hi]}  float drawn log-uniformly, 0 < lo < hi
    {randint: [lo, hi]}     integer drawn from lo..hi-1 (hi exclusive, as Ray Tune)

This module parses and checks leaves and lists the values that validation must try; it does
not import Ray (``sweep/space.py`` turns leaves into Tune domains).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

from orchestrator.errors import Problem

LEAF_KINDS = ("grid", "choice", "uniform", "loguniform", "randint")


@dataclass(frozen=True)
class Leaf:
    """A parsed search-space leaf at a dotted recipe path."""

    path: str
    kind: str
    values: tuple  # grid/choice: the options; ranges: (lo, hi)

    def candidates(self) -> list:
        """Values that stand for the leaf when the recipe is validated: all options of a
        grid/choice, both ends of a range (so an out-of-range bound is caught up front)."""
        if self.kind in ("grid", "choice"):
            return list(self.values)
        lo, hi = self.values
        return [lo, hi - 1] if self.kind == "randint" else [lo, hi]

    def to_data(self) -> dict:
        return {self.kind: list(self.values)}


def is_leaf(node: Any) -> bool:
    """A mapping whose keys include a leaf kind is meant as a leaf (and checked as one)."""
    return isinstance(node, dict) and any(k in LEAF_KINDS for k in node)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: float | int) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def parse_leaf(path: str, node: dict) -> tuple[Leaf | None, list[Problem]]:
    """Parse one leaf mapping; return (leaf, []) or (None, problems)."""
    if len(node) != 1:
        keys = ", ".join(sorted(map(str, node)))
        return None, [Problem(path, f"a search-space leaf has exactly one key ({'|'.join(LEAF_KINDS)}), got {{{keys}}}")]
    kind, raw = next(iter(node.items()))
    if kind in ("grid", "choice"):
        if not isinstance(raw, list) or not raw:
            return None, [Problem(path, f"{{{kind}: ...}} needs a non-empty list of values, got {raw!r}")]
        return Leaf(path, kind, tuple(raw)), []
    if not isinstance(raw, list) or len(raw) != 2 or not all(_is_number(v) for v in raw):
        return None, [Problem(path, f"{{{kind}: [lo, hi]}} needs a list of two numbers, got {raw!r}")]
    lo, hi = raw
    if not all(_finite(v) for v in raw):
        return None, [Problem(path, f"{{{kind}: [lo, hi]}} needs finite bounds, got {raw!r}")]
    if kind == "randint" and not all(isinstance(v, int) for v in raw):
        return None, [Problem(path, f"{{randint: [lo, hi]}} needs two integers, got {raw!r}")]
    if not lo < hi:
        return None, [Problem(path, f"{{{kind}: [lo, hi]}} needs lo < hi, got lo={lo!r}, hi={hi!r}")]
    if kind == "loguniform" and lo <= 0:
        return None, [Problem(path, f"{{loguniform: [lo, hi]}} needs 0 < lo, got lo={lo!r}")]
    return Leaf(path, kind, (lo, hi)), []


def walk(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Yield (dotted path, node) for every leaf-or-value below ``node``; mappings that are
    search-space leaves are yielded whole instead of being descended into."""
    if isinstance(node, dict) and not is_leaf(node):
        for key, child in node.items():
            yield from walk(child, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, node


def find_leaves(data: dict) -> tuple[list[Leaf], list[Problem]]:
    """Every search-space leaf in a recipe mapping, and the problems with malformed ones."""
    leaves, problems = [], []
    for path, node in walk(data):
        if is_leaf(node):
            leaf, found = parse_leaf(path, node)
            problems += found
            if leaf is not None:
                leaves.append(leaf)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                if is_leaf(item):
                    problems.append(Problem(f"{path}[{i}]", "search-space leaves inside lists are not supported; make the whole list a {choice: [...]} of lists"))
    return leaves, problems


def get_path(data: dict, path: str) -> Any:
    node = data
    for key in path.split("."):
        node = node[key]
    return node


def set_path(data: dict, path: str, value: Any) -> None:
    """Set a dotted path in nested dicts, creating intermediate mappings as needed."""
    keys = path.split(".")
    node = data
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict) or is_leaf(node.get(key)):
            node[key] = {}
        node = node[key]
    node[keys[-1]] = value
