"""A pooling PyTorch rounds up (ceil_mode=True, as GoogLeNet's and SqueezeNet's do) ported as
Keras's 'valid' pooling, which rounds down: named at the next layer with both output sizes
and a rerun with ceil_mode=False that gives Keras's output (before: 'output shapes differ'
alone). The fix it gives for a max pooling after a ReLU passes."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from tests.user_layer_models import ported_and_validated  # noqa: E402

layers = keras.layers
X = np.random.default_rng(6).standard_normal((2, 3, 8, 8)).astype(np.float32)


class RoundedUpNet(nn.Module):
    """conv -> ReLU -> pooling (3, stride 2, ceil_mode) -> 1x1 conv -> mean -> Linear."""

    def __init__(self, average: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = (nn.AvgPool2d if average else nn.MaxPool2d)(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(4, 4, 1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.conv2(self.pool(torch.relu(self.conv(x)))).mean((2, 3)))


def keras_rounded_net(padding: str, average: bool = False):
    """padding: 'valid', 'same', or 'end' (ZeroPadding2D(((0, 1), (0, 1))) then 'valid')."""
    inputs = keras.Input((8, 8, 3))
    x = layers.ReLU()(layers.Conv2D(4, 3, padding="same", name="conv")(inputs))
    if padding == "end":
        x = layers.ZeroPadding2D(((0, 1), (0, 1)))(x)
    pooling = layers.AveragePooling2D if average else layers.MaxPooling2D
    x = pooling(3, 2, padding="same" if padding == "same" else "valid", name="pool")(x)
    x = layers.Conv2D(4, 1, name="conv2")(x)
    x = layers.Dense(3, name="fc")(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, x, name=f"rounded_{padding}")


def _validated(torch_model, keras_model):
    return ported_and_validated(torch_model, keras_model, X)


@pytest.mark.parametrize("average, fix", [
    (False, "pad with ZeroPadding2D(((0, 1), (0, 1)))"),
    (True, "no Keras pooling layer pads the end of an axis and averages a window there"),
])
def test_a_pooling_rounded_up_is_named_at_the_next_layer(average, fix):
    found = _validated(RoundedUpNet(average), keras_rounded_net("valid", average)
                       ).first_divergence
    assert (found.torch_module, found.keras_layer) == ("conv2", "conv2")
    assert [cause.code for cause in found.causes] == ["pool_ceil_mode"]
    text = found.causes[0].text
    assert "rounds its output size up, 4 x 4" in text and "down, 3 x 3" in text
    assert "given ceil_mode=False gives Keras's output (max abs 0)" in text
    assert fix in found.causes[0].detail


@pytest.mark.parametrize("padding", ["end", "same"])
def test_a_max_pooling_padded_at_the_end_passes(padding):
    """On 8 x 8, 'same' pads (0, 1) as well, repeating the edge, which a maximum takes as
    PyTorch's rounding does."""
    result = _validated(RoundedUpNet(), keras_rounded_net(padding))
    assert result.passed, result.render()
