"""Command-line overrides, baseline overrides, and the recipe hash."""

from __future__ import annotations

import pytest

from orchestrator.errors import RecipeError
from orchestrator.recipe import apply_overrides, build_template, load_recipe
from orchestrator.recipe.space import Leaf

BASE = """\
name: over
train:
  epochs: 8
  lr: 0.05
  lr_schedule: {name: exponential, decay: 0.9}
search:
  scheduler: {name: asha, grace_period: 1}
"""


def test_scalar_override(write):
    template = load_recipe(write(BASE), ["train.epochs=3"])
    assert template.base.train.epochs == 3
    assert template.leaves == ()


def test_override_creates_a_leaf(write):
    template = load_recipe(write(BASE), ["train.lr={grid: [0.1, 0.2]}"])
    assert template.leaves == (Leaf("train.lr", "grid", (0.1, 0.2)),)
    assert template.resolve({"train.lr": 0.2}).train.lr == 0.2


def test_override_replaces_an_existing_leaf(write):
    path = write(BASE.replace("lr: 0.05", "lr: {grid: [0.3, 0.4]}"))
    template = load_recipe(path, ["train.lr=0.01"])
    assert template.leaves == ()
    assert template.base.train.lr == 0.01


def test_override_creates_missing_sections(write):
    template = load_recipe(write(BASE), ["model.hidden=[32]", "data.name=synthetic"])
    assert template.base.model.hidden == [32]
    assert template.base.data.name == "synthetic"


def test_overrides_apply_in_order(write):
    assert load_recipe(write(BASE), ["train.epochs=3", "train.epochs=4"]).base.train.epochs == 4


def test_override_values_are_yaml_typed(write):
    recipe = load_recipe(write(BASE), ["train.optimizer.nesterov=true", "results.path=out/dir"]).base
    assert recipe.train.optimizer.nesterov is True
    assert recipe.results.path == "out/dir"


@pytest.mark.parametrize("item", ["train.epochs", "train.epochs 3", "=3", "train..epochs=3", "1train.epochs=3"])
def test_malformed_override(write, load_problems, item):
    problems = load_problems(write(BASE), [item])
    assert list(problems) == [""], problems
    assert "section.key=value" in problems[""]


def test_override_with_invalid_yaml_value_names_key(write, load_problems):
    problems = load_problems(write(BASE), ["train.lr={grid: [0.1"])
    assert list(problems) == ["train.lr"], problems


def test_override_of_unknown_key(write, load_problems):
    problems = load_problems(write(BASE), ["train.epoch=3"])
    assert list(problems) == ["train.epoch"], problems
    assert "unknown key" in problems["train.epoch"] and "epochs" in problems["train.epoch"]


def test_override_to_invalid_value_is_reported_like_the_file(write, load_problems):
    problems = load_problems(write(BASE), ["train.epochs=-1"])
    assert list(problems) == ["train.epochs"], problems


def test_malformed_overrides_all_reported(write, load_problems):
    problems = load_problems(write(BASE), ["nope", "train.lr={grid: [0.1"])
    assert set(problems) == {"", "train.lr"}, problems


def test_apply_overrides_does_not_mutate_its_input():
    data = {"name": "x", "train": {"epochs": 8}}
    new, problems = apply_overrides(data, ["train.epochs=3"])
    assert problems == []
    assert data == {"name": "x", "train": {"epochs": 8}}
    assert new["train"]["epochs"] == 3


# --- baseline overrides -----------------------------------------------------------------------

def test_baseline_overrides_used_by_baseline_recipe(write):
    path = write(BASE.replace("lr: 0.05", "lr: {grid: [0.3, 0.4]}")
                 + "baseline: {overrides: {train.lr: 0.1, train.lr_schedule.decay: 0.8}}\n")
    template = load_recipe(path)
    baseline = template.baseline_recipe()
    assert baseline.train.lr == 0.1
    assert baseline.train.lr_schedule.decay == 0.8
    # the sweep itself is unaffected
    assert template.base.train.lr == 0.3
    assert template.resolve({"train.lr": 0.4}).train.lr == 0.4
    assert template.resolve({"train.lr": 0.4}).train.lr_schedule.decay == 0.9


def test_baseline_without_overrides_takes_first_candidates():
    template = build_template({"name": "x", "train": {"lr": {"grid": [0.3, 0.4]}, "epochs": {"randint": [2, 5]}}})
    baseline = template.baseline_recipe()
    assert (baseline.train.lr, baseline.train.epochs) == (0.3, 2)


def test_baseline_override_of_unknown_key_is_an_error():
    with pytest.raises(RecipeError) as info:
        build_template({"name": "x", "baseline": {"overrides": {"train.lrr": 0.1}}})
    (problem,) = info.value.problems
    assert "baseline.overrides" in problem.path and "train.lrr" in problem.path
    assert "unknown key" in problem.message


def test_baseline_override_with_invalid_value_is_an_error():
    with pytest.raises(RecipeError) as info:
        build_template({"name": "x", "baseline": {"overrides": {"train.epochs": 0}}})
    (problem,) = info.value.problems
    assert "train.epochs" in problem.path


@pytest.mark.parametrize("key", ["search.num_samples", "baseline.enabled", "lr", "train"])
def test_baseline_override_outside_trainable_sections_is_an_error(key):
    with pytest.raises(RecipeError) as info:
        build_template({"name": "x", "baseline": {"overrides": {key: 1}}})
    assert any(p.path.startswith("baseline.overrides") for p in info.value.problems), info.value.problems


# --- hash ----------------------------------------------------------------------------------

def test_hash_stable_under_key_order(write):
    a = write("name: h\ntrain: {epochs: 3, lr: 0.1}\nmodel: {hidden: [8]}\n", "a.yaml")
    b = write("model: {hidden: [8]}\ntrain: {lr: 0.1, epochs: 3}\nname: h\n", "b.yaml")
    assert load_recipe(a).hash == load_recipe(b).hash
    assert len(load_recipe(a).hash) >= 8


def test_hash_changes_with_a_value(write):
    a = load_recipe(write("name: h\ntrain: {epochs: 3, lr: 0.1}\n", "a.yaml")).hash
    b = load_recipe(write("name: h\ntrain: {epochs: 3, lr: 0.2}\n", "b.yaml")).hash
    c = load_recipe(write("name: h\ntrain: {epochs: 3, lr: {grid: [0.1, 0.2]}}\n", "c.yaml")).hash
    assert len({a, b, c}) == 3


def test_hash_sees_overrides(write):
    path = write("name: h\ntrain: {epochs: 3}\n")
    assert load_recipe(path).hash != load_recipe(path, ["train.epochs=4"]).hash
    assert load_recipe(path).hash == load_recipe(path, ["train.epochs=3"]).hash
