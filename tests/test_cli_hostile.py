"""`orchestrator validate|run` on hostile recipe files, in process: exit 2, a message and no
traceback, and nothing written (no ``results`` folder) in the working directory.

`run` is safe to call here: it validates before it starts Ray or writes anything, so a bad
recipe never gets as far as Ray. A *valid* recipe is never passed to `run` in this file.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import yaml

from orchestrator.cli import main

ALIAS_BOMB = "bombs:\n" + "\n".join(
    ["  l0: &l0 {x: lol}"] + [f"  l{i}: &l{i} {{" + ", ".join(f"k{j}: *l{i - 1}" for j in range(9)) + "}"
                              for i in range(1, 8)]
) + "\nname: x\ntrain: *l7\n"  # 9**7 paths to walk from 600 bytes

TIME_LIMIT_S = 5.0  # a rejected recipe is rejected in well under a second

HOSTILE = {
    "not-a-mapping": "- just\n- a list\n",
    "empty": "",
    "garbage-bytes": b"\xff\xfe\x00name: \x80\x81",
    "python-tag": "name: x\ntrain: !!python/object/apply:os.system ['echo pwned > pwned.txt']\n",
    "duplicate-key": "name: x\nname: y\n",
    "nan-lr": "name: x\ntrain: {lr: .nan}\n",
    "deep-nesting": "name: x\ntrain: " + "[" * 3000 + "]" * 3000 + "\n",
    "unknown-registry": "name: x\ndata: {name: imagenet}\nmodel: {name: resnet9000}\ntrain: {optimizer: {name: lbfgs}}\n",
    "bad-leaf": "name: x\ntrain: {lr: {uniform: [1, 0]}, epochs: {grid: []}}\n",
    "name-escapes": "name: ../../x\n",
    "name-absolute": "name: /tmp/x\n",
    "name-dotdot": "name: ..\n",
    "huge-int": "name: x\ntrain: {epochs: " + "9" * 5000 + "}\n",
    "unhashable-key": "name: x\n[1, 2]: 3\n",
    "impossible-date": "name: x\ndescription: 2001-02-30\n",
    "bad-float-tag": "name: x\ntrain: {lr: !!float abc}\n",
    "alias-bomb": ALIAS_BOMB,
}
# Escaping today (tracebacks or minutes of CPU; see the regression tests in
# tests/recipe/test_fuzz.py): huge-int, unhashable-key, impossible-date, bad-float-tag, alias-bomb.


def _write(tmp_path: Path, name: str, content) -> Path:
    path = tmp_path / f"{name}.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


class _Hang(BaseException):
    pass


def _main_within(argv: list[str], seconds: float = TIME_LIMIT_S):
    def _raise(signum, frame):
        raise _Hang(f"orchestrator {' '.join(argv)[:200]} ran past {seconds} s")

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return main(argv)
    except SystemExit as exc:  # argparse usage errors exit 2 as well
        return exc.code
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _assert_clean_exit(argv: list[str], capsys, workdir: Path, seconds: float = TIME_LIMIT_S) -> str:
    code = _main_within(argv, seconds)
    # Anything else propagating out of main() is what a user sees as a traceback: the test fails.
    out, err = capsys.readouterr()
    assert code == 2, f"exit {code}\nstdout: {out[:2000]}\nstderr: {err[:2000]}"
    assert "Traceback" not in err and "Traceback" not in out
    assert err.strip(), "exit 2 must say what to fix"
    assert len(err) < 200_000, f"{len(err)} chars of error output"
    assert not (workdir / "results").exists(), "a results folder appeared for a rejected recipe"
    assert not (workdir / "pwned.txt").exists()
    return err


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_recipe_exits_2_without_traceback_or_writes(case, command, tmp_path, workdir, capsys):
    path = _write(tmp_path, case, HOSTILE[case])
    extra = ["--quiet"] if command == "run" else []
    _assert_clean_exit([command, str(path), *extra], capsys, workdir)
    assert sorted(p.name for p in workdir.iterdir()) == []


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("override", [
    "name=../../x", "name=/etc", "results.path=a\x00b", "train.epochs=" + "9" * 5000,
    "train.lr=" + "[" * 1200 + "]" * 1200, "train.lr={uniform: [1, 0]}", "=1", "train..lr=1", "colour=blue",
], ids=["name-escapes", "name-absolute", "nul-path", "huge-int", "deep-list", "bad-leaf", "no-key", "empty-part", "unknown"])
def test_hostile_override_exits_2(override, command, tmp_path, workdir, capsys):
    path = _write(tmp_path, "ok", "name: ok\n")
    _assert_clean_exit([command, str(path), override], capsys, workdir)


@pytest.mark.parametrize("name", ["../../x", "../x", "a/../../x", "/abs", "..", ".", "x/y", "x\\y", "x\n", ""])
def test_recipe_name_cannot_escape_the_results_folder(name, tmp_path, workdir, capsys):
    # The name becomes <results.path>/<name>/: it must be one plain folder name.
    path = _write(tmp_path, "name", yaml.safe_dump({"name": name}))
    err = _assert_clean_exit(["run", str(path), "--quiet"], capsys, workdir)
    assert "name" in err
    assert list(tmp_path.parent.glob("x")) == [] and not (tmp_path / "x").exists()


def test_results_path_outside_the_project_is_accepted(tmp_path, workdir, capsys):
    # An absolute results.path the user chose is legitimate (a shared disk, /scratch): validate
    # accepts it and writes nothing there.
    target = tmp_path / "elsewhere" / "results"
    path = _write(tmp_path, "abs", f"name: ok\nresults: {{path: '{target}'}}\n")
    assert main(["validate", str(path)]) == 0
    assert not target.exists()
    relative = _write(tmp_path, "rel", "name: ok\nresults: {path: ../../somewhere}\n")
    assert main(["validate", str(relative)]) == 0
    capsys.readouterr()


def test_results_path_with_nul_byte_is_a_clean_error(tmp_path, workdir, capsys):
    # Accepted by validation today; `run` then imports torch and Ray (seconds on a busy machine)
    # and dies in SweepDir.create -> Path.resolve() with a ValueError traceback, before Ray starts.
    path = _write(tmp_path, "nul", 'name: ok\nresults: {path: "a\\0b"}\nsearch: {num_samples: 1}\n')
    _assert_clean_exit(["run", str(path), "--quiet"], capsys, workdir, seconds=120)
