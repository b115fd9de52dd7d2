"""timm's ways of scaling a residual branch, validated against keras.applications' ConvNeXt
LayerScale. Before, the validator refused them all: timm's LayerScale and LayerScale2d
modules as layers of an unknown kind ("cannot port PyTorch modules of these kinds: ls
(LayerScale)"), and timm's ConvNeXt block, which multiplies by `gamma.reshape(1, -1, 1, 1)`,
because forward() "computes reshape with it". Its LayerNorm (a subclass of nn.LayerNorm,
on the block's N, H, W, C map) was compared as if it gave N, C, H, W."""

import keras
import numpy as np
import pytest
import torch
from torch import nn

import comparator
from adapters.port_validation.graph import acts_on_last_axis

timm_layers = pytest.importorskip("timm.layers")

X_TOKENS = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
X_MAPS = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)


class Scaled(nn.Module):
    """Linear -> timm LayerScale -> Linear on vectors, or conv -> timm LayerScale2d (-> ReLU
    where `relu`) -> pool -> Linear on maps; the scale drawn in [low, low + 1]."""

    def __init__(self, maps: bool, relu: bool = False, low: float = 0.5,
                 inplace: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.maps, self.relu = maps, relu
        self.body = nn.Conv2d(3, 4, 3, padding=1) if maps else nn.Linear(6, 8)
        self.ls = (timm_layers.LayerScale2d(4, 0.5, inplace) if maps else
                   timm_layers.LayerScale(8, 0.5, inplace))
        self.head = nn.Linear(4 if maps else 8, 3)
        with torch.no_grad():
            self.ls.gamma.uniform_(low, low + 1.0)

    def forward(self, x):
        x = self.ls(self.body(x))
        if self.relu:
            x = torch.relu(x)
        return self.head(x.mean(dim=(2, 3)) if self.maps else x)


def keras_scaled(maps: bool, relu_first: bool = False):
    """The Keras port: keras.applications' ConvNeXt LayerScale where PyTorch scales, or
    after the ReLU where `relu_first` (a port that scales elsewhere)."""
    from keras.src.applications.convnext import LayerScale

    layers = keras.layers
    inputs = keras.Input((8, 8, 3) if maps else (6,))
    x = (layers.Conv2D(4, 3, padding="same", name="body") if maps else
         layers.Dense(8, name="body"))(inputs)
    if relu_first:
        x = layers.ReLU()(x)
    x = LayerScale(0.5, 4 if maps else 8, name="ls")(x)
    if maps:
        if not relu_first:
            x = layers.ReLU()(x)
        x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(3, name="head")(x))


@pytest.mark.parametrize("maps, inplace", [(False, False), (False, True), (True, False)],
                         ids=["LayerScale", "LayerScale-inplace", "LayerScale2d"])
def test_timm_layer_scale_modules_pair_with_keras_layerscale(maps, inplace):
    """inplace: `x.mul_(self.gamma)`, which was refused as "computes mul with it"."""
    result = comparator.validate_port(Scaled(maps, relu=maps, inplace=inplace),
                                      keras_scaled(maps),
                                      X_MAPS if maps else X_TOKENS, port="pytorch-to-keras")
    assert result.passed, result.render()
    assert "ls.gamma <-> ls" not in result.render()  # no pair diverged
    paired = {(c.torch_module, c.keras_layer) for p in result.passes for c in p.layers}
    assert ("ls.gamma", "ls") in paired


def test_a_port_that_scales_after_the_relu_diverges_at_the_scale():
    """PyTorch scales by negative numbers, then applies ReLU; the Keras port the other way
    round: every value of the scaled map differs."""
    result = comparator.validate_port(Scaled(True, relu=True, low=-1.5),
                                      keras_scaled(True, relu_first=True), X_MAPS,
                                      port="pytorch-to-keras")
    assert not result.passed
    finding = result.first_divergence
    assert (finding.torch_module, finding.keras_layer) == ("ls.gamma", "ls")


def test_a_subclassed_layer_norm_counts_as_last_axis_where_it_computes_as_its_base():
    assert acts_on_last_axis(timm_layers.LayerNorm(8))  # timm's ConvNeXt block's, N, H, W, C
    assert not acts_on_last_axis(timm_layers.LayerNorm2d(8))  # takes and gives N, C, H, W
    assert acts_on_last_axis(nn.LayerNorm(8)) and not acts_on_last_axis(nn.LayerNorm((4, 8)))


def test_timm_convnext_tiny_validates_against_keras_convnext_tiny():
    """timm's convnext_tiny (its blocks' gamma, LayerNorm on N, H, W, C, LayerNorm2d in the
    stem and downsampling) against keras.applications' ConvNeXtTiny, at 32 px."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model("convnext_tiny", pretrained=False)
    port = keras.applications.ConvNeXtTiny(weights=None, include_preprocessing=False,
                                           classifier_activation=None,
                                           input_shape=(32, 32, 3))
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    result = comparator.validate_port(model, port, x, port="pytorch-to-keras")
    assert result.passed, result.render()
    assert len(result.passes[0].layers) == 100
    assert "stages.3.blocks.2.gamma" in {c.torch_module for c in result.passes[0].layers}
