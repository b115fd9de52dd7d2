"""The operations between two paired layers that agree on PyTorch's input: an operation
PyTorch's forward computes that the Keras port leaves out is named (a module or a function
call), with the rerun without it where that gives Keras's value; a Keras activation of
another function than PyTorch's at the same position (sigmoid, or tf.keras 2.x's
0.2 x + 0.5, where PyTorch's Hardsigmoid computes relu6(x + 3) / 6) is named with both
functions and measured (adapters/port_validation/between_operations.py). Tiny conv pairs,
8x8 inputs."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

QUICK = dict(modes=("inference",), gradients=False, train_step=False)


@pytest.fixture(scope="module")
def fw():
    import torch
    from torch import nn

    import adapters.port_validation.validator as layerwise
    from adapters.keras.backend import keras

    return torch, nn, keras, layerwise


def _x():
    return np.random.default_rng(5).normal(size=(2, 3, 8, 8)).astype(np.float32) * 3


def _first(fw, torch_model, keras_model):
    _, _, _, layerwise = fw
    torch_model.eval()
    result = layerwise.validate_port(torch_model, keras_model, _x(), port="pytorch-to-keras",
                                     **QUICK)
    return result.first_divergence


def _torch_pair(fw, between, forward=None):
    """conv1, the operations `between` (a callable of forward's value), conv2."""
    torch, nn, _, _ = fw

    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
            self.conv2 = nn.Conv2d(4, 2, 3, padding=1)
            for name, module in between.items():
                self.add_module(name, module)

        def forward(self, x):
            x = self.conv1(x)
            x = forward(self, x) if forward else self.act(x)
            return self.conv2(x)
    torch.manual_seed(0)
    return Pair()


def _keras_pair(fw, *between):
    _, _, keras, _ = fw
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inp)
    for op in between:
        x = op(x)
    out = keras.layers.Conv2D(2, 3, padding="same", name="conv2")(x)
    return keras.Model(inp, out)


# ----- an operation the Keras port leaves out ------------------------------------------


def test_a_module_keras_leaves_out_is_named_and_measured(fw):
    _, nn, _, _ = fw
    found = _first(fw, _torch_pair(fw, {"act": nn.ReLU()}), _keras_pair(fw))
    assert (found.torch_module, found.keras_layer) == ("conv2", "conv2")
    assert [c.code for c in found.causes] == ["between_layers"]
    text = found.causes[0].text
    assert ("PyTorch's forward computes act (ReLU) between conv1 and conv2, where Keras has "
            "no operation") in text
    assert ("measured to be the missing piece: with it giving back its input, PyTorch's "
            "forward gives Keras's value at conv2 (max abs") in text
    assert "computes something there" not in text
    assert "leaves out what PyTorch computes before it" in found.causes[0].detail


def test_a_function_call_keras_leaves_out_is_named(fw):
    """No hook can make a function call give back its input: named, not rerun."""
    torch, _, _, _ = fw
    found = _first(fw, _torch_pair(fw, {}, lambda self, x: torch.nn.functional.relu(x)),
                   _keras_pair(fw))
    text = found.causes[0].text
    assert ("computes torch.nn.functional.relu in forward(), call 1 (ReLU) between conv1 "
            "and conv2, where Keras has no operation") in text
    assert "missing piece" not in text


def test_the_rerun_claims_nothing_where_more_than_the_module_is_left_out(fw):
    """PyTorch doubles after its ReLU (no module, no recorded call): without the ReLU
    PyTorch's conv2 still does not give Keras's value, so only the ReLU is named."""
    _, nn, _, _ = fw
    found = _first(fw, _torch_pair(fw, {"act": nn.ReLU()}, lambda self, x: self.act(x) * 2),
                   _keras_pair(fw))
    text = found.causes[0].text
    assert "computes act (ReLU) between conv1 and conv2, where Keras has no operation" in text
    assert "missing piece" not in text


