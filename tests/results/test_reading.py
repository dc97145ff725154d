import json

import pandas as pd
import pytest

from orchestrator.results import ResultsInputError, list_sweeps, read_epochs, read_results


def test_whole_tree_is_one_frame_with_unified_param_columns(tree):
    df = read_results(tree)
    assert df.groupby("sweep_id").size().to_dict() == {
        "sweep-a1": 13, "sweep-a2": 37, "sweep-b1": 9}
    params = sorted(c for c in df.columns if c.startswith("param."))
    assert params == ["param.compression.pruning.sparsity",
                      "param.compression.quantization.bits", "param.train.lr"]
    bits = df.set_index("sweep_id")["param.compression.quantization.bits"]
    assert bits.loc["sweep-a1"].isna().all()  # absent in that sweep: null
    assert bits.loc["sweep-b1"].dropna().eq(4).all()  # int64 there, float64 in a2: promoted
    assert pd.api.types.is_float_dtype(bits)
    assert not df["trial_id"].isna().any()  # Ray's _/. files were not read


def test_levels_and_filters(tree):
    assert set(read_results(tree / "mlp")["sweep_id"]) == {"sweep-a1", "sweep-a2"}
    one = read_results(tree / "cnn" / "sweep-b1")
    assert set(one["sweep_id"]) == {"sweep-b1"}
    assert set(read_results(tree, recipe="cnn")["sweep_id"]) == {"sweep-b1"}
    sel = read_results(tree, sweep_id=["sweep-a1", "sweep-b1"], status="failed")
    assert len(sel) == 2 and set(sel["status"]) == {"failed"}
    assert read_results(tree, recipe="nope").empty


def test_epochs(tree):
    ep = read_epochs(tree)
    assert len(ep) == 3 * (13 + 37 + 9)
    assert {"sweep_id", "trial_id", "epoch", "val_accuracy", "train_loss", "lr"} <= set(ep.columns)
    assert len(read_epochs(tree, trial_id="sweep-a1-t00000")) == 3


def test_list_sweeps_reads_sweep_json_oldest_first(tree):
    sweeps = list_sweeps(tree)
    assert sweeps["sweep_id"].tolist() == ["sweep-b1", "sweep-a1", "sweep-a2"]
    assert sweeps["recipe_name"].tolist() == ["cnn", "mlp", "mlp"]
    assert str(sweeps["created_at"].iloc[0]) == "2025-02-01 10:00:00+00:00"
    assert sweeps["recipe_hash"].iloc[0] == "hash-cnn"


def test_sweep_without_metadata_is_listed_from_folder_names(tree):
    (tree / "mlp" / "sweep-a1" / "sweep.json").unlink()
    row = list_sweeps(tree).set_index("sweep_id").loc["sweep-a1"]
    assert row["recipe_name"] == "mlp" and pd.isna(row["created_at"])


def test_missing_path_is_reported(tmp_path):
    with pytest.raises(ResultsInputError, match="no such results folder"):
        read_results(tmp_path / "absent")
    assert read_results(tmp_path).empty
    assert list_sweeps(tmp_path).empty


def test_file_uri(tree):
    df = read_results(tree.as_uri())
    assert len(df) == 13 + 37 + 9
    assert json.loads((tree / "cnn" / "sweep-b1" / "sweep.json").read_text())["sweep_id"]
