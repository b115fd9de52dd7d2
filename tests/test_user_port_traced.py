"""validate_port on Keras models whose layers hide layers (tests/user_port_models.py: keras_net
written as a keras.Model subclass, with its residual block as a layer class of its own, and
as a base model nested in a functional one): traced through their call()s on a symbolic
input, checked against the model itself, then validated as a flat functional port is;
refused in one line where a call() does not trace or traces something else than it
computes. compare.py pairs and ports the layers inside them the same way."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

from comparator.errors import UsageError  # noqa: E402
from tests import user_port_models as pair  # noqa: E402


@pytest.fixture(scope="module")
def validator():
    import adapters.port_validation.validator as validator

    return validator


def _inputs(n=2):
    return np.random.default_rng(1).normal(size=(n, 3, pair.SIZE, pair.SIZE)).astype(np.float32)


FAST = dict(modes=("inference",), gradients=False, reference64=False, train_step=False)


def _state(model) -> list[np.ndarray]:
    return [np.array(v.numpy()) for v in model.variables]


def test_a_subclassed_port_is_validated_as_its_functional_twin(validator):
    model = pair.ported_keras_subclassed_net()
    before = _state(model)
    result = validator.validate_port(pair.torch_net(), model, _inputs())
    twin = validator.validate_port(pair.torch_net(), pair.ported_keras_net(), _inputs())
    assert result.passed and twin.passed, result.render()
    assert [c.keras_layer for c in result.passes[0].layers] == [
        c.keras_layer for c in twin.passes[0].layers] == [
        "stem", "bn", "conv1", "bn1", "conv2", "bn2", "head"]
    assert len(result.passes) == 4 and len(result.gradients) == len(twin.gradients) > 0
    assert [s.keras_layer for s in result.statistics] == ["bn", "bn1", "bn2"]
    assert [(d.torch_module, d.keras_layer) for d in result.dropout] == [("drop", "drop")]
    assert ("Keras model 'subclassed_residual_net' (ResidualNet, subclassed) validated as the "
            "graph its call() traces on a symbolic input, over the model's own weights, which "
            "gave the model's outputs in inference mode and training mode (max abs 0)"
            ) in result.notes
    # Its weights, moving statistics and Dropout's seed are where they were.
    assert all(np.array_equal(a, b) for a, b in zip(before, _state(model)))


def test_a_planted_momentum_in_a_subclassed_port_is_named_at_its_layer(validator):
    model = pair.ported_keras_subclassed_net(momentum=0.99, wrong_bn="bn1")
    found = validator.validate_port(pair.torch_net(), model, _inputs()).first_divergence
    twin = validator.validate_port(pair.torch_net(), pair.ported_with_keras_momentum(),
                                   _inputs()).first_divergence
    assert (found.torch_module, found.keras_layer, found.seen_in) == (
        "bn1", "bn1", "training step, running statistics")
    assert found.text == twin.text and "Keras bn1 0.01" in found.text


def test_the_validator_ports_weights_into_a_subclassed_model(validator):
    model = pair.keras_subclassed_net()
    result = validator.validate_port(pair.torch_net(), model, _inputs(),
                                     port="pytorch-to-keras", modes=("inference",),
                                     gradients=False)
    assert result.passed, result.render()
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(),
                                                    pair.ported_keras_net().get_weights()))


def test_a_branch_on_training_is_refused_where_the_validation_trains(validator):
    model = pair.ported_keras_subclassed_net(training_branch=True)
    with pytest.raises(UsageError) as err:
        validator.validate_port(pair.torch_net(), model, _inputs())
    message = str(err.value)
    assert message.startswith("cannot trace Keras model 'subclassed_residual_net' "
                              "(ResidualNet, subclassed): the graph its call() traces and the "
                              "model give outputs apart by max abs ")
    assert "in training mode" in message and "\n" not in message
    # Inference alone never takes the branch: validated, and the note says in which mode.
    result = validator.validate_port(pair.torch_net(), model, _inputs(), modes=("inference",),
                                     gradients=False, train_step=False)
    assert result.passed
    assert any(note.endswith("gave the model's outputs in inference mode (max abs 0)")
               for note in result.notes)


def test_a_call_that_needs_values_is_refused_in_one_line(validator):
    import keras

    class Thresholded(keras.Model):
        def __init__(self):
            super().__init__(name="thresholded")
            self.head = keras.layers.Dense(4, name="head")

        def call(self, x):
            # A Python decision on the batch's values: no symbolic input has them.
            return self.head(x) * float(np.mean(keras.ops.convert_to_numpy(x)) > 0)

    torch_model = pair.torch_net()
    with pytest.raises(UsageError) as err:
        validator.validate_port(torch_model.head, Thresholded(),
                                np.ones((2, pair.CHANNELS), np.float32))
    message = str(err.value)
    assert message.startswith("cannot trace Keras model 'thresholded' (Thresholded, "
                              "subclassed): its call() does not run on a symbolic Keras input")
    assert "rebuild it with the functional API" in message and "\n" not in message


def test_the_script_validates_a_subclassed_model_given_as_a_spec():
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, os.path.join(root, "scripts", "validate_port.py"),
                           "--pytorch", "tests/user_port_models.py:torch_net",
                           "--keras", "tests/user_port_models.py:ported_keras_subclassed_net",
                           "--input-shape", f"3,{pair.SIZE},{pair.SIZE}", "--no-float64"],
                          capture_output=True, text=True, cwd=root, timeout=300)
    assert done.returncode == 0, done.stderr
    assert ("note: Keras model 'subclassed_residual_net' (ResidualNet, subclassed) validated as "
            "the graph its call() traces") in done.stdout
    assert done.stdout.strip().endswith("every layer agrees: the port computes the same function")


def _port_twin(validator, keras_model):
    """keras_model holding the correct port's weights, ported by the validator (the models
    here have no graph port_weights could walk)."""
    validator.validate_port(pair.torch_net(), keras_model, _inputs(), port="pytorch-to-keras",
                            modes=("inference",), gradients=False, train_step=False)
    return keras_model


def test_a_block_class_of_the_users_own_is_validated_layer_by_layer(validator):
    """Was: "no Keras layer fits PyTorch conv1 ...; the next unused Keras layer is block
    (ResidualBlock, weights [...])": the block was one layer holding four."""
    model = _port_twin(validator, pair.keras_block_net())
    result = validator.validate_port(pair.torch_net(), model, _inputs())
    assert result.passed, result.render()
    assert [c.keras_layer for c in result.passes[0].layers] == [
        "stem", "bn", "conv1", "bn1", "conv2", "bn2", "head"]
    assert ("Keras model 'block_net' (through the layers in block (ResidualBlock)) validated "
            "as the graph") in result.notes[-1]
    conv2 = model.get_layer("block").conv2
    conv2.kernel.assign(np.swapaxes(conv2.kernel.numpy(), 0, 1))
    found = validator.validate_port(pair.torch_net(), model, _inputs(),
                                    **FAST).first_divergence
    assert (found.torch_module, found.keras_layer, found.causes[0].code) == (
        "conv2", "conv2", "kernel_layout")


