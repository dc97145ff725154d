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
import reprlib
from dataclasses import dataclass
from typing import Any, Iterator

from orchestrator.errors import Problem

LEAF_KINDS = ("grid", "choice", "uniform", "loguniform", "randint")
MAX_OPTIONS = 10_000  # values in one grid/choice leaf

_repr = reprlib.Repr()  # Python 3.11's Repr takes no constructor arguments
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 6
_repr.maxstring, _repr.maxother, _repr.maxlong, _repr.maxlevel = 60, 60, 40, 3


def short_repr(value: Any) -> str:
    """repr() for error messages: bounded, whatever the user's input holds."""
    try:
        return _repr.repr(value)
    except (ValueError, RecursionError):  # e.g. ints over Python's 4300-digit str limit
        return f"<{type(value).__name__}>"


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
            return _distinct(self.values)
        lo, hi = self.values
        if self.kind == "randint":
            return [lo, hi - 1]
        # A point inside the range as well: Tune samples floats, so an integer field swept
        # with {uniform: [1, 5]} must fail here, not in every trial.
        inner = lo * (hi / lo) ** 0.37 if self.kind == "loguniform" else lo + (hi - lo) * 0.37
        return [lo, hi, inner]

    def to_data(self) -> dict:
        return {self.kind: list(self.values)}


def _distinct(values) -> list:
    out, seen = [], set()
    for value in values:
        key = repr(value)
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out


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
            return None, [Problem(path, f"{{{kind}: ...}} needs a non-empty list of values, got {short_repr(raw)}")]
        if len(raw) > MAX_OPTIONS:
            return None, [Problem(path, f"{{{kind}: ...}} holds {len(raw)} values; at most {MAX_OPTIONS} are allowed")]
        return Leaf(path, kind, tuple(raw)), []
    if not isinstance(raw, list) or len(raw) != 2 or not all(_is_number(v) for v in raw):
        return None, [Problem(path, f"{{{kind}: [lo, hi]}} needs a list of two numbers, got {short_repr(raw)}")]
    lo, hi = raw
    if not all(_finite(v) for v in raw):
        return None, [Problem(path, f"{{{kind}: [lo, hi]}} needs finite bounds, got {short_repr(raw)}")]
    if kind == "randint" and not all(isinstance(v, int) for v in raw):
        return None, [Problem(path, f"{{randint: [lo, hi]}} needs two integers, got {short_repr(raw)}")]
    if not lo < hi:
        return None, [Problem(path, f"{{{kind}: [lo, hi]}} needs lo < hi, got lo={short_repr(lo)}, hi={short_repr(hi)}")]
    if kind == "loguniform" and lo <= 0:
        return None, [Problem(path, f"{{loguniform: [lo, hi]}} needs 0 < lo, got lo={short_repr(lo)}")]
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
