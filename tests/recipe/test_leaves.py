"""Search-space leaves: parsing, candidates, resolve(), and malformed leaves."""

from __future__ import annotations

import pytest

from orchestrator.errors import RecipeError
from orchestrator.recipe import LEAF_KINDS, build_template
from orchestrator.recipe.space import Leaf, find_leaves


def _recipe(**train) -> dict:
    return {"name": "leafy", "train": dict(train)}


@pytest.mark.parametrize(
    ("kind", "raw", "path", "value", "attr"),
    [
        ("grid", [0.1, 0.2, 0.3], "train.lr", 0.2, lambda r: r.train.lr),
        ("choice", ["sgd", "adam"], "train.optimizer.name", "adam", lambda r: r.train.optimizer.name),
        ("uniform", [0.5, 0.9], "train.lr_schedule.decay", 0.77, lambda r: r.train.lr_schedule.decay),
        ("loguniform", [1e-4, 1e-1], "train.lr", 3e-3, lambda r: r.train.lr),
        ("randint", [2, 7], "train.epochs", 5, lambda r: r.train.epochs),
    ],
)
def test_each_leaf_kind_parsed_and_resolved(kind, raw, path, value, attr):
    data = {"name": "leafy", "search": {"scheduler": {"name": "none"}}}
    node = data
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = {kind: raw}

    template = build_template(data)
    assert template.leaves == (Leaf(path, kind, tuple(raw)),)
    assert attr(template.resolve({path: value})) == value
    # unset leaves resolve to their first candidate, which is also what `base` shows
    assert attr(template.resolve({})) == raw[0]
    assert attr(template.base) == raw[0]
    # the template's data is untouched by resolve
    assert template.leaves[0].to_data() == {kind: raw}


def test_resolve_several_leaves_at_once():
    template = build_template(_recipe(lr={"grid": [0.1, 0.2]}, batch_size={"choice": [16, 32]},
                                      epochs={"randint": [3, 6]}))
    recipe = template.resolve({"train.lr": 0.2, "train.batch_size": 32, "train.epochs": 4})
    assert (recipe.train.lr, recipe.train.batch_size, recipe.train.epochs) == (0.2, 32, 4)


def test_resolve_rejects_unknown_path():
    template = build_template(_recipe(lr={"grid": [0.1, 0.2]}))
    with pytest.raises(KeyError, match="train.epochs"):
        template.resolve({"train.epochs": 3})


def test_resolve_validates_the_concrete_value():
    # a sampled value outside the field's range is not silently accepted
    template = build_template(_recipe(lr={"uniform": [0.1, 1.0]}))
    with pytest.raises(ValueError):
        template.resolve({"train.lr": -1.0})


@pytest.mark.parametrize(
    ("kind", "values", "expected"),
    [
        ("grid", (1, 2, 3), [1, 2, 3]),
        ("choice", ("a", "b"), ["a", "b"]),
        # both ends, and a non-integral point inside (Tune samples floats)
        ("uniform", (0.0, 1.0), [0.0, 1.0, 0.37]),
        ("loguniform", (1e-3, 1e-1), [1e-3, 1e-1, pytest.approx(1e-3 * 100**0.37)]),
        ("randint", (2, 7), [2, 6]),  # hi is exclusive, as in Ray Tune
    ],
)
def test_candidates(kind, values, expected):
    assert Leaf("a.b", kind, values).candidates() == expected


def test_leaf_kinds_are_the_documented_five():
    assert set(LEAF_KINDS) == {"grid", "choice", "uniform", "loguniform", "randint"}


@pytest.mark.parametrize(
    ("leaf", "fragment"),
    [
        ({"uniform": [1, 0]}, "lo < hi"),
        ({"uniform": [1, 1]}, "lo < hi"),
        ({"loguniform": [0, 1]}, "0 < lo"),
        ({"loguniform": [-1, 1]}, "0 < lo"),
        ({"randint": [0.5, 2]}, "two integers"),
        ({"randint": [3, 3]}, "lo < hi"),
        ({"grid": []}, "non-empty list"),
        ({"choice": "sgd"}, "non-empty list"),
        ({"uniform": [0.1]}, "two numbers"),
        ({"uniform": [0.1, "x"]}, "two numbers"),
        ({"uniform": [True, 2]}, "two numbers"),
        ({"uniform": [0, float("inf")]}, "finite"),
        ({"grid": [0.1], "choice": [0.2]}, "exactly one key"),
        ({"grid": [0.1], "extra": 1}, "exactly one key"),
    ],
)
def test_malformed_leaf_names_its_path(problems_of, leaf, fragment):
    problems = problems_of({"name": "bad", "train": {"lr_schedule": {"decay": leaf}}})
    assert list(problems) == ["train.lr_schedule.decay"], problems
    assert fragment in problems["train.lr_schedule.decay"]


def test_leaf_inside_a_list_is_an_error_naming_the_index(problems_of):
    problems = problems_of({"name": "bad", "model": {"hidden": [64, {"grid": [32, 64]}]}})
    assert list(problems) == ["model.hidden[1]"], problems
    assert "inside lists" in problems["model.hidden[1]"]


def test_find_leaves_returns_every_leaf_with_its_path():
    data = {"train": {"lr": {"grid": [1, 2]}, "optimizer": {"momentum": {"uniform": [0.1, 0.9]}}},
            "model": {"hidden": {"choice": [[8], [16, 16]]}}}
    leaves, problems = find_leaves(data)
    assert problems == []
    assert {leaf.path: leaf.kind for leaf in leaves} == {
        "train.lr": "grid", "train.optimizer.momentum": "uniform", "model.hidden": "choice"}


def test_choice_of_lists_is_a_whole_list_leaf():
    template = build_template({"name": "lists", "model": {"hidden": {"choice": [[8], [16, 16]]}}})
    assert template.resolve({"model.hidden": [16, 16]}).model.hidden == [16, 16]
    assert template.base.model.hidden == [8]


@pytest.mark.parametrize(
    ("path", "leaf"),
    [
        ("train.epochs", {"grid": [3, 0]}),
        ("train.epochs", {"randint": [0, 4]}),  # lo=0 is a candidate
        ("train.lr", {"uniform": [0.1, 20.0]}),  # hi above lr's upper bound 10
        ("train.optimizer.name", {"choice": ["sgd", "lion"]}),
    ],
)
def test_out_of_range_candidate_caught_at_load_time(problems_of, path, leaf):
    section, *rest = path.split(".")
    node: dict = {}
    data = {"name": "bad", section: node}
    for key in rest[:-1]:
        node = node.setdefault(key, {})
    node[rest[-1]] = leaf
    problems = problems_of(data)
    assert path in problems, problems


def test_candidate_problems_are_not_repeated():
    # two grid leaves: the bad epochs value is validated with each lr candidate, but is
    # reported once
    with pytest.raises(RecipeError) as info:
        build_template({"name": "bad", "train": {"epochs": {"grid": [3, 0]}, "lr": {"grid": [0.1, 0.2, 0.3]}}})
    assert [p.path for p in info.value.problems] == ["train.epochs"], info.value.problems
