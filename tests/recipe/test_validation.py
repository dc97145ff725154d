"""Recipe validation: defaults, bad files, unknown keys, wrong types and values, cross-field
rules, and every problem reported at once in one RecipeError."""

from __future__ import annotations

import pytest

from orchestrator.errors import RecipeError
from orchestrator.recipe import build_template, load_recipe
from orchestrator.recipe.schema import SECTION_NAMES


def test_minimal_recipe_gets_documented_defaults():
    recipe = build_template({"name": "tiny"}).base
    assert recipe.data.name == "digits"
    assert (recipe.data.val_fraction, recipe.data.test_fraction, recipe.data.seed) == (0.15, 0.2, 0)
    assert recipe.model.name == "mlp" and recipe.model.hidden == [256, 256]
    assert (recipe.train.epochs, recipe.train.batch_size, recipe.train.lr) == (10, 64, 0.05)
    assert recipe.train.optimizer.name == "sgd" and recipe.train.optimizer.momentum == 0.9
    assert recipe.train.lr_schedule.name == "exponential" and recipe.train.lr_schedule.decay == 0.95
    assert recipe.parallel.workers == 1 and recipe.parallel.use_gpu is False
    assert recipe.baseline.enabled is True and recipe.baseline.overrides == {}
    assert recipe.search.scheduler.name == "asha" and recipe.search.metric == "val_accuracy"
    assert recipe.search.mode == "max"
    assert recipe.results.path == "results"


def test_name_is_required(problems_of):
    assert problems_of({"train": {"epochs": 3}}) == {"name": "required key is missing"}


# --- files --------------------------------------------------------------------------------

def test_missing_file(tmp_path, load_problems):
    missing = tmp_path / "nope.yaml"
    problems = load_problems(missing)
    assert "not found" in problems[""] and "nope.yaml" in problems[""]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name: x\ntrain: {epochs: 3\n", "not valid YAML"),  # unclosed flow mapping
        ("name: x\n  bad indent: [\n", "not valid YAML"),
        ("", "empty document"),
        ("# only a comment\n", "empty document"),
        ("- name: x\n- name: y\n", "got list"),
        ("just a string\n", "got str"),
        ("name: x\ntrain:\n  epochs: 3\n  epochs: 4\n", "duplicate key 'epochs'"),
        ("name: x\nname: y\n", "duplicate key 'name'"),
    ],
)
def test_unreadable_recipe_file(write, load_problems, text, fragment):
    problems = load_problems(write(text))
    assert list(problems) == [""], problems
    assert fragment in problems[""]


