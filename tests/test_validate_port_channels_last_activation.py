"""A Keras activation of another form than PyTorch's where PyTorch's acts on the last axis of a
map (a ConvNeXt block's GELU between its Linears on a channels-last map): the validator's
rerun moved Keras's input to channels-first before PyTorch's GELU, the shapes parted, and
the cause stayed 'the Keras operations before it differ (gelu)'."""

import keras
import numpy as np
import torch
from torch import nn

import comparator


class _ChannelsLastMLP(nn.Module):
    """A ConvNeXt block's inner MLP: Linears and GELU on a channels-last map."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc1, self.act, self.fc2 = nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 4)

    def forward(self, x):
        x = self.conv(x).permute(0, 2, 3, 1)
        return self.fc2(self.act(self.fc1(x))).mean(dim=(1, 2))


def _keras_channels_last_mlp():
    layers = keras.layers
    inputs = keras.Input((8, 8, 3))
    x = layers.Dense(8, name="fc1")(layers.Conv2D(4, 3, padding="same", name="conv")(inputs))
    x = layers.Activation(lambda t: keras.activations.gelu(t, approximate=True), name="gelu")(x)
    return keras.Model(inputs, layers.GlobalAveragePooling2D()(layers.Dense(4, name="fc2")(x)))


def test_a_lambda_of_another_form_on_a_channels_last_map_is_measured():
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    finding = comparator.validate_port(_ChannelsLastMLP(), _keras_channels_last_mlp(), x,
                                       port="pytorch-to-keras", gradients=False,
                                       train_step=False).first_divergence
    assert finding.torch_module == "fc2" and finding.causes[0].code == "activation_function"
    assert "measured, it computes GELU's tanh approximation" in finding.causes[0].text