# ----- an activation of another function -----------------------------------------------


def test_sigmoid_where_pytorch_uses_hardsigmoid_is_named_and_measured(fw):
    _, nn, keras, _ = fw
    found = _first(fw, _torch_pair(fw, {"act": nn.Hardsigmoid()}),
                   _keras_pair(fw, keras.layers.Activation("sigmoid", name="act")))
    assert (found.torch_module, found.keras_layer) == ("conv2", "conv2")
    assert [c.code for c in found.causes] == ["activation_function"]
    text = found.causes[0].text
    assert ("PyTorch act (Hardsigmoid) computes hard_sigmoid (relu6(x + 3) / 6), Keras act "
            "(Activation(keras.activations.sigmoid)) computes sigmoid") in text
    assert "PyTorch's Hardsigmoid gives PyTorch's value there (max abs 0)" in text
    detail = found.causes[0].detail
    assert "use keras.activations.hard_sigmoid (Keras 3." in detail
    assert "gives PyTorch's value on that input (max abs 0)" in detail


def test_tf_keras_2_hard_sigmoid_is_named_as_what_it_computes(fw):
    _, nn, keras, _ = fw

    def old_hard_sigmoid(t):
        return keras.ops.clip(0.2 * t + 0.5, 0.0, 1.0)
    found = _first(fw, _torch_pair(fw, {"act": nn.Hardsigmoid()}),
                   _keras_pair(fw, keras.layers.Activation(old_hard_sigmoid, name="act")))
    assert [c.code for c in found.causes] == ["activation_function"]
    text = found.causes[0].text
    assert "computes old_hard_sigmoid, a function of your own" in text
    assert "it computes clip(0.2 x + 0.5, 0, 1), tf.keras 2.x's hard_sigmoid (max abs 0)" in text


def test_keras_hard_sigmoid_is_pytorchs_hardsigmoid(fw):
    """Measured on Keras 3.15.1: keras.activations.hard_sigmoid and keras.ops.hard_sigmoid
    compute relu6(x + 3) / 6, PyTorch's Hardsigmoid."""
    _, nn, keras, _ = fw
    for function in ("hard_sigmoid", keras.ops.hard_sigmoid):
        found = _first(fw, _torch_pair(fw, {"act": nn.Hardsigmoid()}),
                       _keras_pair(fw, keras.layers.Activation(function, name="act")))
        assert found is None


def test_only_the_activation_after_the_previous_paired_layer_faces_pytorchs(fw):
    """A squeeze-excitation: Keras's multiply reaches back to the ReLU before the pooling,
    PyTorch's running order only to the Hardsigmoid after fc."""
    torch, nn, keras, _ = fw

    class SE(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
            self.relu = nn.ReLU()
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Conv2d(8, 8, 1)
            self.gate = nn.Hardsigmoid()
            self.conv2 = nn.Conv2d(8, 4, 1)

        def forward(self, x):
            x = self.relu(self.conv1(x))
            return self.conv2(x * self.gate(self.fc(self.pool(x))))
    torch.manual_seed(0)
    inp = keras.Input((8, 8, 3))
    x = keras.layers.ReLU(name="relu")(keras.layers.Conv2D(8, 3, padding="same",
                                                           name="conv1")(inp))
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, name="pool")(x)
    s = keras.layers.Activation("sigmoid", name="gate")(keras.layers.Conv2D(8, 1, name="fc")(s))
    out = keras.layers.Conv2D(4, 1, name="conv2")(keras.layers.Multiply(name="mul")([x, s]))
    found = _first(fw, SE(), keras.Model(inp, out))
    assert (found.torch_module, [c.code for c in found.causes]) == (
        "conv2", ["activation_function"])
    assert "PyTorch gate (Hardsigmoid) computes hard_sigmoid" in found.causes[0].text
    assert "Keras gate (Activation(keras.activations.sigmoid)) computes sigmoid" in \
        found.causes[0].text