def test_error_names_the_source_file(write):
    path = write("name: x\ntrain: {epochs: -1}\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert info.value.source == str(path)
    assert str(path) in str(info.value) and "train.epochs" in str(info.value)


# --- unknown keys ------------------------------------------------------------------------

def test_unknown_top_level_key_lists_sections(problems_of):
    problems = problems_of({"name": "x", "trian": {"epochs": 3}})
    message = problems["trian"]
    assert "unknown key" in message
    for section in SECTION_NAMES:
        assert section in message, f"{section!r} missing from {message!r}"


@pytest.mark.parametrize(
    ("data", "path", "allowed"),
    [
        ({"train": {"epoch": 3}}, "train.epoch", ["epochs", "batch_size", "lr", "optimizer"]),
        ({"train": {"optimizer": {"momentun": 0.9}}}, "train.optimizer.momentun", ["momentum", "nesterov"]),
        ({"train": {"lr_schedule": {"decay_rate": 0.9}}}, "train.lr_schedule.decay_rate", ["decay", "warmup_epochs"]),
        ({"data": {"nmae": "digits"}}, "data.nmae", ["name", "val_fraction"]),
        ({"parallel": {"gpus": 1}}, "parallel.gpus", ["gpus_per_worker", "use_gpu"]),
    ],
)
def test_unknown_nested_key_names_key_and_allowed_keys(problems_of, data, path, allowed):
    problems = problems_of({"name": "x", **data})
    assert list(problems) == [path], problems
    assert "unknown key" in problems[path]
    for key in allowed:
        assert key in problems[path], f"{key!r} missing from {problems[path]!r}"


def test_unknown_key_in_scheduler_lists_allowed_keys(problems_of):
    # search.scheduler is a tagged union (asha|median|none); an unknown key in the chosen
    # variant should list that variant's keys like every other section does.
    problems = problems_of({"name": "x", "search": {"scheduler": {"name": "asha", "grace": 2}}})
    message = problems["search.scheduler.grace"]
    assert "unknown key" in message
    for key in ("grace_period", "reduction_factor", "brackets"):
        assert key in message, f"allowed keys not listed: {message!r}"


# --- values and types ---------------------------------------------------------------------

@pytest.mark.parametrize(
    ("data", "path", "fragment"),
    [
        ({"train": {"epochs": -1}}, "train.epochs", "greater than 0"),
        ({"train": {"epochs": 0}}, "train.epochs", "greater than 0"),
        ({"train": {"lr": 0}}, "train.lr", "greater than 0"),
        ({"data": {"val_fraction": 1.5}}, "data.val_fraction", "less than 1"),
        ({"train": {"lr_schedule": {"decay": 1.5}}}, "train.lr_schedule.decay", "less than or equal to 1"),
        ({"parallel": {"workers": 0}}, "parallel.workers", "greater than or equal to 1"),
        ({"model": {"name": "transformer"}}, "model.name", "'mlp'"),
        ({"search": {"mode": "maximize"}}, "search.mode", "'max'"),
        ({"name": "has space"}, "name", "pattern"),
    ],
)
def test_out_of_range_value_names_field_and_value(problems_of, data, path, fragment):
    problems = problems_of({"name": "x", **data})
    assert list(problems) == [path], problems
    assert fragment in problems[path]


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"train": {"epochs": "ten"}}, "train.epochs"),
        ({"train": {"epochs": 2.5}}, "train.epochs"),
        ({"train": {"lr": "fast"}}, "train.lr"),
        ({"train": {"lr": [0.1, 0.2]}}, "train.lr"),
        ({"train": "fast"}, "train"),
        ({"model": {"hidden": 256}}, "model.hidden"),
        ({"model": {"hidden": ["wide"]}}, "model.hidden[0]"),
        ({"parallel": {"use_gpu": "maybe"}}, "parallel.use_gpu"),
        ({"data": {"seed": "zero"}}, "data.seed"),
    ],
)
def test_wrong_type_names_field(problems_of, data, path):
    problems = problems_of({"name": "x", **data})
    assert list(problems) == [path], problems


def test_boolean_is_not_an_epoch_count(problems_of):
    # YAML `epochs: yes` / `epochs: true` is a bool; silently training for 1 epoch is wrong.
    problems = problems_of({"name": "x", "train": {"epochs": True}})
    assert list(problems) == ["train.epochs"], problems


@pytest.mark.parametrize("literal", [".nan", ".NaN", ".inf", "-.inf", ".Inf"])
@pytest.mark.parametrize("field", ["lr", "lr_schedule: {decay", "optimizer: {momentum"])
def test_nan_and_inf_rejected(write, load_problems, literal, field):
    closing = "}" if "{" in field else ""
    path = write(f"name: x\ntrain:\n  {field}: {literal}{closing}\n")
    problems = load_problems(path)
    dotted = "train." + field.replace(": {", ".")
    assert list(problems) == [dotted], problems


def test_nan_inside_a_range_leaf_rejected(write, load_problems):
    problems = load_problems(write("name: x\ntrain:\n  lr: {uniform: [.nan, 0.1]}\n"))
    assert list(problems) == ["train.lr"], problems


def test_huge_integer_bound_is_a_recipe_error():
    # YAML reads a 400-digit integer as a Python int; it must be reported, not crash.
    with pytest.raises(RecipeError) as info:
        build_template({"name": "x", "train": {"lr": {"uniform": [0, 10**400]}}})
    assert [p.path for p in info.value.problems] == ["train.lr"]


def test_huge_integer_value_is_a_recipe_error():
    with pytest.raises(RecipeError) as info:
        build_template({"name": "x", "train": {"epochs": 10**400}})
    assert [p.path for p in info.value.problems] == ["train.epochs"]


# --- all problems at once --------------------------------------------------------------------