def test_a_nested_base_model_is_validated_through_it(validator):
    """Was: "cannot trace Keras layer 'base': it is a nested model"."""
    model = _port_twin(validator, pair.keras_nested_net())
    result = validator.validate_port(pair.torch_net(), model, _inputs())
    assert result.passed, result.render()
    assert [c.keras_layer for c in result.passes[0].layers][-2:] == ["bn2", "top_head"]
    assert [(d.torch_module, d.keras_layer) for d in result.dropout] == [("drop", "top_drop")]
    assert result.notes[-1].startswith(
        "Keras model 'nested_net' (through the layers in base (Functional)) validated")


def test_a_weight_no_layer_holds_is_named_as_not_compared(validator):
    import keras

    class Scaled(keras.Model):
        def __init__(self):
            super().__init__(name="scaled")
            self.head = keras.layers.Dense(pair.CLASSES, name="head")
            self.scale = self.add_weight(shape=(), initializer="ones", name="scale")

        def call(self, x):
            return self.head(x) * self.scale

    torch_head = pair.torch_net().head
    result = validator.validate_port(torch_head, Scaled(), np.ones((2, pair.CHANNELS),
                                                                   np.float32),
                                     port="pytorch-to-keras", **FAST)
    assert result.passed
    assert result.notes[-1].endswith("(max abs 0); scaled/scale, held by no layer in it, not "
                                     "compared on their own")


