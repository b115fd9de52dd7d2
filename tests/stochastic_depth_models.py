"""A residual pair whose branch is dropped by stochastic depth: torchvision's StochasticDepth
(EfficientNet's, ConvNeXt's) or timm's DropPath (its models' drop_path_rate) in PyTorch, and in
Keras the layer keras.applications' ConvNeXt drops with or the Dropout of whole examples its
EfficientNet drops with."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torchvision.ops import StochasticDepth  # noqa: E402


def timm_drop_path(rate: float) -> nn.Module:
    from timm.layers import DropPath

    return DropPath(rate)


class OwnDropPath(nn.Module):
    """Stochastic depth as a model's own code writes it (DINOv2's reference code keeps a
    copy of timm's): in train(), each example's input is kept with probability
    1 - drop_prob and scaled by 1 / (1 - drop_prob), or zeroed whole."""

    def __init__(self, drop_prob: float):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x):
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class OwnDropout(OwnDropPath):
    """An element-wise Dropout of a model's own: not stochastic depth."""

    def forward(self, x):
        if not self.training:
            return x
        keep = 1.0 - self.drop_prob
        return x * torch.empty_like(x).bernoulli_(keep) / keep


class ResidualDepth(nn.Module):
    """stem (conv, BatchNorm, ReLU) -> x + StochasticDepth(conv(x)) -> pool -> Linear; with
    mode "timm", timm's DropPath(0.5) in place of torchvision's StochasticDepth, and with
    mode "own", OwnDropPath(0.5)."""

    def __init__(self, mode: str = "row"):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.branch = nn.Conv2d(4, 4, 3, padding=1)
        self.drop = timm_drop_path(0.5) if mode == "timm" else OwnDropPath(0.5) \
            if mode == "own" else StochasticDepth(0.5, mode)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        x = x + self.drop(self.branch(x))
        return self.head(x.mean(dim=(2, 3)))


def timm_residual_depth():
    return ResidualDepth("timm")


def own_residual_depth():
    return ResidualDepth("own")


def keras_residual_depth(kind: str = "convnext"):
    """The Keras port, its branch dropped as keras.applications' ConvNeXt drops it (its own
    StochasticDepth layer, which no keras.layers name exports) or as its EfficientNet does
    (Dropout with noise_shape (None, 1, 1, 1))."""
    from keras.src.applications.convnext import StochasticDepth as ConvNeXtStochasticDepth

    layers = keras.layers
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    x = layers.ReLU()(layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="bn")(x))
    branch = layers.Conv2D(4, 3, padding="same", name="branch")(x)
    branch = (ConvNeXtStochasticDepth(0.5, name="drop")(branch) if kind == "convnext" else
              layers.Dropout(0.5, noise_shape=(None, 1, 1, 1), name="drop")(branch))
    x = layers.GlobalAveragePooling2D()(layers.Add()([x, branch]))
    return keras.Model(inputs, layers.Dense(3, name="head")(x), name=f"keras_{kind}")


def keras_efficientnet_depth():
    return keras_residual_depth("efficientnet")
