"""Stochastic depth in a user's pair: torchvision's StochasticDepth (EfficientNet's,
ConvNeXt's residual branches) and timm's DropPath against the Keras layers that port them,
keras.applications' ConvNeXt StochasticDepth and EfficientNet's Dropout with noise_shape
(None, 1, 1, 1).

compare.py counted neither StochasticDepth class as Dropout: both runs said Dropout 0/0,
`--dropout off` left them dropping (PyTorch's train-step loss 1.1243 where the step without
stochastic depth gives 1.1347), no Dropout-free pass was made, and the referee's training-mode
graph held torchvision's random draw (RandomUniformLike: outputs 0.24 apart from run to run)."""

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from torch.nn import functional as F

import comparator
from tests.stochastic_depth_models import (
    OwnDropout,
    OwnDropPath,
    ResidualDepth,
    keras_residual_depth,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
X = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
LABELS = [0, 1, 2, 0]
STEP = ("pytorch:train", "keras:train")


def train_step_loss(mode: str = "row", branch_scale: float | None = None) -> float:
    """Plain PyTorch: the train-step forward pass (BatchNorm on the batch's statistics) with
    StochasticDepth in eval(), its branch multiplied by branch_scale where given (0: the
    batch's branch dropped; 2: kept, scaled by 1 / (1 - p))."""
    net = ResidualDepth(mode).train()
    net.drop.eval()
    if branch_scale is not None:
        net.drop.register_forward_hook(lambda module, args, output: output * branch_scale)
    with torch.no_grad():
        return float(F.cross_entropy(net(torch.from_numpy(X)), torch.tensor(LABELS)))


def compare(mode="row", keras_kind="convnext", recipes=STEP, **options):
    return comparator.compare_pair(ResidualDepth(mode), keras_residual_depth(keras_kind), X,
                                   LABELS, port_weights="pytorch-to-keras", recipes=recipes,
                                   **options)


def drop_kind(kind: str) -> str:
    """A ResidualDepth mode: torchvision's StochasticDepth ("row"), timm's DropPath
    ("timm"), or a drop path of the model's own class ("own"), which compare.py did not count
    either (PyTorch's run: Dropout 0/0, no Dropout-free pass, no rate among the
    conventions)."""
    if kind == "timm":
        pytest.importorskip("timm")
    return kind


@pytest.fixture(scope="module", params=["row", "timm", "own"])
def dropping(request):
    return compare(drop_kind(request.param))


def test_stochastic_depth_counts_as_dropout_in_both_frameworks(dropping):
    without = train_step_loss()
    for run in dropping.runs:
        assert (run.modes.dropout_layers, run.modes.dropout_active) == (1, 1), run.id
        # The pass without Dropout is without stochastic depth too, in both frameworks.
        assert run.losses.train_step_without_dropout == pytest.approx(without, abs=1e-6)
        assert abs(run.losses.train_step[0] - without) > 1e-3  # the step itself dropped
        assert run.modes.stochastic_depth_layers == 1
    for framework in ("pytorch", "keras"):
        assert dropping.settings["conventions"][framework]["dropout"] == {"drop": 0.5}
    (eq,) = dropping.equivalences
    assert "judged on the Dropout-free passes" in eq.judged_on
    assert not any("Dropout layers active" in d for d in eq.differences)


def test_the_explanation_names_stochastic_depth(dropping):
    assert [e["run"] for e in dropping.explanations] == list(STEP)
    for explanation in dropping.explanations:
        causes = {c["cause"]: c["text"] for c in explanation["causes"]}
        # Split with BatchNorm's batch statistics, each switched off in its own pass.
        assert "bn_batch_statistics" in causes
        assert causes["dropout"].startswith(
            "1 of 1 Dropout layers (1 of them stochastic depth) were active in the train step")


@pytest.mark.parametrize("keras_kind", ["convnext", "efficientnet"])
def test_dropout_off_turns_stochastic_depth_off_in_both_frameworks(keras_kind):
    """EfficientNet's Dropout of whole examples was counted as Dropout before; now as
    stochastic depth too."""
    report = compare(keras_kind=keras_kind, dropout="off")
    without = train_step_loss()
    for run in report.runs:
        assert run.losses.train_step[0] == pytest.approx(without, abs=1e-6), run.id
        assert run.losses.train_step_without_dropout is None  # the step is that pass
        assert (run.modes.dropout_layers, run.modes.dropout_active,
                run.modes.stochastic_depth_layers) == (1, 0, 1), run.id
    (eq,) = report.equivalences
    assert eq.judged_on == ""


@pytest.mark.parametrize("seed", [0, 1])
def test_a_batch_mode_stochastic_depth_is_active_whether_it_drops_or_keeps(seed):
    """mode="batch" draws once for the whole batch: dropped, the branch is zero; kept, it
    is scaled by 1 / (1 - p). Either way it acted (seeds 0 and 1 draw one of each)."""
    (run,) = compare("batch", recipes=("pytorch:train",), seed=seed).runs
    assert (run.modes.dropout_layers, run.modes.dropout_active) == (1, 1)
    outcomes = {0.0: "dropped", 2.0: "kept"}
    losses = {scale: train_step_loss("batch", scale) for scale in outcomes}
    (found,) = [outcomes[s] for s, loss in losses.items()
                if run.losses.train_step[0] == pytest.approx(loss, abs=1e-6)]
    assert found == ("dropped" if seed == 0 else "kept")
    assert run.losses.train_step_without_dropout == pytest.approx(train_step_loss("batch"),
                                                                  abs=1e-6)


@pytest.mark.parametrize("pytorch_model", ["ResidualDepth", "timm_residual_depth",
                                           "own_residual_depth"])
def test_the_referee_exports_the_training_pass_without_stochastic_depth(tmp_path,
                                                                          pytorch_model):
    """compare.py's default referee: its training-mode graph holds no random node, and its
    loss is the Dropout-free train-step pass of both frameworks. timm's DropPath was
    exported as drawn (Bernoulli) before, and its run counted no Dropout."""
    if pytorch_model.startswith("timm"):
        drop_kind("timm")
    report_path = tmp_path / "report.json"
    spec = os.path.join("tests", "stochastic_depth_models.py")
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "compare.py"),
         "--pytorch", f"{spec}:{pytorch_model}", "--keras", f"{spec}:keras_residual_depth",
         "--port-weights", "pytorch-to-keras", "--input-shape", "3,8,8", "--batch-size", "4",
         "--labels", ",".join(map(str, LABELS)), "--recipes", ",".join(STEP),
         "--cache-dir", str(tmp_path / "cache"), "--json", str(report_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
        env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(report_path.read_text())
    train = report["references"]["onnx:train_forward"]
    assert train["export"]["exported_with"]["dropout_modules_removed"] == 1
    for run in report["runs"]:
        assert run["modes"]["dropout_active"] == 1
        assert train["train_forward"] == pytest.approx(
            run["losses"]["train_step_without_dropout"], abs=1e-5)
    assert all(check["passed"] for check in report["checks"]), report["checks"]
    graphs = [os.path.join(folder, name) for folder, _, names in os.walk(tmp_path / "cache")
              for name in names if name.endswith(".onnx")]
    assert graphs
    for graph in graphs:
        ops = {node.op_type for node in onnx.load(graph).graph.node}
        assert not ops & {"RandomUniformLike", "RandomUniform", "Bernoulli"}, graph


def test_timm_convnext_against_keras_convnext_counts_the_same_stochastic_depth():
    """A real pair: timm's convnext_tiny and keras.applications' ConvNeXt, both with
    drop_path_rate=0.1 (17 branches dropped; the first block's rate is 0 in both, which each
    builds without the layer). timm also holds 37 Dropout modules of rate 0 in its MLPs and
    head, counted as Dropout layers and never active."""
    timm = pytest.importorskip("timm")
    from keras.src.applications.convnext import ConvNeXt

    torch.manual_seed(0)
    model = timm.create_model("convnext_tiny", pretrained=False, drop_path_rate=0.1)
    port = ConvNeXt([3, 3, 9, 3], [96, 192, 384, 768], drop_path_rate=0.1,
                    name="convnext_tiny", include_preprocessing=False,
                    classifier_activation=None, input_shape=(32, 32, 3))
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    report = comparator.compare_pair(model, port, x, LABELS, port_weights="pytorch-to-keras",
                                     recipes=STEP)
    torch_run, keras_run = (next(r for r in report.runs if r.id == name) for name in STEP)
    assert (torch_run.modes.dropout_layers, torch_run.modes.dropout_active,
            torch_run.modes.stochastic_depth_layers) == (54, 17, 17)
    assert (keras_run.modes.dropout_layers, keras_run.modes.dropout_active,
            keras_run.modes.stochastic_depth_layers) == (17, 17, 17)
    assert torch_run.losses.train_step_without_dropout == pytest.approx(
        keras_run.losses.train_step_without_dropout, abs=1e-5)


def test_a_drop_path_of_a_models_own_class_is_told_from_its_own_dropout():
    """Measured, not named: a drop path zeroes whole examples at its rate (0.005 included,
    the lowest rate of a ConvNeXt-T with drop_path_rate 0.1), an element-wise Dropout parts
    of them; the measurement leaves torch's random state as it was."""
    from adapters.pytorch.drop_path import stochastic_depth, stochastic_depth_rate

    state = torch.random.get_rng_state()
    for rate in (0.005, 0.5):
        assert stochastic_depth(OwnDropPath(rate)) and stochastic_depth_rate(
            OwnDropPath(rate)) == rate
        assert not stochastic_depth(OwnDropout(rate))
    assert torch.equal(torch.random.get_rng_state(), state)
