"""A normalisation whose epsilon differs between PyTorch and Keras while every pass finds the
layer within the tolerance on the batch: a ConvNeXt-style LayerNorm ported with 1e-5 for
PyTorch's 1e-6 moved the output by 5.9e-6, and the validator said "every layer agrees: the
port computes the same function". The epsilon is read off both layers, and the verdict says
so; the exit code stays the tolerance's."""

import keras
import numpy as np
import torch
from torch import nn

import comparator

X = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)


class Normed(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.norm, self.out = nn.Linear(8, 8), nn.LayerNorm(8, eps=1e-6), nn.Linear(8, 3)

    def forward(self, x):
        return self.out(self.norm(self.fc(x)))


def keras_normed(epsilon):
    layers = keras.layers
    inputs = keras.Input((8,))
    x = layers.LayerNormalization(epsilon=epsilon, name="norm")(layers.Dense(8, name="fc")(inputs))
    return keras.Model(inputs, layers.Dense(3, name="out")(x))


def validated(epsilon):
    torch.manual_seed(0)
    return comparator.validate_port(Normed(), keras_normed(epsilon), X, port="pytorch-to-keras")


def test_an_epsilon_below_the_tolerance_is_said_in_the_verdict():
    result = validated(1e-5)
    assert result.first_divergence is None  # every layer within the tolerance
    assert result.settings_differ == (
        "LayerNorm epsilon: PyTorch norm 1e-06, Keras norm 1e-05 (epsilon is added to the "
        "variance: it matters most where variances are small)",)
    assert result.passed  # within the tolerance: said, not failed (exit 0)
    assert result.render().splitlines()[-1].startswith(
        "every layer agrees within the tolerance on this batch, but a setting differs, so "
        "the port does not compute the same function: LayerNorm epsilon")


def test_equal_epsilons_pass():
    result = validated(1e-6)
    assert result.passed and result.settings_differ == ()
