"""Every shipped recipe loads, validates, and documents the command that runs it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.recipe import Recipe, RecipeTemplate, load_recipe

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))


def test_recipes_are_shipped():
    assert RECIPES, f"no recipes found under {ROOT / 'recipes'}"


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipe_validates(path: Path):
    template = load_recipe(path)
    assert isinstance(template, RecipeTemplate)
    assert isinstance(template.base, Recipe)
    # every point of the grid resolves to a concrete recipe, and so does the baseline
    for leaf in template.leaves:
        for value in leaf.candidates():
            template.resolve({leaf.path: value})
    template.baseline_recipe()


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipe_opens_with_run_command(path: Path):
    lines = path.read_text(encoding="utf-8").splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    assert len(header) >= 3, f"{path.name} must open with a comment block (what, needs, run)"
    run_lines = [line for line in header if re.match(r"#\s*Run:", line)]
    assert run_lines, f"{path.name}: no 'Run:' line in the opening comment block"
    command = run_lines[0]
    assert re.search(rf"orchestrator run\s+(\S*/)?recipes/{re.escape(path.name)}(\s|$)", command), (
        f"{path.name}: the Run: line must run this very file, got {command!r}"
    )
