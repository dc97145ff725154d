"""Property-based tests: junk in, RecipeError out (never another exception); a random valid
grid over an integer field resolves at every point; parse_yaml on arbitrary text."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import RecipeError
from orchestrator.recipe import build_template, parse_yaml
from orchestrator.recipe.schema import Recipe

FIELD_NAMES = sorted(
    {"name", "data", "model", "train", "parallel", "baseline", "search", "results", "epochs", "lr",
     "batch_size", "optimizer", "lr_schedule", "decay", "hidden", "scheduler", "grace_period",
     "overrides", "workers", "use_gpu", "gpus_per_worker", "seed", "path", "momentum",
     "train.lr", "model.hidden", "grid", "choice", "uniform", "loguniform", "randint"}
)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=6))
junk = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=4),
    ),
    max_leaves=25,
)


@SETTINGS
@given(st.dictionaries(keys, junk, max_size=6))
def test_junk_raises_only_recipe_error(data):
    try:
        template = build_template(data)
    except RecipeError as exc:
        assert exc.problems, "a RecipeError must hold at least one problem"
        for problem in exc.problems:
            assert isinstance(problem.path, str) and problem.message
        return
    assert isinstance(template.base, Recipe)


@SETTINGS
@given(section=st.sampled_from(["data", "model", "train", "parallel", "search", "results", "baseline"]),
       body=st.dictionaries(keys, junk, max_size=4))
def test_junk_inside_a_section_raises_only_recipe_error(section, body):
    try:
        build_template({"name": "fuzz", section: body})
    except RecipeError as exc:
        assert exc.problems


@SETTINGS
@given(st.lists(st.integers(min_value=-5, max_value=50), min_size=1, max_size=5))
def test_epochs_grid_valid_iff_every_value_in_range(values):
    data = {"name": "g", "train": {"epochs": {"grid": values}}, "search": {"scheduler": {"name": "none"}}}
    if all(v > 0 for v in values):
        template = build_template(data)
        for v in values:
            assert template.resolve({"train.epochs": v}).train.epochs == v
    else:
        try:
            build_template(data)
        except RecipeError as exc:
            assert [p.path for p in exc.problems] == ["train.epochs"] * len(exc.problems)
        else:
            raise AssertionError(f"grid {values} with a non-positive epoch count was accepted")


@SETTINGS
@given(st.text(max_size=200))
def test_parse_yaml_raises_only_recipe_error(text):
    try:
        data = parse_yaml(text, "fuzz.yaml")
    except RecipeError as exc:
        assert exc.source == "fuzz.yaml" and exc.problems
    else:
        assert isinstance(data, dict)
