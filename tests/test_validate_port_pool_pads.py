"""A padding that runs right before PyTorch's pooling (an F.pad call in forward() or an
nn.ZeroPad2d) counts in the pooling's padding (pool_padding), as a ZeroPadding2D before
Keras's does: zeros before a MaxPool2d against Keras's 'same' max pooling (which leaves its
padded positions out, as padding with -inf) are named where the input is negative, with
the -inf padding that keeps 'same'; padding of other amounts is named with the amounts;
the TensorFlow 'same' emulation passes. Before, each stayed between_layers. The pairs are
tests/functional_models.py's conv0, padding, pooling, conv1 on 8 x 8 maps."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import adapters.port_validation.validator as layerwise  # noqa: E402
from tests.functional_models import keras_conv_pool_conv, torch_conv_pad_pool_conv  # noqa: E402

QUICK = dict(modes=("inference",), gradients=False, train_step=False)
CALL = "torch.nn.functional.pad in forward(), call 1"
MINUS_INF = float("-inf")


def _validated(torch_model, keras_model):
    x = np.random.default_rng(3).normal(size=(2, 3, 8, 8)).astype(np.float32)
    return layerwise.validate_port(torch_model, keras_model, x, port="pytorch-to-keras",
                                   **QUICK)


def _pool_padding(result):
    found = result.first_divergence
    assert found is not None and [c.code for c in found.causes] == ["pool_padding"], \
        result.render()
    assert (found.torch_module, found.keras_layer) == ("conv1", "conv1")
    assert "it gives Keras's (max abs 0)" in found.causes[0].text
    return found.causes[0]


@pytest.mark.parametrize("by_module, where", [(False, CALL), (True, "pad, ZeroPad2d")])
def test_zeros_before_a_max_pooling_against_same_are_named_with_the_minus_inf_fix(by_module,
                                                                                  where):
    cause = _pool_padding(_validated(
        torch_conv_pad_pool_conv((0, 1, 0, 1), padded_by_module=by_module),
        keras_conv_pool_conv()))
    assert (f"MaxPool2d padding: PyTorch pool (MaxPool2d) padding=0, after (0, 1) of zeros "
            f"({where}), Keras pool (MaxPooling2D) padding='same' (pads (0, 1) on this "
            "input)") in cause.text
    assert ("both pad (0, 1), PyTorch with zeros, Keras with edge values repeated (in a "
            "maximum, as padding with -inf)") in cause.detail
    assert "in Keras pad with ZeroPadding2D(((0, 1), (0, 1))) and pool with padding='valid'" \
        in cause.detail
    assert ("or keep Keras's 'same' and pad in PyTorch as it does: F.pad(x, (0, 1, 0, 1), "
            "value=float('-inf'))") in cause.detail


@pytest.mark.parametrize("value, caveat", [(None, ""), (MINUS_INF, " (zeros stand for")])
def test_a_padding_of_other_amounts_before_a_pooling_is_named_with_the_amounts(value, caveat):
    """F.pad(x, (1, 1, 1, 1)) then MaxPool2d(3, 2): (1, 1) where 'same' pads (0, 1) on 8."""
    cause = _pool_padding(_validated(torch_conv_pad_pool_conv(value=value),
                                     keras_conv_pool_conv()))
    fill = "zeros" if value is None else "constant -inf"
    assert f"padding=0, after (1, 1) of {fill} ({CALL})" in cause.text
    assert "PyTorch pads (1, 1) in all, Keras (0, 1): the windows sit otherwise" in cause.detail
    assert f"in Keras pad with ZeroPadding2D(1){caveat}" in cause.detail


def test_zeros_before_an_average_pooling_against_same_are_named():
    """Keras's 'same' on 8 pads (0, 1): its torch backend repeats the edge values there and
    averages them in; PyTorch averages the zeros in."""
    cause = _pool_padding(_validated(torch_conv_pad_pool_conv((0, 1, 0, 1), average=True),
                                     keras_conv_pool_conv(average=True)))
    assert "AvgPool2d padding: PyTorch pool (AvgPool2d) padding=0, after (0, 1) of zeros" \
        in cause.text
    assert cause.detail.endswith(
        "both pad (0, 1), PyTorch with zeros, Keras with edge values repeated: in Keras pad "
        "with ZeroPadding2D(((0, 1), (0, 1))) and pool with padding='valid'")


def test_minus_inf_before_a_max_pooling_against_keras_zeros_is_named():
    cause = _pool_padding(_validated(torch_conv_pad_pool_conv(value=MINUS_INF),
                                     keras_conv_pool_conv("valid", zero_padding=1)))
    assert "Keras pool (MaxPooling2D) padding='valid', after pad (ZeroPadding2D) (1, 1)" \
        in cause.text
    assert "given padding=(1, 1) (zeros, as Keras pads)" in cause.text
    assert "both pad (1, 1), PyTorch with constant -inf, Keras with zeros" in cause.detail


@pytest.mark.parametrize("torch_model, keras_model", [
    # TensorFlow's 'same' for a max pooling, as timm's MaxPool2dSame pads
    (lambda: torch_conv_pad_pool_conv((0, 1, 0, 1), MINUS_INF), lambda: keras_conv_pool_conv()),
    # the Keras ports the causes above give
    (lambda: torch_conv_pad_pool_conv(), lambda: keras_conv_pool_conv("valid", zero_padding=1)),
    (lambda: torch_conv_pad_pool_conv((0, 1, 0, 1)),
     lambda: keras_conv_pool_conv("valid", zero_padding=((0, 1), (0, 1)))),
    (lambda: torch_conv_pad_pool_conv((0, 1, 0, 1), average=True),
     lambda: keras_conv_pool_conv("valid", True, ((0, 1), (0, 1)))),
    (lambda: torch_conv_pad_pool_conv(average=True, padded_by_module=True),
     lambda: keras_conv_pool_conv("valid", True, 1)),
])
def test_ports_that_pad_the_pooling_alike_pass(torch_model, keras_model):
    result = _validated(torch_model(), keras_model())
    assert result.passed and result.first_divergence is None, result.render()


def _keras_pooled(layer, x: torch.Tensor) -> torch.Tensor:
    value = keras.ops.convert_to_numpy(layer(x.permute(0, 2, 3, 1).numpy()))
    return torch.from_numpy(np.asarray(value)).permute(0, 3, 1, 2)


@pytest.mark.parametrize("size, stride", [(8, 2), (7, 2), (8, 1)])
def test_keras_same_pooling_is_pytorchs_padded_as_the_cause_says(size, stride):
    """Measured on Keras 3.15.1's torch backend, on maps 1.5 below a standard normal:
    'same' max pooling is F.pad with -inf (zeros differ), 'same' average pooling leaves an
    even padding out of each average and repeats the edge values where one side has more."""
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 3, size, size)).astype(
        np.float32)) - 1.5
    total = max((-(-size // stride) - 1) * stride + 3 - size, 0)
    pads = (total // 2, total - total // 2) * 2
    maximum = _keras_pooled(keras.layers.MaxPooling2D(3, stride, "same"), x)
    assert torch.equal(nn.MaxPool2d(3, stride)(F.pad(x, pads, value=MINUS_INF)), maximum)
    assert not torch.equal(nn.MaxPool2d(3, stride)(F.pad(x, pads)), maximum)
    average = _keras_pooled(keras.layers.AveragePooling2D(3, stride, "same"), x)
    even = pads[0] == pads[1]
    ours = nn.AvgPool2d(3, stride, pads[0], count_include_pad=False)(x) if even else \
        nn.AvgPool2d(3, stride)(F.pad(x, pads, mode="replicate"))
    assert torch.allclose(ours, average, rtol=0, atol=1e-6)
    assert not torch.allclose(nn.AvgPool2d(3, stride)(F.pad(x, pads)), average, atol=1e-3)


class _InsideOnlyAveragePooling2D(keras.layers.AveragePooling2D):
    """'same' average pooling as Keras 3.15.1 computes it on TensorFlow and JAX, and
    keras-nightly 3.16.0.dev2026102704 on torch (measured, docs/port-validation.md): the
    positions 'same' pads left out of each average, where one side has more too."""

    def call(self, inputs):
        # What the stride leaves over, the larger half after, on 8 x 8 with 3, 2: (0, 1).
        pads = ((0, 0), (0, 1), (0, 1), (0, 0))
        valid = dict(pool_size=self.pool_size, strides=self.strides, padding="valid")
        total = keras.ops.average_pool(keras.ops.pad(inputs, pads), **valid)
        counts = keras.ops.average_pool(keras.ops.pad(keras.ops.ones_like(inputs), pads),
                                        **valid)
        return total / counts


def _keras_inside_only_pool_conv():
    keras_model = keras_conv_pool_conv(average=True)
    inputs = keras.Input((8, 8, 3))
    x = keras_model.get_layer("conv0")(inputs)
    x = _InsideOnlyAveragePooling2D(3, 2, padding="same", name="pool")(x)
    return keras.Model(inputs, keras_model.get_layer("conv1")(x))


def test_the_inside_only_keras_average_pooling_matches_tensorflows():
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 2)).astype(np.float32)
    inside = np.zeros((1, 4, 4, 2), np.float32)
    for i in range(4):
        for j in range(4):
            inside[0, i, j] = x[0, 2 * i:2 * i + 3, 2 * j:2 * j + 3].mean(axis=(0, 1))
    ours = keras.ops.convert_to_numpy(_InsideOnlyAveragePooling2D(3, 2, padding="same")(x))
    np.testing.assert_allclose(ours, inside, rtol=0, atol=1e-6)


@pytest.mark.parametrize("before, words", [
    ((0, 1, 0, 1), "both pad (0, 1), PyTorch with zeros, Keras with padded positions left "
                   "out"),
    (None, "PyTorch pads (1, 1) in all, Keras (0, 1)")])
def test_a_keras_average_that_leaves_the_uneven_padding_out_is_measured_as_such(before, words):
    """Where 'same' pads one side more, the rerun tries both ways Keras has averaged there
    (edge values repeated, Keras 3.15.1 on torch; padded positions left out elsewhere) and
    names the one that gives Keras's output."""
    torch_model = torch_conv_pad_pool_conv(before, average=True) if before else \
        torch_conv_pad_pool_conv(average=True)
    cause = _pool_padding(_validated(torch_model, _keras_inside_only_pool_conv()))
    assert "given padding=(0, 1) (padded positions left out, as Keras pads)" in cause.text
    assert words in cause.detail
