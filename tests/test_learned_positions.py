"""A tensor a PyTorch module holds outside any layer and adds to a value: a ViT's or BERT's
learned positions, `tokens + self.pos_embed` with pos_embed an nn.Parameter (1, L, D),
which a Keras port holds in a layer of one weight that adds it to its input.

Both tools refused such a pair: validate_port.py named the parameter ("holds the parameter
pos (1, 4, 8) directly, outside any torch.nn layer: ... compare.py compares the two models'
outputs whole"), and compare.py compared it only without --port-weights. Now the tensor is
paired with the Keras layer, ported by element order (the same array, leading axes of 1
aside) and, in the validator, compared as a layer whose input is the tokens."""

import json
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

C, D, PATCH, SIZE = 3, 8, 4, 8
L = (SIZE // PATCH) ** 2
SPEC = "tests/test_learned_positions.py"
FAST = dict(modes=("inference",), gradients=False, reference64=False, train_step=False)
X = np.random.default_rng(0).standard_normal((2, C, SIZE, SIZE)).astype(np.float32)
LABELS = [0, 2]
STEP = ("pytorch:train", "keras:train")


class PatchPositions(nn.Module):
    """A ViT in small, without its class token: patches, learned positions, a norm and a
    head on the mean token."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.patch = nn.Conv2d(C, D, PATCH, stride=PATCH)
        self.pos_embed = nn.Parameter(torch.randn(1, L, D))
        self.norm = nn.LayerNorm(D)
        self.head = nn.Linear(D, 3)

    def forward(self, x):
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        return self.head(self.norm(tokens + self.pos_embed).mean(1))


class ClassToken(PatchPositions):
    """A class token, concatenated before the tokens after the positions are added (as
    timm's ViTs with no_embed_class do)."""

    def __init__(self):
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, D))

    def forward(self, x):
        tokens = self.patch(x).flatten(2).transpose(1, 2) + self.pos_embed
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], dim=1)
        return self.head(self.norm(tokens)[:, 0])


class MapPositions(PatchPositions):
    """Positions added to the channels-first map, (1, D, H, W): Keras holds that map
    channels last, so the same array by element order is not Keras's."""

    def __init__(self):
        super().__init__()
        side = SIZE // PATCH
        self.pos_embed = nn.Parameter(torch.randn(1, D, side, side))

    def forward(self, x):
        tokens = (self.patch(x) + self.pos_embed).flatten(2).transpose(1, 2)
        return self.head(self.norm(tokens).mean(1))


def torch_net():
    return PatchPositions()


class AddPositions(layers.Layer):
    def __init__(self, shape=(1, L, D), **kwargs):
        super().__init__(**kwargs)
        self.shape = shape

    def build(self, input_shape):
        self.pos = self.add_weight(shape=self.shape, initializer="zeros", name="pos")

    def call(self, x):
        return x + self.pos


def keras_net(shape=(1, L, D)):
    inputs = keras.Input((SIZE, SIZE, C))
    x = layers.Conv2D(D, PATCH, strides=PATCH, name="patch")(inputs)
    x = AddPositions(shape, name="pos_embed")(layers.Reshape((L, D))(x))
    x = layers.LayerNormalization(epsilon=1e-5, name="norm")(x)
    return keras.Model(inputs, layers.Dense(3, name="head")(layers.GlobalAveragePooling1D()(x)))


def keras_net_2d():
    """The positions held as (L, D), without the leading axis of 1."""
    return keras_net((L, D))


def test_a_correct_port_validates_with_the_positions_as_a_layer():
    result = comparator.validate_port(PatchPositions(), keras_net(), X, port="pytorch-to-keras")
    assert result.passed, result.render()
    for found in result.passes:
        pos = next(c for c in found.layers if c.torch_module == "pos_embed")
        assert pos.keras_layer == "pos_embed" and pos.metrics is not None
    assert "pos_embed" in {g.name for g in result.gradients}
    assert "PyTorch's pos_embed, held outside any layer and added to a value by forward(), " \
        "each validated as a layer whose input is that value and whose output is the sum " \
        "(ported by element order)" in result.notes


