"""Helpers shared by the recipe tests: write a YAML recipe to a temp file, load it, and
collect the problems of a RecipeError by path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from orchestrator.errors import RecipeError
from orchestrator.recipe import build_template, load_recipe


@pytest.fixture
def write(tmp_path: Path):
    """write(text_or_mapping, name="r.yaml") -> Path of a recipe file in tmp_path."""

    def _write(content, name: str = "r.yaml") -> Path:
        path = tmp_path / name
        if isinstance(content, str):
            path.write_text(textwrap.dedent(content), encoding="utf-8")
        else:
            path.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
        return path

    return _write


def _problems(error: RecipeError) -> dict[str, str]:
    return {p.path: p.message for p in error.problems}


@pytest.fixture
def problems_of():
    """problems_of(mapping) -> {path: message} of the RecipeError build_template must raise."""

    def _run(data: dict) -> dict[str, str]:
        with pytest.raises(RecipeError) as info:
            build_template(data)
        return _problems(info.value)

    return _run


@pytest.fixture
def load_problems():
    """load_problems(path, overrides) -> {path: message} of the RecipeError load_recipe raises."""

    def _run(path, overrides=None) -> dict[str, str]:
        with pytest.raises(RecipeError) as info:
            load_recipe(path, overrides)
        return _problems(info.value)

    return _run
