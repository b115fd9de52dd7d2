"""An activation set otherwise in each framework (activation_setting): Keras's LeakyReLU
default slope, keras.ops.gelu's tanh form and ELU's alpha are named with both settings
and the measured difference; a correct port gets no such cause, and where a setting cannot
be read, PyTorch's activation is a functional call, or the rerun does not confirm it, the
cause stays between_layers. Models and layers are named: Keras's auto-names depend on the
models made before in the process."""

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
    return np.random.default_rng(3).normal(size=(2, 3, 8, 8)).astype(np.float32)


def _torch_pair(fw, activation, first_scale=1.0):
    """conv, the activation (a module, or a function run in forward()), conv."""
    torch, nn, _, _ = fw

    class ConvActConv(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv0 = nn.Conv2d(3, 4, 3, padding=1)
            self.act = activation if isinstance(activation, nn.Module) else None
            self.conv1 = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            x = self.conv0(x)
            x = self.act(x) if self.act is not None else activation(x)
            return self.conv1(x)

    torch.manual_seed(0)
    model = ConvActConv()
    with torch.no_grad():
        model.conv0.weight.mul_(first_scale)
    return model.eval()


def _keras_pair(fw, *activations):
    """conv0, the activations (Keras layers or functions of a tensor), conv1."""
    _, _, keras, _ = fw
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv0")(inputs)
    for activation in activations:
        x = activation(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(x)
    return keras.Model(inputs, x, name="conv_act_conv")


def _validated(fw, torch_model, keras_model):
    _, _, _, layerwise = fw
    return layerwise.validate_port(torch_model, keras_model, _x(), port="pytorch-to-keras",
                                   **QUICK)


def _codes(finding):
    return [cause.code for cause in finding.causes]


def test_keras_leaky_relu_default_slope_is_named_with_both_slopes(fw):
    _, nn, keras, _ = fw
    result = _validated(fw, _torch_pair(fw, nn.LeakyReLU()),
                        _keras_pair(fw, keras.layers.LeakyReLU(name="leaky")))
    found = result.first_divergence
    assert (found.torch_module, found.keras_layer) == ("conv1", "conv1")
    assert _codes(found) == ["activation_setting"]
    text = found.causes[0].text
    assert "PyTorch act (LeakyReLU) negative_slope=0.01 (PyTorch's default)" in text
    assert "Keras leaky (LeakyReLU) negative_slope=0.3 (Keras's default)" in text
    assert "given negative_slope=0.3 it gives Keras's (max abs 0)" in text
    assert "negative_slope=0.01" in found.causes[0].detail
    # The forward pass takes the isolated pass's cause.
    forward = result.pass_result("inference", isolated=False)
    assert _codes(forward.first_divergence) == ["activation_setting"]


def test_keras_ops_gelu_tanh_form_is_named(fw):
    _, nn, keras, _ = fw
    # Wider activations: the tanh form is up to about 5e-4 from the exact one near |x| = 2.
    result = _validated(fw, _torch_pair(fw, nn.GELU(), first_scale=4.0),
                        _keras_pair(fw, keras.layers.Activation(keras.ops.gelu, name="gelu")))
    found = result.first_divergence
    assert found is not None and _codes(found) == ["activation_setting"], result.render()
    text = found.causes[0].text
    assert "PyTorch act (GELU) approximate='none' (PyTorch's default)" in text
    assert "Keras gelu (Activation(keras.ops.gelu)) approximate=True (Keras's default)" in text
    assert "given approximate='tanh' it gives Keras's" in text
    assert "approximate=False" in found.causes[0].detail


def test_elu_alpha_set_on_the_pytorch_side_is_named(fw):
    _, nn, keras, _ = fw
    result = _validated(fw, _torch_pair(fw, nn.ELU(alpha=0.5)),
                        _keras_pair(fw, keras.layers.ELU(name="elu")))
    found = result.first_divergence
    assert _codes(found) == ["activation_setting"]
    assert "PyTorch act (ELU) alpha=0.5, Keras elu (ELU) alpha=1.0 (Keras's default)" \
        in found.causes[0].text


def test_a_correct_port_has_no_divergence(fw):
    _, nn, keras, _ = fw
    for torch_activation, keras_activation in [
            (nn.LeakyReLU(), keras.layers.LeakyReLU(negative_slope=0.01, name="leaky")),
            (nn.GELU(), keras.layers.Activation("gelu", name="gelu"))]:
        result = _validated(fw, _torch_pair(fw, torch_activation, first_scale=4.0),
                            _keras_pair(fw, keras_activation))
        assert result.passed and result.first_divergence is None, result.render()


@pytest.mark.parametrize("case", ["lambda_in_keras", "functional_in_torch",
                                  "not_confirmed"])
def test_unread_or_unconfirmed_settings_stay_between_layers(fw, case):
    torch, nn, keras, _ = fw
    if case == "lambda_in_keras":  # Keras's setting cannot be read off a lambda
        pair = (_torch_pair(fw, nn.GELU(), first_scale=4.0), _keras_pair(
            fw, keras.layers.Activation(lambda t: keras.ops.gelu(t, approximate=True),
                                        name="gelu")))
    elif case == "functional_in_torch":  # no module, no hook: PyTorch's slope is not seen
        pair = (_torch_pair(fw, torch.nn.functional.leaky_relu),
                _keras_pair(fw, keras.layers.LeakyReLU(name="leaky")))
    else:  # the slopes differ, but Keras's ReLU before its LeakyReLU hides it
        pair = (_torch_pair(fw, nn.LeakyReLU()),
                _keras_pair(fw, keras.layers.ReLU(name="relu"),
                            keras.layers.LeakyReLU(name="leaky")))
    found = _validated(fw, *pair).first_divergence
    assert found is not None and found.keras_layer == "conv1"
    assert _codes(found) == ["between_layers"]
