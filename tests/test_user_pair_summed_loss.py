"""--output KEY1,KEY2 with --loss-weights: a model with an auxiliary head trains on the
weighted sum of its outputs' losses (torchvision's segmentation reference: out + 0.5 aux;
Inception: loss1 + 0.4 loss2). Every loss the comparison reports is that sum, checked here
against plain PyTorch and against Keras's own multi-output fit() and evaluate()."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import torch
from torch.nn import functional as F

import comparator
from comparator.errors import UsageError
from tests import aux_head_models as models
from tests import map_pair_models as maps
from tests.conftest import refereed_pair

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
X, Y = models.images(), models.LABELS
WEIGHTS = (1.0, 0.5)
RECIPES = ("pytorch:train", "pytorch:eval", "keras:train", "keras:trainable_false")


def run(report, run_id):
    (found,) = [r for r in report.runs if r.id == run_id]
    return found


@pytest.fixture(scope="module")
def summed():
    """The tuple pair, both heads chosen, aux weighted 0.5, Keras's weights ported by hand."""
    torch_model = models.seeded(models.TwoHeads)
    keras_model = models.keras_port(torch_model, models.keras_two_heads())
    return comparator.compare_pair(torch_model, keras_model, X, Y, output="0,1",
                                   loss_weights=WEIGHTS, recipes=RECIPES)


def _torch_sum(outputs):
    y = torch.from_numpy(Y)
    return sum(w * F.cross_entropy(out, y) for w, out in zip(WEIGHTS, outputs))


def test_pytorch_losses_are_the_weighted_sum_plain_pytorch_computes(summed):
    model = models.seeded(models.TwoHeads)
    x = torch.from_numpy(X)
    with torch.no_grad():
        before = float(_torch_sum(model.eval()(x)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss = _torch_sum(model.train()(x))  # one backward through both heads
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        after = float(_torch_sum(model.eval()(x)))
    losses = run(summed, "pytorch:train").losses
    assert losses.inference_before == pytest.approx(before, rel=1e-6)
    assert losses.train_step[0] == pytest.approx(float(loss), rel=1e-6)
    assert losses.inference_after == pytest.approx(after, rel=1e-6)
    assert run(summed, "pytorch:eval").losses.train_step[0] == pytest.approx(before, rel=1e-6)


def test_keras_losses_are_what_its_own_multi_output_fit_and_evaluate_report(summed):
    """Keras 3.15.1: compile(loss=[l, l], loss_weights=[1, 0.5]); evaluate() gives [the
    weighted sum, each output's loss] and fit()'s history `loss` is the weighted sum."""
    plain = models.keras_port(models.seeded(models.TwoHeads), models.keras_two_heads())
    plain.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01),
                  loss=[keras.losses.SparseCategoricalCrossentropy(from_logits=True)] * 2,
                  loss_weights=list(WEIGHTS))
    x = np.moveaxis(X, 1, -1)
    before = plain.evaluate(x, [Y, Y], verbose=0)
    history = plain.fit(x, [Y, Y], batch_size=len(Y), epochs=1, shuffle=False, verbose=0)
    after = plain.evaluate(x, [Y, Y], verbose=0)
    assert before[0] == pytest.approx(before[1] + 0.5 * before[2], rel=1e-6)
    losses = run(summed, "keras:train").losses
    assert losses.inference_before == pytest.approx(before[0], rel=1e-6)
    assert losses.train_step[0] == pytest.approx(history.history["loss"][0], rel=1e-6)
    assert losses.inference_after == pytest.approx(after[0], rel=1e-6)
    assert run(summed, "keras:trainable_false").losses.train_step[0] == pytest.approx(
        before[0], rel=1e-6)


def test_the_frameworks_agree_and_the_report_records_keys_and_weights(summed):
    assert summed.checks[0].passed and summed.checks[0].value < 1e-6
    assert summed.settings["pair"]["output"] == {
        "pytorch": "0,1", "keras": "0,1", "left_out": [], "keras_left_out": [],
        "keys": [{"pytorch": "0", "keras": "0"}, {"pytorch": "1", "keras": "1"}],
        "loss_weights": [1.0, 0.5]}
    assert summed.settings["loss"] == ("1 x '0' + 0.5 x '1': each output's mean "
                                       "cross-entropy from logits, integer labels, with the "
                                       "same labels")
    assert summed.settings["inputs"]["outputs_shape"] == [4, models.CLASSES]
    for when in ("inference_before", "inference_after"):
        assert getattr(run(summed, "keras:train").losses, when) == pytest.approx(
            getattr(run(summed, "pytorch:train").losses, when), rel=1e-5)
    (same,) = [e for e in summed.equivalences if e.a == "keras:train"]
    assert same.max_weight_diff < 1e-5


