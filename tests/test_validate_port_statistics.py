"""The port validator's BatchNorm step on a layer whose input has a zero batch mean: a
BatchNorm after a bias-free 1x1 convolution of a training-mode BatchNorm's output (every
block of torchvision's MobileNetV3 starts so). Its running mean's update is float32
rounding of a mean that is zero in exact arithmetic, and comparing it relative to itself
failed correct ports (torchvision's MobileNetV3 at 32 px: 8 of 34 layers, mean rel up to
0.7)."""

import keras
import numpy as np
import pytest
import torch
from torch import nn

import comparator

WIDTH = 8


class ZeroMeanInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, WIDTH, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(WIDTH)
        self.expand = nn.Conv2d(WIDTH, 4 * WIDTH, 1, bias=False)
        self.expand_bn = nn.BatchNorm2d(4 * WIDTH)

    def forward(self, x):
        return self.expand_bn(self.expand(self.bn(self.conv(x)))).mean(dim=(2, 3))


def keras_zero_mean_input(momentum=0.9):
    layers = keras.layers
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(WIDTH, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="bn")(x)
    x = layers.Conv2D(4 * WIDTH, 1, use_bias=False, name="expand")(x)
    x = layers.BatchNormalization(epsilon=1e-5, momentum=momentum, name="expand_bn")(x)
    return keras.Model(inputs, layers.GlobalAveragePooling2D()(x))


def validated(momentum=0.9, seed=0):
    torch.manual_seed(seed)
    x = np.random.default_rng(seed).standard_normal((2, 3, 8, 8)).astype(np.float32)
    return comparator.validate_port(ZeroMeanInput(), keras_zero_mean_input(momentum), x,
                                    port="pytorch-to-keras")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_running_mean_that_is_rounding_noise_agrees(seed):
    result = validated(seed=seed)
    (after_zero_mean,) = [s for s in result.statistics if s.torch_module == "expand_bn"]
    assert not after_zero_mean.diverges
    assert 0 < after_zero_mean.mean_rounding < 1e-6
    assert result.passed, result.render()


def test_a_momentum_slip_on_that_layer_is_still_named():
    """The mean is noise there, but the variance is not."""
    result = validated(momentum=0.99)
    (slipped,) = result.statistics_divergences
    assert slipped.torch_module == "expand_bn" and slipped.cause == "momentum"
    assert result.first_divergence.keras_layer == "expand_bn"
