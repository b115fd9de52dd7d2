"""timm's BatchNormAct2d (its EfficientNets', MobileNetV3s', ...) is an nn.BatchNorm2d whose
forward applies an activation, in place, after F.batch_norm. compare.py judged its mode from
the module's output, SiLU's, and reported every PyTorch run as normalising with batch
statistics, `pytorch:eval` included (bn 1/1 where eval() uses moving statistics). It reads
the F.batch_norm output now."""

import numpy as np
import pytest
import torch
from torch import nn

import comparator

timm_layers = pytest.importorskip("timm.layers")

X = (np.random.default_rng(0).standard_normal((4, 3, 8, 8)) * 3 + 1).astype(np.float32)
LABELS = [0, 1, 2, 0]


class ConvBNAct(nn.Module):
    """conv -> timm BatchNormAct2d (BatchNorm, then SiLU in place) -> pool -> Linear; with
    `plain`, torch's BatchNorm2d and SiLU as two modules (the same function)."""

    def __init__(self, plain: bool = False, norm=None):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = norm or (nn.Sequential(nn.BatchNorm2d(4), nn.SiLU()) if plain else
                           timm_layers.BatchNormAct2d(4, act_layer=nn.SiLU))
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.bn(self.conv(x)).mean(dim=(2, 3)))


def keras_conv_bn_act():
    import keras

    layers = keras.layers
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="bn")(x)
    x = layers.GlobalAveragePooling2D()(layers.Activation("silu")(x))
    return keras.Model(inputs, layers.Dense(3, name="head")(x))


def _modes(model):
    report = comparator.compare_pair(model, keras_conv_bn_act(), X, LABELS,
                                     port_weights="pytorch-to-keras",
                                     recipes=("pytorch:train", "pytorch:eval"))
    return {run.id: (run.modes.bn_layers, run.modes.bn_batch_stats) for run in report.runs}


def test_batchnorm_act_is_judged_by_its_normalised_output():
    expected = {"pytorch:train": (1, 1), "pytorch:eval": (1, 0)}
    assert _modes(ConvBNAct(plain=True)) == expected  # torch's own modules
    assert _modes(ConvBNAct()) == expected


class FailsAfterNormalising(nn.BatchNorm2d):
    """A BatchNorm of the user's own class whose forward raises after F.batch_norm in train(),
    so in the first observed pass (the port check runs in eval())."""

    def forward(self, x):
        y = super().forward(x)
        if self.training:
            raise RuntimeError("the user's forward failed")
        return y


def test_a_forward_that_raises_leaves_no_observation_running():
    with pytest.raises(Exception, match="the user's forward failed"):
        _modes(ConvBNAct(norm=FailsAfterNormalising(4)))
    assert torch._C._len_torch_function_stack() == 0
