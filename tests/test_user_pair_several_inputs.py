"""The comparison on a user's pair that takes several inputs (an image and a sequence:
forward(image, sequence), the Keras model's inputs in the same order). It was refused ("the
comparison feeds both models one batch, as one input"); now each input goes to Keras in its
own layout (the image channels-last, the batch-first sequence as given), both frameworks step
alike, the ONNX referee exports and runs both graphs on every input, and the numbers are
those of plain framework code."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import comparator
from adapters.keras.backend import keras
from tests import multi_input_models as models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "tests", "multi_input_models.py")
_RNG = np.random.default_rng(11)
IMAGES = _RNG.standard_normal((4, models.CHANNELS, models.SIZE, models.SIZE)).astype(np.float32)
SEQUENCES = _RNG.standard_normal((4, models.STEPS, models.FEATURES)).astype(np.float32)
LABELS = np.array([0, 2, 1, 2])
RECIPES = ("pytorch:train", "pytorch:eval", "keras:train", "keras:trainable_false")


def _pair(**keras_options):
    torch_model = models.seeded_image_and_sequence_net()
    keras_model = models.keras_image_and_sequence_net(**keras_options)
    comparator.port_weights(torch_model, keras_model)
    return torch_model, keras_model


@pytest.fixture(scope="module")
def compared():
    torch_model, keras_model = _pair()
    report = comparator.compare_pair(torch_model, keras_model, (IMAGES, SEQUENCES), LABELS,
                                     recipes=RECIPES)
    return report, torch_model, keras_model


def test_each_input_reaches_keras_in_its_own_layout(compared):
    report, _, _ = compared
    inputs = report.settings["inputs"]
    assert inputs["shape"] == [[4, models.CHANNELS, models.SIZE, models.SIZE],
                               [4, models.STEPS, models.FEATURES]]
    assert inputs["keras_layout"] == ["channels_last", "as_given"]
    assert report.settings["batch_size"] == 4 and report.settings["image_size"] is None
    assert [c.name for c in report.checks if not c.passed] == []
    port = {c.name: c for c in report.checks}["port:keras_vs_pytorch_eval_logits"]
    assert port.value < 1e-5


def test_the_losses_are_those_of_plain_framework_code(compared):
    report, torch_model, keras_model = compared
    # The comparison restores both models to their initial state when it ends.
    torch_model.eval()
    with torch.no_grad():
        plain = F.cross_entropy(torch_model(torch.from_numpy(IMAGES), torch.from_numpy(SEQUENCES)),
                                torch.from_numpy(LABELS)).item()
    assert report.run("pytorch:eval").losses.inference_before == pytest.approx(plain, abs=1e-6)
    keras_model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    keras_plain = keras_model.evaluate([np.moveaxis(IMAGES, 1, -1), SEQUENCES], LABELS,
                                       batch_size=4, verbose=0)
    assert report.run("keras:train").losses.inference_before == pytest.approx(keras_plain,
                                                                              abs=1e-6)
    torch_train, keras_train = report.run("pytorch:train"), report.run("keras:train")
    assert torch_train.losses.train_step[0] == pytest.approx(keras_train.losses.train_step[0],
                                                             abs=1e-5)
    assert torch_train.state.weights_changed and keras_train.state.weights_changed


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # the LSTM's shape checks
def test_a_users_onnx_file_with_two_inputs_referees_both_frameworks(tmp_path):
    torch_model, keras_model = _pair()
    path = str(tmp_path / "model.onnx")
    torch.onnx.export(torch_model.eval(), (torch.from_numpy(IMAGES), torch.from_numpy(SEQUENCES)),
                      path, dynamo=False, input_names=["image", "sequence"])
    report = comparator.compare_pair(torch_model, keras_model, (IMAGES, SEQUENCES), LABELS,
                                     recipes=("pytorch:eval", "keras:trainable_false"),
                                     onnx=path)
    checks = {c.name: c for c in report.checks}
    for framework in ("pytorch", "keras"):
        assert checks[f"onnx:file_vs_{framework}_eval_logits"].passed
    reference = report.references["onnx:file"]
    assert reference["input_layout"] == "channels-first (PyTorch's layout)"
    assert reference["inference_before"] == pytest.approx(
        report.run("pytorch:eval").losses.inference_before, abs=1e-5)


def test_the_validator_takes_each_input_in_its_own_layout():
    # The sequence, which Keras takes as given, once made the validator feed the image in
    # PyTorch's layout too.
    torch_model, keras_model = _pair()
    result = comparator.validate_port(torch_model.eval(), keras_model, (IMAGES, SEQUENCES))
    assert result.passed, result.render()
    assert result.input_shapes == ((4, models.CHANNELS, models.SIZE, models.SIZE),
                                   (4, models.STEPS, models.FEATURES))


def _subclassed_pair(epsilon: float = 1e-5):
    """Not ported yet: port_weights walks a functional graph, which a subclassed model has
    only once traced on the inputs (validate_port(port=...) and compare_pair do that)."""
    keras_model = models.SubclassedImageAndSequenceNet(epsilon)
    keras_model([np.moveaxis(IMAGES[:1], 1, -1), SEQUENCES[:1]])  # builds its weights
    return models.seeded_image_and_sequence_net().eval(), keras_model


def test_a_subclassed_keras_model_with_two_inputs_is_traced_and_validated():
    # It was refused: "a subclassed or nested model is traced on one input".
    result = comparator.validate_port(*_subclassed_pair(), (IMAGES, SEQUENCES),
                                      port="pytorch-to-keras")
    assert result.passed, result.render()
    assert result.pairs == 4
    found = comparator.validate_port(*_subclassed_pair(epsilon=0.1), (IMAGES, SEQUENCES),
                                     port="pytorch-to-keras",
                                     modes=("inference",)).first_divergence
    assert (found.torch_module, found.keras_layer) == ("bn", "bn")
    assert [cause.code for cause in found.causes] == ["epsilon"]


def test_a_subclassed_keras_model_with_two_inputs_is_compared():
    torch_model, keras_model = _subclassed_pair()
    report = comparator.compare_pair(torch_model, keras_model, (IMAGES, SEQUENCES), LABELS,
                                     recipes=("pytorch:train", "keras:train"),
                                     port_weights="pytorch-to-keras")
    assert report.settings["pair"]["pairing"]["paired_layers"] == 4
    assert [c.name for c in report.checks if not c.passed] == []
    torch_train, keras_train = report.run("pytorch:train"), report.run("keras:train")
    assert torch_train.losses.train_step[0] == pytest.approx(keras_train.losses.train_step[0],
                                                             abs=1e-5)


def test_a_port_gap_is_traced_to_its_layer_through_both_inputs():
    torch_model, keras_model = _pair(epsilon=0.1)
    report = comparator.compare_pair(torch_model, keras_model, (IMAGES, SEQUENCES), LABELS,
                                     recipes=("pytorch:eval", "keras:trainable_false"))
    notes = " ".join(report.settings.get("notes", []))
    assert "PyTorch bn <-> Keras bn" in notes and "BatchNorm epsilon" in notes


def _script(*args, cwd=ROOT):
    env = {**os.environ, "PYTHONPATH": ROOT, "KERAS_BACKEND": "torch"}
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "compare.py"), *args],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def _pair_arguments(keras_spec="keras_image_and_sequence_net"):
    return ["--pytorch", f"{MODELS}:seeded_image_and_sequence_net",
            "--keras", f"{MODELS}:{keras_spec}", "--port-weights", "pytorch-to-keras",
            "--recipes", "pytorch:eval,keras:trainable_false", "--no-onnx"]


def test_the_command_line_takes_several_inputs_and_saves_them_to_rerun(tmp_path):
    batch = tmp_path / "batch.npz"
    np.savez(batch, x0=IMAGES, x1=SEQUENCES, y=LABELS)
    first = _script(*_pair_arguments(), "--inputs", str(batch), "--json",
                    str(tmp_path / "first.json"), "--save-artifacts", str(tmp_path / "saved"),
                    "--quiet")
    assert first.returncode == 0, first.stderr
    saved = np.load(tmp_path / "saved" / "batch.npz")
    assert sorted(saved.files) == ["x0", "x1", "y"]
    assert np.array_equal(saved["x1"], SEQUENCES) and np.array_equal(saved["y"], LABELS)
    again = _script(*_pair_arguments(), "--inputs", str(tmp_path / "saved" / "batch.npz"),
                    "--json", str(tmp_path / "again.json"), "--quiet")
    assert again.returncode == 0, again.stderr
    runs = [{r["id"]: r["losses"] for r in json.loads(path.read_text())["runs"]}
            for path in (tmp_path / "first.json", tmp_path / "again.json")]
    assert runs[0] == runs[1]


def test_seeded_inputs_on_the_command_line_with_the_referee_on_both_graphs(tmp_path):
    arguments = [a for a in _pair_arguments() if a != "--no-onnx"]
    result = _script(*arguments, "--input-shape", "3,8,8;6,5", "--batch-size", "3",
                     "--json", str(tmp_path / "report.json"),
                     "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    inputs = report["settings"]["inputs"]
    assert inputs["shape"] == [[3, 3, 8, 8], [3, 6, 5]]
    assert inputs["source"] == "seeded standard normal"
    assert "batch 3 · inputs 3x8x8 and 6x5" in " ".join(result.stdout.split())
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["referee:onnx_eval_pytorch_graph_vs_keras_graph"]["passed"]
    assert checks["referee:onnx_eval_keras_graph_vs_keras"]["passed"]
    losses = {r["id"]: r["losses"] for r in report["runs"]}
    assert report["references"]["onnx:eval"]["inference_before"] == pytest.approx(
        losses["pytorch:eval"]["inference_before"], abs=1e-5)


@pytest.mark.parametrize("arguments, words", [
    (["--input-shape", "3,8,8"], "the Keras model takes 2 inputs and the batch has 1"),
    (["--input-shape", "3,8,8;6,5", "--keras", f"{MODELS}:keras_image_and_sequence_net_swapped"],
     "inputs of shape (2, 3, 8, 8) (PyTorch layout, Keras (2, 8, 8, 3)) do not fit the Keras "
     "model's input (None, 6, 5) (input 0, Keras's 'sequence': give the inputs in forward()'s "
     "order, which must be the Keras model's)"),
    (["--input-shape", "3,8,8;6,5;4"], "the Keras model takes 2 inputs and the batch has 3"),
    (["--input-shape", "3,8,8;6,5", "--keras",
      f"{MODELS}:keras_image_and_sequence_net_on_a_dict"],
     "the Keras model takes a dict of inputs (sequence, image); the comparison gives its "
     "inputs in forward()'s order: build the Keras model on a list of inputs in that order"),
    (["--input-shape", "3,8,8;5,6"], "the models cannot run on inputs of shape "
                                     "[[2, 3, 8, 8], [2, 5, 6]]"),
])
def test_inputs_that_do_not_fit_are_refused_in_one_line(tmp_path, arguments, words):
    report = tmp_path / "report.json"
    result = _script(*_pair_arguments(), *arguments, "--batch-size", "2", "--json",
                     str(report))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and words in result.stderr, result.stderr
    assert not report.exists()


def test_several_inputs_of_different_batches_are_refused_in_one_line(tmp_path):
    batch = tmp_path / "batch.npz"
    np.savez(batch, x0=IMAGES, x1=SEQUENCES[:2])
    result = _script(*_pair_arguments(), "--inputs", str(batch))
    assert result.returncode == 2
    assert result.stderr.strip().endswith("hold different batches: 4, 2 rows"), result.stderr


def test_an_onnx_file_with_another_number_of_inputs_is_refused_in_one_line(tmp_path):
    from comparator.errors import UsageError

    path = str(tmp_path / "one_input.onnx")
    torch.onnx.export(torch.nn.Linear(models.FEATURES, 3), (torch.zeros(4, models.FEATURES),),
                      path, dynamo=False)
    torch_model, keras_model = _pair()
    with pytest.raises(UsageError) as caught:
        comparator.compare_pair(torch_model, keras_model, (IMAGES, SEQUENCES), LABELS,
                                recipes=("pytorch:eval",), onnx=path)
    assert str(caught.value) == "--onnx: the graph takes 1 inputs and the batch has 2"
