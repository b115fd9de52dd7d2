"""A correct port whose training-mode BatchNorm runs over two values per channel (a batch
of 2 feature vectors, or a 1x1 map: ResNet18's layer4 at 32 px). Keras's torch backend
computes the batch variance as float32 E[x^2] - E[x]^2, which loses digits where the mean
is large against the spread; the validator measures that its output is exactly that
(cause one_pass_variance). Before, such a port failed (exit 1) on a Keras property, the
final line named the property over a real slip, and the training-mode gradients that carry
the difference failed it too."""

import keras
import numpy as np
import pytest
import torch
from torch import nn

import comparator

WIDTH = 16


class TwoBlocks(nn.Module):
    def __init__(self):
        super().__init__()
        # Registered as lists, not in the order they run: a pass's first diverging layer
        # is still the first to run.
        self.fc = nn.ModuleList([nn.Linear(12, WIDTH), nn.Linear(WIDTH, WIDTH)])
        self.bn = nn.ModuleList([nn.BatchNorm1d(WIDTH), nn.BatchNorm1d(WIDTH)])
        self.out = nn.Linear(WIDTH, 3)

    def forward(self, x):
        for fc, bn in zip(self.fc, self.bn):
            x = torch.relu(bn(fc(x)))
        return self.out(x)


def keras_two_blocks(momentum=0.9):
    layers = keras.layers
    inputs = keras.Input((12,))
    x = inputs
    for k in range(2):
        x = layers.Dense(WIDTH, name=f"fc{k}")(x)
        x = layers.BatchNormalization(epsilon=1e-5, momentum=momentum if k == 0 else 0.9,
                                      name=f"bn{k}")(x)
        x = layers.ReLU()(x)
    return keras.Model(inputs, layers.Dense(3, name="out")(x))


def validated(seed, momentum=0.9):
    torch.manual_seed(seed)
    # A mean large against the spread, two rows: the one-pass variance loses digits.
    x = (np.random.default_rng(seed).standard_normal((2, 12)) + 300).astype(np.float32)
    return comparator.validate_port(TwoBlocks(), keras_two_blocks(momentum), x,
                                    port="pytorch-to-keras")


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_keras_property_alone_does_not_fail_the_port(seed):
    result = validated(seed)
    finding = result.first_divergence
    assert finding.framework_property and finding.keras_layer == "bn0"
    assert [c.code for c in finding.causes] == ["one_pass_variance"]
    assert result.pass_result("inference", True).first_divergence is None
    assert result.passed
    assert result.render().splitlines()[-1].startswith(
        "the port computes the same function: every difference is a framework's own "
        "arithmetic, first at PyTorch bn.0 <-> Keras bn0 (training, isolated)")


@pytest.mark.parametrize("seed", [1, 3])
def test_gradients_it_spoils_are_compared_in_inference_mode(seed):
    result = validated(seed)
    assert result.gradient_mode == "inference" and not result.gradient_divergences
    assert any(note.startswith("gradients compared in inference mode") for note in result.notes)


def test_a_momentum_slip_is_named_before_the_property():
    result = validated(1, momentum=0.99)
    assert not result.passed
    finding = result.first_divergence
    assert (finding.keras_layer, finding.causes[0].code) == ("bn0", "momentum")
