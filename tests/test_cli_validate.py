"""`orchestrator validate` (in process) and `orchestrator run` on a bad recipe (subprocess):
exit codes, messages that name the fields, no traceback, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"

BAD = """\
# three problems: an unknown key, negative epochs, an empty uniform range
name: bad
colour: blue
train:
  epochs: -3
  lr: {uniform: [1, 0]}
"""


@pytest.fixture
def bad_recipe(tmp_path: Path) -> Path:
    path = tmp_path / "BAD.yaml"
    path.write_text(BAD, encoding="utf-8")
    return path


def test_validate_good_recipe(capsys):
    assert main(["validate", str(QUICKSTART)]) == 0
    out, err = capsys.readouterr()
    assert "ok" in out and "quickstart" in out
    assert "12 sweep trials" in out  # 4 sparsities x 3 bit widths, num_samples 1
    assert "compression.pruning.sparsity" in out and "compression.quantization.bits" in out
    assert err == ""


def test_validate_line_is_not_wrapped_by_a_long_path(tmp_path, capsys):
    """CI checks out under a longer path than a laptop: the summary must stay one line."""
    deep = tmp_path / ("a-rather-long-checkout-directory-name" * 2) / "recipes"
    deep.mkdir(parents=True)
    recipe = deep / "quickstart.yaml"
    recipe.write_text(QUICKSTART.read_text(encoding="utf-8"), encoding="utf-8")
    assert main(["validate", str(recipe)]) == 0
    first_line = capsys.readouterr().out.splitlines()[0]
    assert str(recipe) in first_line and "12 sweep trials, 2 search-space leaves" in first_line


def test_validate_with_overrides(capsys):
    assert main(["validate", str(QUICKSTART), "train.epochs=5", "compression.quantization.bits=4"]) == 0
    out, _ = capsys.readouterr()
    assert "4 sweep trials" in out


def _flat(text: str) -> str:
    """Whitespace-normalised text (rich may wrap long lines of a non-terminal stream)."""
    return " ".join(text.split())


def test_validate_bad_recipe_names_every_field(bad_recipe, capsys):
    assert main(["validate", str(bad_recipe)]) == 2
    out, err = capsys.readouterr()
    assert "3 problems" in _flat(err)
    for field in ("colour", "train.epochs", "train.lr"):
        assert field in err, f"{field!r} not named in:\n{err}"
    assert "Traceback" not in err + out


def test_each_problem_printed_on_one_line(bad_recipe, capsys):
    # stderr of a CI job or a pipe is not a terminal; a problem's message must stay on one
    # line there (grep-able), not be hard-wrapped at 80 columns.
    from orchestrator.errors import RecipeError
    from orchestrator.recipe import load_recipe

    with pytest.raises(RecipeError) as info:
        load_recipe(bad_recipe)
    assert main(["validate", str(bad_recipe)]) == 2
    lines = [line.strip() for line in capsys.readouterr().err.splitlines()]
    for problem in info.value.problems:
        assert f"- {problem}" in lines, f"{str(problem)!r} is not one line of:\n{lines}"


def test_validate_bad_override(capsys):
    assert main(["validate", str(QUICKSTART), "train.epochs=-1", "search.bogus=1"]) == 2
    _, err = capsys.readouterr()
    assert "train.epochs" in err and "search.bogus" in err


def test_validate_malformed_override(capsys):
    assert main(["validate", str(QUICKSTART), "train.epochs"]) == 2
    _, err = capsys.readouterr()
    assert "train.epochs" in err and "key=value" in err


def test_validate_missing_file(tmp_path, capsys):
    missing = tmp_path / "missing.yaml"
    assert main(["validate", str(missing)]) == 2
    out, err = capsys.readouterr()
    assert "not found" in err and "missing.yaml" in _flat(err).replace(" ", "")
    assert "Traceback" not in err + out


def test_validate_yaml_syntax_error(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\ntrain: {epochs: 3\n", encoding="utf-8")
    assert main(["validate", str(path)]) == 2
    _, err = capsys.readouterr()
    assert "not valid YAML" in err and "Traceback" not in err


def test_no_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_run_bad_recipe_subprocess_writes_nothing(bad_recipe):
    workdir = bad_recipe.parent
    env = dict(os.environ, PYTHONPATH=str(ROOT))  # test this tree, not another editable install
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "run", "BAD.yaml"], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    for field in ("colour", "train.epochs", "train.lr"):
        assert field in proc.stderr, f"{field!r} not named in:\n{proc.stderr}"
    assert not (workdir / "results").exists()
    assert sorted(p.name for p in workdir.iterdir()) == ["BAD.yaml"]