def test_four_problems_in_one_error():
    data = {
        "name": "x",
        "colour": "blue",  # unknown top-level key
        "train": {"epochs": -2, "lr": "fast", "lr_schedule": {"decay": {"uniform": [1, 0]}}},
    }
    with pytest.raises(RecipeError) as info:
        build_template(data)
    paths = [p.path for p in info.value.problems]
    assert sorted(paths) == sorted(["colour", "train.epochs", "train.lr", "train.lr_schedule.decay"]), paths
    text = str(info.value)
    assert "4 problems" in text
    for path in paths:
        assert path in text


def test_four_problems_across_sections_from_a_file(write, load_problems):
    path = write("""\
        name: x
        data: {name: cifar}
        model: {hidden: [0]}
        train: {batch_size: -5}
        search: {scheduler: {name: asha, reduction_factor: 1}}
        """)
    problems = load_problems(path)
    assert set(problems) == {"data.name", "model.hidden[0]", "train.batch_size",
                             "search.scheduler.reduction_factor"}, problems


# --- cross-field rules ----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        ({"train": {"epochs": 2}, "search": {"scheduler": {"name": "asha", "grace_period": 3}}},
         ["grace_period", "train.epochs"]),
        ({"train": {"epochs": 2}, "search": {"scheduler": {"name": "median", "grace_period": 5}}},
         ["grace_period", "train.epochs"]),
        ({"parallel": {"use_gpu": True}}, ["use_gpu", "gpus_per_worker"]),
        ({"parallel": {"gpus_per_worker": 1}}, ["use_gpu", "gpus_per_worker"]),
        ({"model": {"name": "cnn1d"}, "data": {"name": "digits"}}, ["cnn1d", "digits"]),
        ({"model": {"name": "cnn2d"}, "data": {"name": "mnist1d"}}, ["cnn2d", "mnist1d"]),
        ({"model": {"name": "cnn2d"}, "data": {"name": "synthetic"}}, ["cnn2d", "synthetic"]),
        ({"train": {"init": "baseline"}, "baseline": {"enabled": False}}, ["train.init", "baseline.enabled"]),
        ({"data": {"val_fraction": 0.5, "test_fraction": 0.45}}, ["val_fraction", "test_fraction"]),
        ({"train": {"optimizer": {"nesterov": True, "momentum": 0}}}, ["nesterov", "momentum"]),
        ({"parallel": {"workers": 2, "strategy": "fsdp"},
          "compression": {"quantization": {"bits": 4, "activations": True}}},
         ["compression.quantization.activations", "'fsdp'", "its own activation ranges"]),
        ({"parallel": {"workers": 2, "strategy": "pipeline"}, "compression": {"pruning": {"sparsity": 0.5}}},
         ["'pipeline'", "dense models only"]),
    ],
)
def test_cross_field_rules(data, fragments):
    with pytest.raises(RecipeError) as info:
        build_template({"name": "x", **data})
    assert len(info.value.problems) == 1, info.value.problems
    text = str(info.value.problems[0])
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"


def test_cross_field_rule_checked_for_every_grid_candidate():
    # grace_period 2 is fine with 5 epochs but not with the grid's other candidate, 1
    with pytest.raises(RecipeError, match="grace_period"):
        build_template({"name": "x", "train": {"epochs": {"grid": [5, 1]}},
                        "search": {"scheduler": {"name": "asha", "grace_period": 2}}})


def test_cross_field_rules_accept_the_valid_combinations():
    for data in (
        {"model": {"name": "cnn2d"}, "data": {"name": "digits"}},
        {"model": {"name": "cnn1d"}, "data": {"name": "mnist1d"}},
        {"parallel": {"use_gpu": True, "gpus_per_worker": 0.5}},
        {"train": {"epochs": 3}, "search": {"scheduler": {"name": "asha", "grace_period": 3}}},
        {"train": {"epochs": 1}, "search": {"scheduler": {"name": "none"}}},
        {"parallel": {"workers": 2, "strategy": "fsdp"}, "compression": {
            "pruning": {"sparsity": 0.5, "structured": True}, "quantization": {"bits": 4},
            "distillation": {"alpha": 0.5}}},
    ):
        build_template({"name": "ok", **data})
