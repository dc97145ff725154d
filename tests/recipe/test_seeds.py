"""search.seeds: k seed replicates of every configuration."""

from __future__ import annotations

import pytest

from orchestrator.errors import RecipeError
from orchestrator.recipe import build_template
from orchestrator.results.schema import config_id
from orchestrator.sweep.space import count_trials


def test_seeds_replicate_every_configuration():
    template = build_template({"name": "s", "train": {"seed": 7, "lr": {"grid": [0.1, 0.2]}}, "search": {"seeds": 3}})
    seed_leaf = [leaf for leaf in template.leaves if leaf.path == "train.seed"]
    assert seed_leaf and seed_leaf[0].values == (7, 8, 9)
    assert count_trials(template.leaves, template.base.search.num_samples) == 6
    assert template.resolve({"train.lr": 0.2, "train.seed": 9}).train.seed == 9
    assert template.baseline_recipe().train.seed == 7
    # Replicates share a configuration id, so the results layer averages them.
    assert config_id({"train.lr": 0.2, "train.seed": 8}) == config_id({"train.lr": 0.2, "train.seed": 9})


def test_seeds_and_a_swept_seed_conflict():
    with pytest.raises(RecipeError) as info:
        build_template({"name": "s", "train": {"seed": {"grid": [1, 2]}}, "search": {"seeds": 2}})
    assert [p.path for p in info.value.problems] == ["search.seeds"]


def test_seeds_out_of_range_is_an_error():
    with pytest.raises(RecipeError) as info:
        build_template({"name": "s", "search": {"seeds": 0}})
    assert info.value.problems[0].path == "search.seeds"
