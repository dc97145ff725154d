import pytest
from pydantic import ValidationError

from orchestrator.compress import CompressionConfig, DistillationConfig, PruningConfig, QuantizationConfig


@pytest.mark.parametrize(
    "section, values, field",
    [
        ("quantization", {"bits": 1}, "bits"),
        ("quantization", {"bits": 9}, "bits"),
        ("quantization", {"mode": "int4"}, "mode"),
        ("quantization", {"percentile": 50}, "percentile"),
        ("quantization", {"calibration_batches": 0}, "calibration_batches"),
        ("pruning", {"sparsity": 1.0}, "sparsity"),
        ("pruning", {"sparsity": -0.1}, "sparsity"),
        ("pruning", {"threshold": 0.0}, "threshold"),
        ("pruning", {"sparsity": 0.5, "method": "random"}, "method"),
        ("pruning", {"sparsity": 0.5, "frequency": 0}, "frequency"),
        ("distillation", {"alpha": 1.5}, "alpha"),
        ("distillation", {"alpha": -0.1}, "alpha"),
        ("distillation", {"temperature": 0.0}, "temperature"),
        ("distillation", {"temperature": -2.0}, "temperature"),
        ("distillation", {"temprature": 2.0}, "temprature"),
    ],
)
def test_bad_value_names_field_and_value(section, values, field):
    with pytest.raises(ValidationError) as err:
        CompressionConfig.model_validate({section: values})
    text = str(err.value)
    assert f"{section}.{field}" in text, text
    assert f"input_value={values[field]!r}" in text, text  # the value
    assert "should" in text or "not permitted" in text, text  # what is allowed


@pytest.mark.parametrize(
    "values, words",
    [
        ({}, ["sparsity", "threshold", "exactly one"]),
        ({"sparsity": 0.5, "threshold": 0.5}, ["sparsity", "threshold", "exactly one"]),
        ({"sparsity": 0.5, "schedule": "gradual", "start_epoch": 3, "end_epoch": 3}, ["end_epoch=3", "start_epoch=3"]),
        ({"threshold": 0.5, "schedule": "gradual"}, ["gradual", "sparsity"]),
        ({"sparsity": 0.5, "schedule": "gradual", "initial_sparsity": 0.6}, ["initial_sparsity=0.6", "sparsity=0.5"]),
    ],
)
def test_cross_field_rules_explain_themselves(values, words):
    with pytest.raises(ValidationError) as err:
        PruningConfig(**values)
    for word in words:
        assert word in str(err.value)


def test_defaults_and_combination_are_valid():
    cfg = CompressionConfig(pruning={"sparsity": 0.9}, quantization={"bits": 4}, distillation={})
    assert cfg.pruning == PruningConfig(sparsity=0.9)
    assert cfg.quantization == QuantizationConfig(bits=4)
    assert cfg.distillation == DistillationConfig(alpha=0.5, temperature=4.0)
    assert CompressionConfig().pruning is None
