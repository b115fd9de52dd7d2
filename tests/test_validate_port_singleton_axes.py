"""A pair of layers whose outputs are the same numbers in shapes that differ only by axes of
length 1: torchvision ConvNeXt's head runs its LayerNorm2d on the pooled (N, C, 1, 1) map,
where keras.applications' ConvNeXt runs LayerNormalization on the pooled (N, C) vector. The
port validator compared the shapes and stopped there ("output shapes differ"), so a correct
port of that head never passed."""

import os

import numpy as np
import torch
from torch import nn
from torchvision.models.convnext import LayerNorm2d

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
from keras import layers  # noqa: E402

import comparator  # noqa: E402

X = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)


class PooledHead(nn.Module):
    """conv -> global average pool, kept (N, C, 1, 1) -> LayerNorm2d -> flatten -> linear,
    as torchvision's ConvNeXt classifier runs."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.norm = LayerNorm2d(6, eps=1e-6)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(6, 4)
        with torch.no_grad():  # not the identity affine, so that a slip would show
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        return self.fc(self.flatten(self.norm(self.pool(self.conv(x)))))


def keras_pooled_head(epsilon=1e-6):
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(6, 3, padding="same", name="conv")(inputs)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.LayerNormalization(epsilon=epsilon, name="norm")(x)
    return keras.Model(inputs, layers.Dense(4, name="fc")(x))


def test_outputs_that_differ_by_axes_of_length_one_are_compared_as_values():
    result = comparator.validate_port(PooledHead(), keras_pooled_head(), X,
                                      port="pytorch-to-keras")
    assert result.passed, result.render()
    for found in result.passes:
        norm = next(c for c in found.layers if c.torch_module == "norm")
        assert norm.metrics is not None and not norm.diverges


def test_a_slip_in_such_a_layer_is_still_found_there():
    """Another epsilon on the normalised pooled vector: found at the norm, measured, not
    a difference of shape."""
    torch_model, keras_model = PooledHead(), keras_pooled_head(epsilon=0.5)
    result = comparator.validate_port(torch_model, keras_model, X, port="pytorch-to-keras")
    assert not result.passed
    first = result.first_divergence
    assert (first.torch_module, first.keras_layer) == ("norm", "norm"), result.render()
    assert "shape" not in {cause.code for cause in first.causes}
