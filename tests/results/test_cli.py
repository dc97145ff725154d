import argparse
import json

import pytest

from orchestrator.results.cli import EXIT_BAD_INPUT, EXIT_OK, register


def run(argv):
    parser = argparse.ArgumentParser(prog="orchestrator")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


def test_ls(tree, capsys):
    assert run(["ls", tree]) == EXIT_OK
    out = capsys.readouterr().out
    assert "sweep-a2" in out and "cnn" in out
    assert run(["ls", tree, "--json"]) == EXIT_OK
    rows = json.loads(capsys.readouterr().out)
    assert [r["sweep_id"] for r in rows] == ["sweep-b1", "sweep-a1", "sweep-a2"]
    assert rows[2]["trials"] == 36 and rows[2]["failed"] == 1


def test_frontier(tree, capsys):
    assert run(["frontier", tree / "mlp" / "sweep-a1"]) == EXIT_OK
    assert "frontier of mlp/sweep-a1" in capsys.readouterr().out
    assert run(["frontier", tree / "mlp", "--json", "--objectives", "val_accuracy:max",
                "size_bytes:min", "wall_s:min"]) == EXIT_OK
    payload = json.loads(capsys.readouterr().out)
    assert payload["objectives"] == ["val_accuracy:max", "size_bytes:min", "wall_s:min"]
    assert {s["sweep_id"] for s in payload["sweeps"]} == {"sweep-a1", "sweep-a2"}
    assert all(len(s["frontier"]) > 0 for s in payload["sweeps"])


def test_compare(tree, capsys):
    assert run(["compare", tree / "mlp" / "sweep-a1", tree / "mlp" / "sweep-a2"]) == EXIT_OK
    assert "hypervolume" in capsys.readouterr().out
    assert run(["compare", tree / "mlp", "--budgets", "0.5", "0.1", "--json"]) == EXIT_OK
    payload = json.loads(capsys.readouterr().out)
    assert [s["sweep_id"] for s in payload["sweeps"]] == ["sweep-a1", "sweep-a2"]
    assert payload["gains"][0]["hv_gain"] > 0  # a2 was generated with more skill
    assert sorted({b["budget"] for b in payload["budgets"]}) == [0.1, 0.5]


def test_report(tree, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert run(["report", tree / "mlp", tree / "cnn", "-o", out]) == EXIT_OK
    assert out.is_file() and (tmp_path / "r.png").is_file()


def test_bad_input_exits_2_and_names_the_argument(tree, tmp_path, capsys):
    assert run(["frontier", tmp_path / "absent"]) == EXIT_BAD_INPUT
    err = capsys.readouterr()
    assert "absent" in err.err and "no such results folder" in err.err and err.out == ""
    assert run(["compare", tree, "--objectives", "accuracy:max", "--json"]) == EXIT_BAD_INPUT
    err = capsys.readouterr()
    assert "'accuracy'" in err.err and "val_accuracy" in err.err and err.out == ""
    for argv in (["frontier", tree, "--objectives", "val_accuracy:up"],
                 ["compare", tree, "--budgets", "-1"]):
        with pytest.raises(SystemExit) as exc:
            run(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "--objectives" in err or "--budgets" in err
        assert "'max' or 'min'" in err or "positive fraction" in err