def test_a_failed_port_check_on_a_nested_model_is_located_inside_it(validator):
    """Was not located: "the port validator cannot trace this pair: cannot trace Keras layer
    'base': it is a nested model"."""
    import comparator

    model = _port_twin(validator, pair.keras_nested_net())
    conv2 = model.get_layer("base").get_layer("conv2")
    conv2.kernel.assign(np.swapaxes(conv2.kernel.numpy(), 0, 1))
    report = comparator.compare_pair(pair.torch_net(), model, _inputs(4),
                                     recipes=("pytorch:train", "keras:train"))
    found = report.settings["pair"]["first_divergence"]
    assert not report.checks[0].passed
    assert (found["located"], found["torch_module"], found["keras_layer"], found["causes"]) == (
        True, "conv2", "conv2", ["kernel_layout"])


def test_compare_pairs_and_ports_the_layers_inside_a_block_class():
    """Was: "--port-weights needs the weighted layers paired, and they are not": the block
    counted as one Keras layer with weights against four PyTorch modules."""
    import comparator

    report = comparator.compare_pair(pair.torch_net(), pair.keras_block_net(), _inputs(4),
                                     port_weights="pytorch-to-keras",
                                     recipes=("pytorch:train", "keras:train"))
    assert report.settings["pair"]["pairing"] == {"paired_layers": 7}
    assert all(check.passed for check in report.checks), [
        c.name for c in report.checks if not c.passed]


def test_compare_ports_a_subclassed_models_dense_after_a_flatten_as_one():
    """Was: the kernel transposed only, as for a Dense fed by a vector, since a subclassed
    model's layers keep no record of what feeds them: the tool's own port failed its port
    check and was then blamed on the user ("permute the dense kernel's rows when
    porting")."""
    import keras
    import torch
    from torch import nn

    import comparator

    class Flattening(keras.Model):
        def __init__(self):
            super().__init__(name="flattening")
            self.conv = keras.layers.Conv2D(4, 3, padding="same", name="conv")
            self.flat = keras.layers.Flatten()
            self.fc = keras.layers.Dense(5, name="fc")

        def call(self, x):
            return self.fc(self.flat(keras.ops.relu(self.conv(x))))

    torch.manual_seed(0)
    torch_model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                                nn.Linear(4 * pair.SIZE * pair.SIZE, 5))
    report = comparator.compare_pair(torch_model, Flattening(), _inputs(4),
                                     port_weights="pytorch-to-keras",
                                     recipes=("pytorch:train", "keras:train"))
    assert report.checks[0].passed and "first_divergence" not in report.settings["pair"]


def test_port_weights_ports_into_a_nested_functional_model_without_a_batch(validator):
    """comparator.port_weights refused it ("cannot trace Keras layer 'base': it is a nested
    model; ... flatten it"), where validate_port(..., port=...) and compare.py --port-weights
    ported it: a nested functional model's graph is its call, so the trace on the declared
    input is exact."""
    import comparator

    model = pair.keras_nested_net()
    comparator.port_weights(pair.torch_net(), model)
    result = validator.validate_port(pair.torch_net(), model, _inputs(), **FAST)
    assert result.passed, result.render()
