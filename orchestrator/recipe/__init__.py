"""Recipes: YAML → a typed, validated experiment description (see schema.py)."""

from orchestrator.recipe.loader import RecipeTemplate, apply_overrides, build_template, load_recipe, parse_yaml
from orchestrator.recipe.schema import Recipe
from orchestrator.recipe.space import LEAF_KINDS, Leaf

__all__ = ["LEAF_KINDS", "Leaf", "Recipe", "RecipeTemplate", "apply_overrides", "build_template", "load_recipe", "parse_yaml"]
