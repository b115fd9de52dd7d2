"""torchvision's StochasticDepth (EfficientNet's, ConvNeXt's residual branches) drops whole
examples in train(). The validator left it on in its training passes, where Dropout is off
in both frameworks: a correct EfficientNet-B0 port at 32 px failed them (6.86 at the output),
and its Dropout check paired the Keras stochastic-depth layers with the classifier's Dropout."""

import keras
import numpy as np
import pytest
import torch
from torch import nn
from torchvision.ops import StochasticDepth

import comparator
from tests.stochastic_depth_models import OwnDropPath, timm_drop_path

X = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)


class ResidualDrop(nn.Module):
    """timm: the branch dropped by timm's DropPath, not torchvision's StochasticDepth;
    own: by a drop-path class of the model's own."""

    def __init__(self, timm: bool = False, own: bool = False):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.branch = nn.Conv2d(4, 4, 3, padding=1)
        self.drop = timm_drop_path(0.5) if timm else OwnDropPath(0.5) if own else \
            StochasticDepth(0.5, "row")
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.drop(self.branch(x))
        return self.head(x.mean(dim=(2, 3)))


def keras_residual_drop(stochastic_depth: bool = True, convnext: bool = False):
    """convnext: the branch dropped by keras.applications' ConvNeXt's own StochasticDepth
    layer, not EfficientNet's Dropout of whole examples."""
    from keras.src.applications.convnext import StochasticDepth as ConvNeXtStochasticDepth

    layers = keras.layers
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    branch = layers.Conv2D(4, 3, padding="same", name="branch")(x)
    if stochastic_depth:
        branch = (ConvNeXtStochasticDepth(0.5, name="drop") if convnext else layers.Dropout(
            0.5, noise_shape=(None, 1, 1, 1), name="drop"))(branch)
    x = layers.GlobalAveragePooling2D()(layers.Add()([x, branch]))
    return keras.Model(inputs, layers.Dense(3, name="head")(x))


def validated(stochastic_depth: bool, convnext: bool = False, timm: bool = False,
              own: bool = False):
    torch.manual_seed(0)
    return comparator.validate_port(ResidualDrop(timm, own),
                                    keras_residual_drop(stochastic_depth, convnext), X,
                                    port="pytorch-to-keras")


@pytest.mark.parametrize("convnext", [False, True], ids=["efficientnet", "convnext"])
def test_stochastic_depth_is_off_in_the_training_passes_and_paired_as_a_dropout(convnext):
    """keras.applications' ConvNeXt's StochasticDepth is no Dropout: the validator left it on
    in Keras's training passes (the output 0.0494 apart) and found no Keras counterpart to
    PyTorch's."""
    result = validated(stochastic_depth=True, convnext=convnext)
    assert result.passed, result.render()
    (pair,) = result.dropout
    assert (pair.torch_module, pair.keras_layer, pair.diverges) == ("drop", "drop", False)
    assert pair.keras_rate == 0.5


def test_a_port_without_stochastic_depth_is_named():
    finding = validated(stochastic_depth=False).first_divergence
    assert finding.seen_in == "Dropout layers" and finding.torch_module == "drop"
    assert "StochasticDepth" in finding.causes[0].text


@pytest.mark.parametrize("convnext", [False, True], ids=["efficientnet", "convnext"])
def test_timm_drop_path_is_paired_as_stochastic_depth(convnext):
    """timm's DropPath (a timm model's drop_path_rate) is no _DropoutNd either: the validator
    left it dropping in PyTorch's training passes and found no PyTorch counterpart to the
    Keras layer."""
    pytest.importorskip("timm")
    result = validated(stochastic_depth=True, convnext=convnext, timm=True)
    assert result.passed, result.render()
    (pair,) = result.dropout
    assert (pair.torch_module, pair.keras_layer, pair.diverges) == ("drop", "drop", False)
    assert (pair.torch_rate, pair.keras_rate) == (0.5, 0.5)


@pytest.mark.parametrize("convnext", [False, True], ids=["efficientnet", "convnext"])
def test_a_drop_path_of_the_models_own_class_is_paired_as_stochastic_depth(convnext):
    """A copy of timm's DropPath in the model's own code: the validator left it dropping in
    PyTorch's training passes, as it did timm's."""
    result = validated(stochastic_depth=True, convnext=convnext, own=True)
    assert result.passed, result.render()
    (pair,) = result.dropout
    assert (pair.torch_module, pair.keras_layer, pair.diverges) == ("drop", "drop", False)
    assert (pair.torch_rate, pair.keras_rate) == (0.5, 0.5)
