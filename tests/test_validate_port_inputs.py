"""A model that takes several inputs (forward(image, features) against a Keras model with
two inputs) is validated layer by layer on a tuple of arrays, or on an .npz file's x0, x1:
each input moves to Keras's layout on its own, and a slip in one branch is named there.
Before, the validator refused: 'the validator takes one input and one output, it has 2 and
1'. A Keras model given another number of inputs, or its inputs in another order, is
refused in one line, and so is a Keras model built on a dict of inputs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

import comparator  # noqa: E402
from comparator.errors import UsageError  # noqa: E402
from tests import user_layer_models as models  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INPUTS = models.two_inputs()


def _validated(keras_model, inputs=INPUTS, **options):
    torch_model = models.seeded(models.TwoInputNet()).eval()
    comparator.port_weights(torch_model, keras_model)
    return comparator.validate_port(torch_model, keras_model, inputs, **options)


def test_a_two_input_port_agrees_layer_by_layer_with_gradients_and_a_training_step():
    result = _validated(models.keras_two_input_net())
    assert result.passed, result.render()
    assert result.pairs == 4 and len(result.gradients) == 8
    assert result.input_shapes == ((4, 3, models.SIZE, models.SIZE), (4, models.FEATURES))
    assert f"inputs (4, 3, {models.SIZE}, {models.SIZE}), (4, {models.FEATURES})" in \
        result.render()


def test_a_slip_in_one_branch_is_named_there():
    found = _validated(models.keras_two_input_net(epsilon=1e-3),
                       list(INPUTS)).first_divergence
    assert (found.torch_module, found.keras_layer) == ("bn", "bn")
    assert "BatchNorm epsilon: PyTorch 1e-05, Keras 0.001" in found.text


def _on_a_dict(model):
    """The same graph built on {"image": ..., "features": ...}, which Keras lists in its own
    order (features, image), as compare.py refuses it too."""
    import keras

    image, features = model.inputs
    return keras.Model({"image": image, "features": features}, model.outputs[0])


@pytest.mark.parametrize("inputs, keras_model, words", [
    (INPUTS[:1], models.keras_two_input_net, "the Keras model takes 2 inputs and 1 were given"),
    (INPUTS, lambda: models.keras_two_input_net(swapped=True),
     r"inputs of shape \(4, 3, 8, 8\) .* do not fit the Keras model's input \(None, 16\)"),
    ((INPUTS[0], INPUTS[1][:2]), models.keras_two_input_net,
     "the inputs hold different batches: 4, 2 rows"),
    (INPUTS, lambda: _on_a_dict(models.keras_two_input_net()),
     r"the Keras model takes a dict of inputs \(image, features\); the comparison gives its "
     r"inputs in forward\(\)'s order: build the Keras model on a list of inputs in that "
     "order"),
])
def test_inputs_that_do_not_fit_are_refused_in_one_line(inputs, keras_model, words):
    with pytest.raises(UsageError, match=words):
        comparator.validate_port(models.seeded(models.TwoInputNet()).eval(), keras_model(),
                                 inputs)


def _script(name: str, *args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", name), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, "PYTHONPATH": ROOT})


@pytest.mark.parametrize("given", ["npz", "shapes"])
def test_the_command_line_takes_x0_and_x1_or_several_shapes(tmp_path, given):
    batch, report = tmp_path / "batch.npz", tmp_path / "report.json"
    np.savez(batch, x0=INPUTS[0], x1=INPUTS[1])
    models_file = os.path.join("tests", "user_layer_models.py")
    inputs = (("--inputs", str(batch)) if given == "npz" else
              ("--input-shape", f"3,{models.SIZE},{models.SIZE};{models.FEATURES}",
               "--batch-size", "4"))
    done = _script("validate_port.py", "--pytorch", f"{models_file}:TwoInputNet", "--keras",
                   f"{models_file}:keras_two_input_net", "--port-weights", "pytorch-to-keras",
                   *inputs, "--modes", "inference", "--no-gradients", "--no-train-step",
                   "--json", str(report))
    assert done.returncode == 0, done.stderr
    assert json.loads(report.read_text())["input_shapes"] == [list(INPUTS[0].shape),
                                                              list(INPUTS[1].shape)]
