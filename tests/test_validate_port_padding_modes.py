"""PyTorch padding other than zeros before a conv (a ReflectionPad2d module, the conv's
padding_mode 'reflect' or 'replicate'), ported with Keras's zero padding, is named with the
mode and a rerun with zeros that gives Keras's output (before: 'cause unknown', or a padding
cause that counted no padding module: 'PyTorch pads (top 0, ...), Keras (top 1, ...)'). A
padding module's amounts count towards the conv's padding, a port that pads as PyTorch does
(keras.ops.pad with mode='reflect') passes, and zeros padded by a module pass too."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from tests.user_layer_models import ported_and_validated  # noqa: E402

layers = keras.layers
X = np.random.default_rng(5).standard_normal((2, 3, 8, 8)).astype(np.float32)


class PaddedNet(nn.Module):
    """pad -> conv (3 x 3) -> ReLU -> mean -> Linear; the padding a module of its own
    (`pad`) or the conv's (`padding_mode`)."""

    def __init__(self, pad: nn.Module | None = None, padding_mode: str = "zeros",
                 stride: int = 1, dilation: int = 1):
        super().__init__()
        self.pad = pad or nn.Identity()
        self.conv = nn.Conv2d(3, 4, 3, stride=stride, padding=0 if pad else dilation,
                              padding_mode=padding_mode, dilation=dilation)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(self.pad(x))).mean((2, 3)))


class ReflectPadding(layers.Layer):
    """Keras's reflect padding of one pixel per side (keras.ops.pad, mode 'reflect')."""

    def call(self, x):
        return keras.ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")


def keras_padded_net(padding: str, stride: int = 1, dilation: int = 1):
    """padding: 'same' (the conv's), 'zeros' (ZeroPadding2D then 'valid') or 'reflect' (a
    layer of its own, then 'valid')."""
    inputs = keras.Input((8, 8, 3))
    x = {"same": inputs, "zeros": layers.ZeroPadding2D(1, name="pad")(inputs),
         "reflect": ReflectPadding(name="pad")(inputs)}[padding]
    x = layers.Conv2D(4, 3, strides=stride, padding="same" if padding == "same" else "valid",
                      dilation_rate=dilation, name="conv")(x)
    x = layers.Dense(3, name="fc")(layers.GlobalAveragePooling2D()(layers.ReLU()(x)))
    return keras.Model(inputs, x, name=f"padded_{padding}")


def _validated(torch_model, keras_model):
    return ported_and_validated(torch_model, keras_model, X)


@pytest.mark.parametrize("torch_model, keras_padding, mode", [
    (lambda: PaddedNet(padding_mode="reflect"), "same", "reflect (the conv's padding_mode)"),
    (lambda: PaddedNet(padding_mode="replicate"), "same", "replicate (the conv's padding_mode)"),
    (lambda: PaddedNet(nn.ReflectionPad2d(1)), "zeros", "reflect (ReflectionPad2d)"),
    (lambda: PaddedNet(nn.ReflectionPad2d(1)), "same", "reflect (ReflectionPad2d)"),
])
def test_padding_other_than_zeros_is_named_with_its_mode(torch_model, keras_padding, mode):
    found = _validated(torch_model(), keras_padded_net(keras_padding)).first_divergence
    assert (found.torch_module, found.keras_layer) == ("conv", "conv")
    assert [cause.code for cause in found.causes] == ["padding_mode"]
    text = found.causes[0].text
    assert f"PyTorch pads the input of conv with {mode}, Keras that of conv with zeros" in text
    assert "given zeros of the same amounts it gives Keras's (max abs 0)" in text
    assert "keras.ops.pad(x, pads, mode='reflect')" in found.causes[0].detail


@pytest.mark.parametrize("torch_model, keras_padding", [
    (lambda: PaddedNet(nn.ReflectionPad2d(1)), "reflect"),
    (lambda: PaddedNet(padding_mode="reflect"), "reflect"),
    (lambda: PaddedNet(nn.ZeroPad2d(1)), "same"),
    (lambda: PaddedNet(nn.ConstantPad2d(1, 0.0)), "zeros"),
])
def test_ports_that_pad_as_pytorch_does_pass(torch_model, keras_padding):
    result = _validated(torch_model(), keras_padded_net(keras_padding))
    assert result.passed, result.render()


def test_a_padding_module_counts_towards_the_convs_padding():
    """ZeroPad2d(1) then a stride-2 conv pads (1, 1) on each axis; Keras's 'same' pads
    (0, 1) on an even size. The padding cause counts the module's pixels."""
    found = _validated(PaddedNet(nn.ZeroPad2d(1), stride=2),
                       keras_padded_net("same", stride=2)).first_divergence
    assert [cause.code for cause in found.causes] == ["padding"]
    assert ("PyTorch pads (top 1, bottom 1, left 1, right 1), Keras (top 0, bottom 1, left 0, "
            "right 1)") in found.causes[0].text


def test_a_dilation_ported_without_it_is_named_and_not_put_down_to_padding():
    """A conv dilated 2 (padding 2) ported without dilation_rate was named 'padding: PyTorch
    pads (top 2, ...), Keras (top 1, ...)' with a stride-2 explanation; with dilation_rate=2
    and 'same' the port passes."""
    found = _validated(PaddedNet(dilation=2), keras_padded_net("same")).first_divergence
    assert [cause.code for cause in found.causes] == ["dilation"]
    assert "PyTorch conv dilates its kernel (2, 2), Keras conv (1, 1)" in found.causes[0].text
    assert "dilation_rate=(2, 2)" in found.causes[0].detail
    assert _validated(PaddedNet(dilation=2), keras_padded_net("same", dilation=2)).passed


def test_padding_that_differs_otherwise_than_same_gives_pytorchs_padding_as_the_fix():
    """A conv that pads 1 ported with ZeroPadding2D(2): no stride-2 'same' story."""
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, name="conv")(layers.ZeroPadding2D(2)(inputs))
    x = layers.Dense(3, name="fc")(layers.GlobalAveragePooling2D()(layers.ReLU()(x)))
    found = _validated(PaddedNet(), keras.Model(inputs, x)).first_divergence
    assert [cause.code for cause in found.causes] == ["padding"]
    assert found.causes[0].detail == "pad explicitly with ZeroPadding2D(1) and use 'valid'"
