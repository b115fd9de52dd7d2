"""A tensor a PyTorch module holds outside any layer and multiplies a value by, one number
per channel: torchvision's ConvNeXt block computes `self.layer_scale * self.block(input)`
with layer_scale an nn.Parameter (C, 1, 1), which a Keras port holds in a LayerScale layer
(gamma (C,), x * gamma). The validator refused every such model ("holds the parameter
layer_scale (96, 1, 1) directly, outside any torch.nn layer: ... compare the two models
whole with compare.py ... rather than --port-weights"); now the tensor is paired with the
Keras layer, ported by element order (the channels on both sides) and compared as a layer
whose input is the value it multiplies."""

import os

import numpy as np
import pytest
import torch
from torch import nn

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
from keras import layers  # noqa: E402

import comparator  # noqa: E402
from comparator.errors import UsageError  # noqa: E402

C, SIZE = 8, 8
SPEC = "tests/test_validate_port_layer_scale.py"
FAST = dict(modes=("inference",), gradients=False, reference64=False, train_step=False)
X = np.random.default_rng(0).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)
GAMMA = torch.linspace(0.5, 2.0, C)  # not torchvision's 1e-6: every channel its own scale


class Permute(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return x.permute(*self.dims)


class Block(nn.Module):
    """torchvision's CNBlock in small: the scale multiplies the block's N, C, H, W output."""

    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(C, C, 3, padding=1, groups=C), Permute((0, 2, 3, 1)),
            nn.LayerNorm(C, eps=1e-6), nn.Linear(C, 2 * C), nn.GELU(), nn.Linear(2 * C, C),
            Permute((0, 3, 1, 2)))
        self.layer_scale = nn.Parameter(GAMMA.reshape(C, 1, 1).clone())

    def forward(self, x):
        result = self.layer_scale * self.block(x)
        result += x
        return result


class ChannelsLastBlock(Block):
    """The original ConvNeXt's: gamma (C,) multiplies the N, H, W, C map before the permute."""

    def __init__(self):
        super().__init__()
        self.layer_scale = nn.Parameter(GAMMA.clone())

    def forward(self, x):
        y = self.block[:-1](x)
        return self.block[-1](y * self.layer_scale) + x


class Net(nn.Module):
    def __init__(self, block=Block):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, C, 2, stride=2)
        self.stage = block()
        self.head = nn.Linear(C, 3)

    def forward(self, x):
        return self.head(self.stage(self.stem(x)).mean((2, 3)))


def torch_net():
    return Net()


