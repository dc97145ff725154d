"""YAML file (+ command-line overrides) → validated ``RecipeTemplate``.

Validation reports every problem at once. A recipe with search-space leaves is validated once
with each candidate value of each leaf substituted (all options of a grid/choice, both ends of
a range), so ``bits: {grid: [4, 9]}`` fails up front, at load time, naming the leaf.
"""

from __future__ import annotations

import hashlib
import json
import itertools
import math
import re
import typing
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import BaseModel, ValidationError

from orchestrator.errors import Problem, RecipeError
from orchestrator.recipe.schema import Recipe
from orchestrator.recipe.space import Leaf, find_leaves, set_path, short_repr, shorten

MAX_RECIPE_BYTES = 1_000_000
# Sections whose values must be the same for every trial of a sweep.
UNSWEEPABLE = {
    "name": "the recipe name names the results folder",
    "parallel": "all trials of a sweep share one resource plan, so parallel settings cannot be swept",
    "search": "search settings configure the sweep itself",
    "results": "all trials of a sweep write to one results folder",
    "baseline": "the baseline is trained once per sweep",
}
OVERRIDE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class RecipeTemplate:
    """A validated recipe that may still hold search-space leaves.

    ``base`` is the recipe with every leaf at its first candidate (what ``validate`` shows);
    ``resolve`` gives the concrete recipe of one trial.
    """

    data: dict
    leaves: tuple[Leaf, ...]
    base: Recipe
    source: str | None = None

    @property
    def name(self) -> str:
        return self.base.name

    @property
    def hash(self) -> str:
        canonical = json.dumps(self.data, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def baseline_recipe(self) -> Recipe:
        """The recipe of the dense baseline run: leaves at their first candidate, then
        ``baseline.overrides`` applied."""
        return Recipe.model_validate(_baseline_data(self.data, self.leaves))

    def resolve(self, values: Mapping[str, Any]) -> Recipe:
        """The concrete recipe for one point of the search space ({dotted path: value})."""
        unknown = set(values) - {leaf.path for leaf in self.leaves}
        if unknown:
            raise KeyError(f"not search-space paths of this recipe: {sorted(unknown)}")
        data = _substitute(self.data, self.leaves, values)
        return Recipe.model_validate(data)


# --- reading ----------------------------------------------------------------------------

class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(None, None, "found a list or mapping used as a key", key_node.start_mark)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {short_repr(key)}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# PyYAML raises more than YAMLError on scalars it cannot construct (dates like 2001-02-30,
# `!!int abc`, ints over Python's 4300-digit limit), and recurses on deep nesting.
_CONSTRUCT_ERRORS = (yaml.YAMLError, ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)
MAX_NODES = 200_000  # values a recipe may expand to once YAML aliases are followed
MAX_DEPTH = 64


def _load_yaml(text: str) -> tuple[Any, str | None]:
    """(data, None) or (None, what is wrong) for YAML text that may be hostile."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        return None, "YAML nested too deeply"
    except _CONSTRUCT_ERRORS as exc:
        return None, f"not valid YAML: {shorten(str(exc), 300)}"
    problem = _check_size(data)
    return (None, problem) if problem else (data, None)


def _check_size(data: Any) -> str | None:
    """Bound what the rest of validation walks: aliases can make a tiny file expand to
    billions of values ("billion laughs"), and deep nesting exhausts the stack."""
    budget, stack = MAX_NODES, [(data, 0)]
    while stack:
        node, depth = stack.pop()
        budget -= 1
        if budget < 0:
            return f"recipe expands to more than {MAX_NODES} values (YAML aliases?)"
        if depth > MAX_DEPTH:
            return f"recipe is nested more than {MAX_DEPTH} levels deep"
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
    return None


def parse_yaml(text: str, source: str) -> dict:
    data, problem = _load_yaml(text)
    if problem:
        raise RecipeError([Problem("", problem)], source)
    if not isinstance(data, dict):
        kind = type(data).__name__ if data is not None else "an empty document"
        raise RecipeError([Problem("", f"a recipe is a YAML mapping of sections, got {kind}")], source)
    return data


def read_recipe_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise RecipeError([Problem("", f"recipe file not found: {str(path)!r}")], str(path))
    if path.stat().st_size > MAX_RECIPE_BYTES:
        raise RecipeError([Problem("", f"recipe file is larger than {MAX_RECIPE_BYTES} bytes")], str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError([Problem("", f"cannot read recipe file: {exc}")], str(path)) from None
    return parse_yaml(text, str(path))


def apply_overrides(data: dict, overrides: list[str]) -> tuple[dict, list[Problem]]:
    """Apply ``key.path=value`` overrides; values are YAML (``train.lr={grid: [0.1, 0.2]}``)."""
    data = _copy_mappings(data)
    problems = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not OVERRIDE_KEY.match(key):
            problems.append(Problem("", f"override {shorten(repr(item), 80)} must look like section.key=value"))
            continue
        value, problem = _load_yaml(raw) if raw.strip() else (None, None)
        if problem:
            problems.append(Problem(key, f"override value {shorten(raw, 80)}: {problem}"))
            continue
        set_path(data, key, value)
    return data, problems


# --- validation ---------------------------------------------------------------------------

def _copy_mappings(node: Any) -> Any:
    """A copy of the nested mappings, sharing lists and values: substitution only ever sets
    keys of mappings, so copying the (possibly huge) lists of grid values is wasted work."""
    return {k: _copy_mappings(v) for k, v in node.items()} if isinstance(node, dict) else node


def _substitute(data: dict, leaves, values: Mapping[str, Any]) -> dict:
    data = _copy_mappings(data)
    for leaf in leaves:
        set_path(data, leaf.path, values.get(leaf.path, leaf.candidates()[0]))
    return data


def _baseline_data(data: dict, leaves) -> dict:
    data = _substitute(data, leaves, {})
    for path, value in (data.get("baseline") or {}).get("overrides", {}).items():
        set_path(data, path, value)
    return data


def _variant(annotation: Any, node: Any) -> type[BaseModel] | None:
    """The pydantic model behind a field annotation; for a union tagged by ``name`` (the
    scheduler), the variant that the user's ``name`` selects."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        model = _variant(arg, node)
        if model is not None and (not isinstance(node, dict) or "name" not in model.model_fields
                                  or node.get("name") in typing.get_args(model.model_fields["name"].annotation)):
            return model
    return None


def _model_at(loc: tuple, data: Any) -> type[BaseModel] | None:
    """The pydantic model class that validates the mapping at ``loc`` (for 'allowed keys')."""
    model: Any = Recipe
    node = data
    for key in loc:
        field = model.model_fields.get(key) if model is not None else None
        if field is None:
            return None
        node = node.get(key) if isinstance(node, dict) else None
        model = _variant(field.annotation, node)
    return model


def _clean_loc(loc: tuple, data: Any) -> tuple:
    """Drop pydantic's union tags from an error location so it matches the user's keys."""
    kept, node = [], data
    for i, key in enumerate(loc):
        if isinstance(node, dict) and key in node:
            kept.append(key)
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            kept.append(key)
            node = node[key]
        elif i == len(loc) - 1:
            kept.append(key)
    return tuple(kept)


def _dotted(loc: tuple) -> str:
    out = ""
    for key in loc:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def _problems_from(exc: ValidationError, data: dict) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = _clean_loc(tuple(err["loc"]), data)
        kind, msg = err["type"], err["msg"].removeprefix("Value error, ")
        if kind == "extra_forbidden":
            model = _model_at(loc[:-1], data)
            allowed = f"; allowed keys: {', '.join(model.model_fields)}" if model else ""
            msg = f"unknown key{allowed}"
        elif kind == "missing":
            msg = "required key is missing"
        elif kind == "union_tag_invalid" or kind == "union_tag_not_found":
            msg = msg.replace("'asha', 'median', 'none'", "asha|median|none")
        if kind not in ("extra_forbidden", "missing") and "input" in err and not isinstance(err["input"], (dict, list)):
            msg = f"{msg} (got {short_repr(err['input'])})"
        problems.append(Problem(_dotted(loc), msg))
    return problems


def _validate_once(data: dict) -> list[Problem]:
    try:
        Recipe.model_validate(data)
    except ValidationError as exc:
        return _problems_from(exc, data)
    except (RecursionError, OverflowError) as exc:
        return [Problem("", f"recipe cannot be validated: {type(exc).__name__}")]
    return []


MAX_COMBINATIONS = 256  # below this, every combination of leaf candidates is validated


def _candidate_points(leaves: list[Leaf]):
    """Points of the search space that validation tries: every combination of candidates
    when there are few (cross-field rules, e.g. val + test fractions, see pairs of values),
    else each candidate of each leaf with the others at their first."""
    counts = [len(leaf.candidates()) for leaf in leaves]
    if math.prod(counts) <= MAX_COMBINATIONS:
        for values in itertools.product(*(leaf.candidates() for leaf in leaves)):
            yield {leaf.path: value for leaf, value in zip(leaves, values)}
        return
    yield {}
    for leaf in leaves:
        for value in leaf.candidates()[1:]:
            yield {leaf.path: value}


def _validate_all_candidates(data: dict, leaves: list[Leaf]) -> list[Problem]:
    problems = []
    for point in _candidate_points(leaves):
        problems += _validate_once(_substitute(data, leaves, point))
    # A problem at or below a leaf names the leaf's value; dedupe repeats across candidates.
    unique: dict[tuple[str, str], Problem] = {}
    for problem in problems:
        unique.setdefault((problem.path, problem.message), problem)
    return list(unique.values())


def _drop_path(data: dict, path: str) -> None:
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(last, None)


def _add_seed_replicates(data: dict, leaves: list[Leaf]) -> list[Problem]:
    """``search.seeds: k`` sweeps train.seed over k consecutive values (a grid leaf)."""
    k = (data.get("search") or {}).get("seeds", 1) if isinstance(data.get("search"), dict) else 1
    if not isinstance(k, int) or isinstance(k, bool) or k <= 1:
        return []  # 1, or a bad value that the schema reports
    if any(leaf.path == "train.seed" for leaf in leaves):
        return [Problem("search.seeds", "train.seed is swept already; use search.seeds or a train.seed leaf, not both")]
    base = (data.get("train") or {}).get("seed", 0) if isinstance(data.get("train"), dict) else 0
    base = base if isinstance(base, int) and not isinstance(base, bool) else 0
    leaves.append(Leaf("train.seed", "grid", tuple(base + i for i in range(min(k, 100)))))
    return []


def build_template(data: dict, source: str | None = None) -> RecipeTemplate:
    if not isinstance(data, dict):
        raise RecipeError([Problem("", f"a recipe is a mapping of sections, got {type(data).__name__}")], source)
    too_big = _check_size(data)
    if too_big:
        raise RecipeError([Problem("", too_big)], source)
    leaves, problems = find_leaves(data)
    for leaf in [leaf for leaf in leaves if leaf.path.split(".")[0] in UNSWEEPABLE]:
        problems.append(Problem(leaf.path, f"{UNSWEEPABLE[leaf.path.split('.')[0]]}; give one value, not {leaf.to_data()}"))
        leaves.remove(leaf)
    problems += _add_seed_replicates(data, leaves)
    # Malformed leaves are reported above; validate the rest of the recipe without them so
    # the user sees every problem in one go.
    bad_paths = {p.path for p in problems}
    checkable = _copy_mappings(data)
    for path in bad_paths:
        _drop_path(checkable, path)
    problems += [p for p in _validate_all_candidates(checkable, leaves) if p.path not in bad_paths]
    if not problems:
        problems += [Problem(f"baseline.overrides ({p.path})", p.message)
                     for p in _validate_once(_baseline_data(checkable, leaves))]
    if problems:
        raise RecipeError(problems, source)
    base = Recipe.model_validate(_substitute(data, leaves, {}))
    return RecipeTemplate(data=data, leaves=tuple(leaves), base=base, source=source)


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> RecipeTemplate:
    """Read, override and validate a recipe file. Raises ``RecipeError`` listing every problem."""
    data = read_recipe_file(path)
    data, problems = apply_overrides(data, list(overrides or []))
    if problems:
        raise RecipeError(problems, str(path))
    return build_template(data, str(path))
