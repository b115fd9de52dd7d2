"""A user pair whose outputs have one unit per example (a tabular regressor's Linear(16, 1)) or
per position (a one-channel map): cross-entropy over one class is 0 whatever the weights, so
such a pair regresses where no scenario is asked for, and classify is refused in one line.
Before, it ran classify: every loss 0.0000, no weight moved, and "checks passed"."""

import json
import os
import subprocess
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import comparator  # noqa: E402
from comparator.errors import UsageError  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join("tests", "test_user_pair_one_output.py")
ROWS = np.random.default_rng(0).standard_normal((4, 12)).astype(np.float32)
IMAGES = np.random.default_rng(1).standard_normal((4, 3, 5, 5)).astype(np.float32)
FAST = dict(recipes=("pytorch:train", "keras:train"), port_weights="pytorch-to-keras")
REFUSAL = "cross-entropy over one class is 0 whatever the weights"


def torch_mlp(units: int = 1):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, units))


def keras_mlp(units: int = 1):
    return keras.Sequential([keras.Input((12,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(units)])


def torch_map():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 1))


def keras_map():
    return keras.Sequential([keras.Input((5, 5, 3)),
                             keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
                             keras.layers.Conv2D(1, 1)])


def _trained(report) -> None:
    """The train step had a loss to step on, and the inference loss moved."""
    for run in report.runs:
        assert run.losses.train_step[0] > 1e-6, run.id
        assert run.losses.inference_after != run.losses.inference_before, run.id


def test_one_output_per_example_regresses_by_default():
    report = comparator.compare_pair(torch_mlp(), keras_mlp(), ROWS, **FAST)
    assert report.scenario == report.settings["scenario"] == "regress"
    assert report.settings["scenario_source"] == (
        f"default: the outputs (4, 1) have one unit on the class axis, and {REFUSAL}")
    assert report.settings["labels"] is None


def test_one_output_per_example_trains_on_given_targets():
    # Without targets they are the model's own inference outputs, which a model without
    # BatchNorm or Dropout gives in its train step too: MSE 0 there (docs/own-models.md).
    targets = np.full((4, 1), 0.5, dtype=np.float32)
    report = comparator.compare_pair(torch_mlp(), keras_mlp(), ROWS, targets, **FAST)
    assert report.scenario == "regress" and report.settings["labels_source"] == "given"
    _trained(report)


def test_a_one_channel_map_regresses_by_default():
    targets = np.full((4, 1, 5, 5), 0.5, dtype=np.float32)
    report = comparator.compare_pair(torch_map(), keras_map(), IMAGES, targets, **FAST)
    assert report.scenario == "regress"
    assert report.settings["scenario_source"].startswith(
        "default: the outputs (4, 1, 5, 5) have one unit on the class axis")
    _trained(report)


def test_several_classes_still_classify_by_default():
    report = comparator.compare_pair(torch_mlp(3), keras_mlp(3), ROWS, **FAST)
    assert report.scenario == "classify"
    assert report.settings["scenario_source"] == (
        "default: the outputs (4, 3) have 3 units on the class axis")
    assert report.settings["labels"] == "predicted"


@pytest.mark.parametrize("loss, value", [("logits", "0"), ("probabilities", "1.2e-7")])
def test_compare_pair_refuses_cross_entropy_on_one_output(loss, value):
    with pytest.raises(UsageError, match=(
            rf"one output unit per example \(outputs \(4, 1\)\): cross-entropy over one class "
            rf"is {value}.* whatever the weights.*use --scenario regress")):
        comparator.compare_pair(torch_mlp(), keras_mlp(), ROWS, loss=loss, **FAST)


def test_compare_pair_refuses_cross_entropy_on_a_one_channel_map():
    with pytest.raises(UsageError, match=r"one output unit per position \(outputs \(4, 1, 5, 5"):
        comparator.compare_pair(torch_map(), keras_map(), IMAGES, loss="logits", **FAST)


def test_integer_labels_for_one_class_do_not_slip_through():
    # All 0, they are valid labels of one class: they ask for classify, which is refused.
    with pytest.raises(UsageError, match=REFUSAL):
        comparator.compare_pair(torch_mlp(), keras_mlp(), ROWS, np.zeros(4, dtype=np.int64),
                                **FAST)


def _compare(tmp_path, *args):
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "compare.py"), "--pytorch",
         f"{SPEC}:torch_mlp", "--keras", f"{SPEC}:keras_mlp", "--input-shape", "12",
         "--batch-size", "2", "--port-weights", "pytorch-to-keras", "--no-onnx",
         "--recipes", "pytorch:train,keras:train", "--json", str(report), *args],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
        env={**os.environ, "PYTHONPATH": ROOT, "KERAS_BACKEND": "torch"})
    return result, report


def test_the_command_line_regresses_and_says_why(tmp_path):
    result, report = _compare(tmp_path)
    assert result.returncode == 0, result.stderr
    settings = json.loads(report.read_text())["settings"]
    assert settings["scenario"] == "regress"
    assert settings["scenario_source"].startswith("default: the outputs (2, 1) have one unit")
    assert "/regress: 2 runs, checks passed" in " ".join(result.stdout.split())


@pytest.mark.parametrize("args", [("--scenario", "classify"), ("--labels", "0")])
def test_the_command_line_refuses_classify_in_one_line(tmp_path, args):
    result, report = _compare(tmp_path, *args)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert REFUSAL in line and "use --scenario regress" in line
    assert not report.exists()


def test_labels_are_refused_with_the_regress_scenario(tmp_path):
    result, report = _compare(tmp_path, "--scenario", "regress", "--labels", "0")
    assert result.returncode == 2
    assert "--labels are for the classify scenario, not regress" in result.stderr
    assert not report.exists()