def test_a_dict_and_a_list_pair_by_torch_key_and_keras_key():
    report = comparator.compare_pair(models.seeded(models.TwoHeadsDict),
                                     models.keras_two_heads(), X, Y, output="aux:1,out:0",
                                     loss_weights=(0.4, 1.0), port_weights="pytorch-to-keras",
                                     recipes=("pytorch:eval", "keras:trainable_false"))
    with torch.no_grad():
        outputs = models.seeded(models.TwoHeadsDict).eval()(torch.from_numpy(X))
    y = torch.from_numpy(Y)
    expected = float(0.4 * F.cross_entropy(outputs["aux"], y)
                     + F.cross_entropy(outputs["out"], y))
    for run_id in ("pytorch:eval", "keras:trainable_false"):
        assert run(report, run_id).losses.inference_before == pytest.approx(expected, rel=1e-6)
    output = report.settings["pair"]["output"]
    assert (output["pytorch"], output["keras"]) == ("aux,out", "1,0")
    assert output["loss_weights"] == [0.4, 1.0]
    assert report.checks[0].value < 1e-6


def test_mean_squared_error_is_summed_too():
    targets = np.random.default_rng(1).standard_normal((4, models.CLASSES)).astype(np.float32)
    torch_model = models.seeded(models.TwoHeads)
    report = comparator.compare_pair(torch_model, models.keras_two_heads(), X, targets,
                                     loss="mse", output="0,1", loss_weights=(0.3, 1.0),
                                     port_weights="pytorch-to-keras",
                                     recipes=("pytorch:eval", "keras:trainable_false"))
    with torch.no_grad():
        main, aux = models.seeded(models.TwoHeads).eval()(torch.from_numpy(X))
    t = torch.from_numpy(targets)
    expected = float(0.3 * F.mse_loss(main, t) + F.mse_loss(aux, t))
    for run_id in ("pytorch:eval", "keras:trainable_false"):
        assert run(report, run_id).losses.inference_before == pytest.approx(expected, rel=1e-6)


def test_the_port_check_compares_every_chosen_output():
    """A Keras aux head off by 0.5 in its bias: unseen with the main output alone."""
    torch_model = models.seeded(models.TwoHeads)
    twin = models.keras_port(torch_model, models.keras_two_heads())
    kernel, bias = twin.get_layer("aux_fc").get_weights()
    twin.get_layer("aux_fc").set_weights([kernel, bias + 0.5])
    main_only = comparator.compare_pair(torch_model, twin, X, Y, output="0",
                                        recipes=("pytorch:eval",))
    both = comparator.compare_pair(torch_model, twin, X, Y, output="0,1",
                                   recipes=("pytorch:eval",))
    assert main_only.checks[0].passed
    assert not both.checks[0].passed and both.checks[0].value == pytest.approx(0.5, rel=1e-5)
    # Was not located: "the port validator follows one output: run validate_port.py
    # --output KEY on each of 0,1 to find the layer". It follows both now.
    found = both.settings["pair"]["first_divergence"]
    assert found["located"] and (found["torch_module"], found["keras_layer"]) == ("aux_fc",
                                                                                 "aux_fc")
    assert found["seen_in"] == "inference, isolated" and found["causes"] == ["weights"]


def test_the_onnx_referee_sums_the_graphs_outputs_losses(tmp_path):
    report, result = refereed_pair(tmp_path, recipes=("pytorch:train", "keras:train"),
                                   pytorch=models.seeded(models.TwoHeadsDict),
                                   keras=models.keras_two_heads_dict(), output="out,aux",
                                   loss_weights=WEIGHTS, port_weights="pytorch-to-keras", x=X,
                                   y=Y)
    assert not result.failed, result.reasons
    assert all(check.passed for check in result.checks)
    before = run(report, "pytorch:train").losses.inference_before
    for loss in result.references["onnx:eval"]["losses"].values():
        assert loss == pytest.approx(before, rel=1e-6)
    assert result.references["onnx:train_forward"]["train_forward"] == pytest.approx(
        run(report, "pytorch:train").losses.train_step[0], rel=1e-6)