class LayerScale(layers.Layer):
    """As keras.applications' ConvNeXt writes it (keras/src/applications/convnext.py, not
    exported): one weight of C numbers, the input times it."""

    def __init__(self, dim, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim

    def build(self, input_shape):
        self.gamma = self.add_weight(shape=(self.dim,), initializer="ones", name="gamma")

    def call(self, x):
        return x * self.gamma


def keras_net(scaled=True, size=SIZE):
    inputs = keras.Input((size, size, 3))
    x = layers.Conv2D(C, 2, strides=2, name="stem")(inputs)
    y = layers.DepthwiseConv2D(3, padding="same", name="dwconv")(x)
    y = layers.LayerNormalization(epsilon=1e-6, name="norm")(y)
    y = layers.Dense(2 * C, name="pw1")(y)
    y = layers.Dense(C, name="pw2")(layers.Activation("gelu")(y))
    if scaled:
        y = LayerScale(C, name="layer_scale")(y)
    x = layers.GlobalAveragePooling2D()(layers.Add()([x, y]))
    return keras.Model(inputs, layers.Dense(3, name="head")(x))


def ported(block=Block):
    torch_model, keras_model = Net(block), keras_net()
    comparator.port_weights(torch_model, keras_model)
    return torch_model, keras_model


@pytest.mark.parametrize("block", [Block, ChannelsLastBlock])
def test_a_correct_port_validates_with_the_scale_as_a_layer(block):
    """Was the refusal; now the scale is a pair of its own in every pass and gradient."""
    result = comparator.validate_port(Net(block), keras_net(), X, port="pytorch-to-keras")
    assert result.passed, result.render()
    for found in result.passes:
        scale = next(c for c in found.layers if c.torch_module == "stage.layer_scale")
        assert scale.keras_layer == "layer_scale" and scale.metrics is not None
    assert "stage.layer_scale" in {g.name for g in result.gradients}
    assert any("stage.layer_scale (times stage.block" in note for note in result.notes)


def test_the_command_line_validates_the_port(capsys):
    from comparator.cli.validate_port import main

    code = main(["--pytorch", f"{SPEC}:torch_net", "--keras", f"{SPEC}:keras_net",
                 "--input-shape", f"3,{SIZE},{SIZE}", "--port-weights", "pytorch-to-keras",
                 "--no-float64"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.rstrip().endswith("every layer agrees: the port computes the same function")


@pytest.mark.parametrize("slip, code, words", [
    (lambda g: g[::-1], "kernel_layout", "Keras's numbers are PyTorch's in reverse order"),
    (lambda g: np.ones_like(g), "kernel_layout", "Keras's weight holds 1 in every channel"),
    (lambda g: 2 * g, "weights", "weights differ from PyTorch's by up to 2")])
def test_a_wrong_gamma_is_found_at_the_scale(slip, code, words):
    torch_model, keras_model = ported()
    scale = keras_model.get_layer("layer_scale")
    scale.set_weights([slip(scale.get_weights()[0])])
    found = comparator.validate_port(torch_model, keras_model, X, **FAST).first_divergence
    assert (found.torch_module, found.keras_layer, found.seen_in) == (
        "stage.layer_scale", "layer_scale", "inference, isolated")
    assert found.causes[0].code == code and found.causes[0].text.startswith(words)


def test_ported_weights_give_the_same_outputs_both_ways():
    """PyTorch's (C, 1, 1) is Keras's (C,) in channel order, and back."""
    torch_model, keras_model = ported()
    np.testing.assert_array_equal(keras_model.get_layer("layer_scale").get_weights()[0], GAMMA)
    with torch.no_grad():
        expected = torch_model.eval()(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras_model(X.transpose(0, 2, 3, 1))),
                               expected, atol=1e-5)
    back = Net()
    with torch.no_grad():
        back.stage.layer_scale.zero_()
    comparator.port_weights(back, keras_model, direction="keras_to_torch")
    assert torch.equal(back.stage.layer_scale, GAMMA.reshape(C, 1, 1))


def test_compare_py_ports_the_scale_too():
    report = comparator.compare_pair(Net(), keras_net(), X, port_weights="pytorch-to-keras",
                                     recipes=("pytorch:eval", "keras:training_false"))
    assert report.checks[0].passed, report.checks[0]
    # the scale's arrays are paired too: states after a step are compared array by array
    assert report.to_dict()["settings"]["pair"]["pairing"] == {"paired_layers": 7}


class Added(Block):
    def forward(self, x):
        return self.layer_scale + self.block(x) + x


class AlongRows(Block):
    """A (C, 1) tensor on an N, C, H, W map lies along H (C == H at 16 px), not the
    channels."""

    def __init__(self):
        super().__init__()
        self.layer_scale = nn.Parameter(GAMMA.reshape(C, 1).clone())


@pytest.mark.parametrize("block, words", [
    # an offset per channel since 2026-11-30 (tests/test_learned_positions.py), which the
    # Keras port does not add
    (Added, "no Keras layer fits PyTorch stage.layer_scale (a parameter (8, 1, 1) forward() "
            "adds to a value, weights [(8,)]) by order and shape"),
    (AlongRows, "and forward() multiplies a 4-D value by it along axis 2, which is not the "
                "value's channels: ")])
def test_a_tensor_used_otherwise_is_refused_saying_how(block, words):
    size = 2 * C if block is AlongRows else SIZE
    with pytest.raises(UsageError) as caught:
        comparator.validate_port(Net(block), keras_net(size=size),
                                 np.zeros((2, 3, size, size), np.float32), **FAST)
    assert words in str(caught.value)
    assert "rather than --port-weights" not in str(caught.value)


def test_a_keras_port_without_the_scale_is_told_to_add_one():
    with pytest.raises(UsageError, match=r"no Keras layer fits PyTorch stage\.layer_scale .*"
                                         r"port it as a layer that holds it and multiplies "
                                         r"its input by it"):
        comparator.validate_port(Net(), keras_net(scaled=False), X, **FAST)


class Looped(nn.Module):
    """Runs its children in a loop: the tensor standing as one would run there too."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, C, 2, stride=2)
        self.layer_scale = nn.Parameter(GAMMA.reshape(C, 1, 1).clone())

    def forward(self, x):
        for module in self.children():
            x = module(x)
        return (self.layer_scale * x).mean((2, 3))


def test_a_forward_that_would_run_the_stand_in_is_refused():
    inputs = keras.Input((SIZE, SIZE, 3))
    x = LayerScale(C, name="layer_scale")(layers.Conv2D(C, 2, strides=2, name="stem")(inputs))
    keras_model = keras.Model(inputs, layers.GlobalAveragePooling2D()(x))
    with pytest.raises(UsageError, match=r"^PyTorch's forward\(\) computes something else "
                                         r"where the validator stands layer_scale"):
        comparator.validate_port(Looped(), keras_model, X, **FAST)
