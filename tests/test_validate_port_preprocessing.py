"""Input preprocessing that one model does inside itself and the other does not: a Keras
model that rescales or normalises its pixels (Rescaling, Normalization) against a PyTorch
model that takes them as given, and a PyTorch model with torchvision's Normalize module
against a Keras model without it. The first layer is named with the preprocessing, the
measured difference and the same preprocessing in the other framework's terms (before, the
cause was between_layers: 'the Keras operations before it differ (rescale)'); models that
preprocess alike pass, and preprocessing later in the model stays between_layers."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torchvision import transforms  # noqa: E402

import comparator  # noqa: E402

layers = keras.layers
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
QUICK = dict(modes=("inference",), gradients=False, train_step=False)
X = np.random.default_rng(3).uniform(0, 1, size=(2, 3, 8, 8)).astype(np.float32)


class ConvNet(nn.Module):
    """conv -> ReLU -> mean -> Linear, optionally after torchvision's Normalize."""

    def __init__(self, normalize: bool = False):
        super().__init__()
        self.normalize = transforms.Normalize(MEAN, STD) if normalize else nn.Identity()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(self.normalize(x))).mean((2, 3)))


def keras_conv_net(*preprocessing):
    inputs = keras.Input((8, 8, 3))
    x = inputs
    for layer in preprocessing:
        x = layer(x)
    x = layers.ReLU()(layers.Conv2D(4, 3, padding="same", name="conv")(x))
    x = layers.Dense(3, name="fc")(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, x, name="conv_net")


def _normalization():
    return layers.Normalization(mean=MEAN, variance=np.square(STD).tolist(), name="norm")


def _first(torch_model, keras_model):
    comparator.port_weights(torch_model, keras_model)
    return comparator.validate_port(torch_model, keras_model, X, **QUICK)


@pytest.mark.parametrize("preprocessing, words, fix", [
    (lambda: [layers.Rescaling(1 / 255, name="rescale")],
     "rescale (Rescaling(scale=0.003922, offset=0.0))", "x * 0.003922 + 0.0"),
    (lambda: [_normalization()], "norm (Normalization(mean=[0.485, 0.456, 0.406]",
     "transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])"),
    (lambda: [layers.Rescaling(2.0, offset=-1.0, name="rescale"), _normalization()],
     "rescale (Rescaling(scale=2.0, offset=-1.0)), norm (Normalization(",
     "x * 2.0 + -1.0 then transforms.Normalize("),
])
def test_keras_preprocessing_inside_the_model_is_named(preprocessing, words, fix):
    torch.manual_seed(0)
    found = _first(ConvNet().eval(), keras_conv_net(*preprocessing())).first_divergence
    assert (found.torch_module, found.keras_layer) == ("conv", "conv")
    assert [cause.code for cause in found.causes] == ["input_preprocessing"]
    text, detail = found.causes[0].text, found.causes[0].detail
    assert "Keras's model preprocesses its input inside itself" in text and words in text
    assert "gives Keras's (max abs 0)" in text
    assert fix in detail


def test_pytorch_normalize_inside_the_model_is_named_with_keras_normalization():
    torch.manual_seed(0)
    found = _first(ConvNet(normalize=True).eval(), keras_conv_net()).first_divergence
    assert (found.torch_module, found.keras_layer) == ("conv", "conv")
    assert [cause.code for cause in found.causes] == ["input_preprocessing"]
    text, detail = found.causes[0].text, found.causes[0].detail
    assert "PyTorch's model preprocesses its input inside itself (normalize (Normalize(" in text
    assert "layers.Normalization(mean=[0.485, 0.456, 0.406], variance=[0.05244, 0.05018, " \
           "0.05063])" in detail


def test_models_that_preprocess_alike_pass():
    torch.manual_seed(0)
    result = _first(ConvNet(normalize=True).eval(), keras_conv_net(_normalization()))
    assert result.passed, result.render()


def test_preprocessing_after_the_first_layer_stays_between_layers():
    """A Rescaling between two paired layers is not the model's input preprocessing."""
    torch.manual_seed(0)
    torch_model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 1))
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", name="first")(inputs)
    x = layers.Conv2D(4, 1, name="second")(layers.Rescaling(0.5, name="half")(x))
    keras_model = keras.Model(inputs, x, name="halved")
    comparator.port_weights(torch_model, keras_model)
    isolated = [p for p in comparator.validate_port(torch_model, keras_model, X, **QUICK).passes
                if p.isolated][0]
    (diverging,) = [c for c in isolated.layers if c.diverges]
    assert diverging.keras_layer == "second"
    assert [cause.code for cause in diverging.causes] == ["between_layers"]