def test_outputs_of_different_shapes_are_one_line():
    with pytest.raises(UsageError, match=r"--output out,aux: the chosen outputs must have one "
                                         r"shape, to take the same labels; PyTorch's are "
                                         r"\(4, 3, 8, 8\), \(4, 2, 8, 8\)") as caught:
        comparator.compare_pair(maps.seeded(maps.SegmentationWithAux),
                                maps.keras_segmentation_with_aux_twin(), maps.images(),
                                output="out,aux")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("options, message", [
    ({"output": "0,1", "loss_weights": ("a", 1)}, r"loss_weights takes a number per output"),
    ({"output": "0", "loss_weights": (2.0,)}, r"--loss-weights weighs the losses of several "
                                              r"outputs"),
    ({"output": "0,1", "loss_weights": (1.0,)}, r"--loss-weights gives 1 weight for the 2 "
                                                r"outputs of --output 0,1"),
])
def test_wrong_weights_in_python_are_one_line(options, message):
    with pytest.raises(UsageError, match=message) as caught:
        comparator.compare_pair(models.seeded(models.TwoHeads), models.keras_two_heads(), X,
                                **options)
    assert "\n" not in str(caught.value)


def test_several_outputs_of_a_model_that_returns_one_are_refused_with_the_whole_option():
    from tests import user_port_models as one_output

    with pytest.raises(UsageError, match=r"^--output 0,1: the Keras model returns one output; "
                                         r"--output chooses among several$"):
        comparator.compare_pair(one_output.torch_net(), one_output.keras_net(), X, Y,
                                output="0,1", recipes=("pytorch:eval",))


def test_the_validator_refuses_several_outputs_none_chosen_in_one_line():
    """It refused --output 0,1 too ("the port validator follows one output layer by layer");
    it follows several now (tests/test_validate_port_several_outputs.py), and asks for the
    choice where none is made."""
    with pytest.raises(UsageError, match=r"^cannot trace Keras model 'two_heads_twin': it has 2 "
                                         r"outputs; --output chooses the one or several "
                                         r"validated \(KEY or KEY1,KEY2,...\)$"):
        comparator.validate_port(models.seeded(models.TwoHeads), models.keras_two_heads(), X)


def _compare(*args):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "compare.py"),
         "--pytorch", "tests/aux_head_models.py:TwoHeadsDict",
         "--keras", "tests/aux_head_models.py:keras_two_heads_dict",
         "--input-shape", "3,8,8", "--batch-size", "4", "--no-onnx", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": ROOT})


@pytest.mark.parametrize("args, message", [
    (["--output", "out,aux", "--loss-weights", "1,x"],
     "--loss-weights takes numbers separated by ',', one per output, not '1,x'"),
    (["--output", "out,aux", "--loss-weights", "1,nan"],
     "--loss-weights takes finite numbers, not 1.0, nan"),
    (["--output", "out,aux", "--loss-weights", "1,0.5,2"],
     "--loss-weights gives 3 weights for the 2 outputs of --output out,aux"),
    (["--output", "out", "--loss-weights", "2"], "--loss-weights weighs the losses of several"),
    (["--loss-weights", "1,1"], "--loss-weights weighs the losses of several"),
    (["--output", "out,out"], "--output out,out: the PyTorch key 'out' is chosen twice"),
    (["--output", "out,"], "--output takes KEY or TORCH_KEY:KERAS_KEY (several: "
                           "KEY1,KEY2,...), not 'out,'"),
    (["--output", "out,mask"], "--output mask: the Keras model returns a dict of 2 outputs"),
])
def test_argument_errors_are_one_line_exit_2_and_write_nothing(tmp_path, args, message):
    target = tmp_path / "report.json"
    result = _compare(*args, "--json", str(target))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert message in lines[0] and "Traceback" not in result.stderr
    assert not target.exists()


def test_the_command_line_sums_the_outputs_losses(tmp_path):
    import json

    target = tmp_path / "report.json"
    result = _compare("--output", "out,aux", "--loss-weights", "1,0.4", "--labels", "0,1,2,3",
                      "--recipes", "pytorch:eval,keras:trainable_false", "--port-weights",
                      "pytorch-to-keras", "--json", str(target))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(target.read_text())
    assert report["settings"]["pair"]["output"]["loss_weights"] == [1.0, 0.4]
    torch.manual_seed(0)  # as compare.py seeds the SPEC's callable with --seed 0
    model = models.TwoHeadsDict().eval()
    x = np.random.default_rng([0, 6]).standard_normal((4, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        outputs = model(torch.from_numpy(x))
    y = torch.from_numpy(Y)
    expected = float(F.cross_entropy(outputs["out"], y)
                     + 0.4 * F.cross_entropy(outputs["aux"], y))
    for found in report["runs"]:
        assert found["losses"]["inference_before"] == pytest.approx(expected, rel=1e-6)
