"""Model pairs of the tests' own with the normalisations other than BatchNorm (LayerNorm,
GroupNorm, RMSNorm), on inputs that are not RGB images: a one-channel image and vectors.
Each Keras port can be built with the slip a port makes most often: Keras's default epsilon
(1e-3; PyTorch's is 1e-5) or another number of groups."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

layers = keras.layers
FEATURES, SIZE = 16, 8


class GroupNormNet(nn.Module):
    """A one-channel image: conv -> GroupNorm (4 groups of 2) -> ReLU -> pool -> Linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.gn = nn.GroupNorm(4, 8)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.gn(self.conv(x))).mean((2, 3)))


def keras_group_norm_net(groups: int = 4, epsilon: float = 1e-5):
    inputs = keras.Input((SIZE, SIZE, 1))
    x = layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    x = layers.GroupNormalization(groups=groups, epsilon=epsilon, name="gn")(x)
    x = layers.GlobalAveragePooling2D()(layers.ReLU()(x))
    return keras.Model(inputs, layers.Dense(3, name="fc")(x), name="group_norm_net")


class LayerNormMLP(nn.Module):
    """Vectors: Linear -> LayerNorm -> GELU -> Linear, and an RMSNorm variant."""

    def __init__(self, rms: bool = False):
        super().__init__()
        self.fc1 = nn.Linear(FEATURES, 32)
        self.norm = nn.RMSNorm(32) if rms else nn.LayerNorm(32)
        self.fc2 = nn.Linear(32, 4)

    def forward(self, x):
        return self.fc2(nn.functional.gelu(self.norm(self.fc1(x))))


def keras_layer_norm_mlp(epsilon: float | None = 1e-5, rms: bool = False):
    """epsilon None: the Keras layer's own default."""
    inputs = keras.Input((FEATURES,))
    x = layers.Dense(32, name="fc1")(inputs)
    norm = layers.RMSNormalization if rms else layers.LayerNormalization
    x = norm(name="norm", **({} if epsilon is None else {"epsilon": epsilon}))(x)
    x = layers.Activation("gelu")(x)
    return keras.Model(inputs, layers.Dense(4, name="fc2")(x), name="layer_norm_mlp")


def seeded(module: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for parameter in module.parameters():  # away from 1 and 0, so swapped arrays show
        with torch.no_grad():
            parameter.copy_(torch.randn_like(parameter) * 0.5)
    return module