def test_the_ported_positions_are_torchs_array():
    """(1, L, D) and (L, D) alike, by element order; the round trip gives PyTorch's back."""
    for build in (keras_net, keras_net_2d):
        torch_model, keras_model = PatchPositions(), build()
        comparator.port_weights(torch_model, keras_model)
        held = keras_model.get_layer("pos_embed").get_weights()[0]
        np.testing.assert_array_equal(held.reshape(1, L, D),
                                      torch_model.pos_embed.detach().numpy())
        with torch.no_grad():
            torch_model.pos_embed.zero_()
        comparator.port_weights(torch_model, keras_model, direction="keras_to_torch")
        np.testing.assert_array_equal(torch_model.pos_embed.detach().numpy(),
                                      held.reshape(1, L, D))


def test_unported_positions_are_the_layer_that_differs():
    """Every other layer ported, the Keras positions left at their initial zeros: the
    positions are the first layer to differ, and why is named."""
    torch_model, keras_model = PatchPositions(), keras_net()
    comparator.port_weights(torch_model, keras_model)
    keras_model.get_layer("pos_embed").set_weights([np.zeros((1, L, D), np.float32)])
    result = comparator.validate_port(torch_model, keras_model, X, **FAST)
    assert not result.passed
    found = result.passes[0]
    assert found.first_divergence.torch_module == "pos_embed", result.render()
    assert "holds 0 throughout, where PyTorch's numbers differ" in result.render()


def test_the_command_line_reports_the_positions_pair(tmp_path, capsys):
    from comparator.cli.validate_port import main

    out = tmp_path / "validation.json"
    code = main(["--pytorch", f"{SPEC}:torch_net", "--keras", f"{SPEC}:keras_net",
                 "--input-shape", f"{C},{SIZE},{SIZE}", "--port-weights", "pytorch-to-keras",
                 "--no-float64", "--json", str(out)])
    assert code == 0, capsys.readouterr().out
    validation = json.loads(out.read_text())
    assert validation["passed"]
    for found in validation["passes"]:
        (pos,) = [p for p in found["layers"] if p["torch_module"] == "pos_embed"]
        assert pos["kind"] == f"offset:1,{L},{D}" and pos["keras_shape"] == [2, L, D]
        assert not pos["diverges"]


def test_positions_added_to_a_channels_first_map_are_still_refused_by_name():
    with pytest.raises(UsageError) as caught:
        comparator.validate_port(MapPositions(), keras_net(), X, **FAST)
    assert "holds the parameter pos_embed (1, 8, 2, 2) directly, outside any torch.nn layer, " \
        "and forward() adds it to a 4-D value that PyTorch holds channels first and Keras " \
        "channels last" in str(caught.value)
    assert "compare.py" in str(caught.value)


def test_a_keras_port_without_the_class_token_is_told_to_add_one():
    """Was refused ("... and forward() computes expand with it"); a class token pairs since
    2026-11-30 (tests/test_validate_port_vit.py), and this Keras port has none."""
    with pytest.raises(UsageError, match=r"no Keras layer left concatenates a weight of shape 8 "
                                         r"\(leading axes of 1 aside\), repeated over the "
                                         r"batch, before its input's tokens, .*: port it as a "
                                         r"layer that holds it and concatenates it so"):
        comparator.validate_port(ClassToken(), keras_net(), X, **FAST)


def test_compare_ports_the_positions_and_compares_them_after_the_step():
    """Was: no port (PyTorch's model holds a tensor outside any layer that no Keras layer
    was paired with), so the pair ran only without --port-weights."""
    report = comparator.compare_pair(PatchPositions(), keras_net(), X, LABELS,
                                     port_weights="pytorch-to-keras",
                                     recipes=STEP)
    assert report.checks_passed
    torch_run, keras_run = ({run.id: run for run in report.runs}[r] for r in STEP)
    assert torch_run.losses.inference_before == pytest.approx(
        keras_run.losses.inference_before, rel=1e-5)
    assert torch_run.losses.inference_after == pytest.approx(
        keras_run.losses.inference_after, rel=1e-5)
    (same,) = report.equivalences
    assert same.equivalent and same.max_weight_diff < 1e-6


def test_the_keras_layer_is_told_from_a_scale():
    from adapters.own_pair.keras_layers import adds_its_weight, scales_its_input

    positions = keras_net().get_layer("pos_embed")
    assert adds_its_weight(positions) and not scales_its_input(positions)
    assert not adds_its_weight(keras_net().get_layer("norm"))
