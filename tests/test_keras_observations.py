"""The Keras adapter's BatchNormalization observations on torch square each input into one
reused scratch buffer rather than a fresh tensor: the per-channel means of squares must be
bitwise what keras.ops computes, whatever order of sizes the layers come in."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adapters.keras.hooks import hooks_for
from adapters.keras.backend import keras


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_means_of_squares_are_bitwise_those_of_keras_ops(dtype):
    hooks = hooks_for("torch")
    generator = torch.Generator().manual_seed(0)
    # Growing, shrinking and growing again: a smaller tensor reuses the front of the buffer.
    for shape, axes in [((4, 6, 6, 8), (0, 1, 2)), ((4, 12, 12, 16), (0, 1, 2)),
                        ((2, 3, 3, 5), (0, 1, 2)), ((3, 7), (0,)), ((5, 9, 9, 32), (0, 1, 2))]:
        tensor = torch.randn(shape, generator=generator, dtype=dtype) * 3 + 1
        expected = keras.ops.mean(keras.ops.square(tensor), axes)
        observed = hooks.mean_of_squares(tensor, axes)
        assert observed.dtype == expected.dtype
        np.testing.assert_array_equal(observed.numpy(), expected.numpy())


def test_the_scratch_buffer_is_kept_and_grown_only_when_too_small():
    hooks = hooks_for("torch")
    hooks.mean_of_squares(torch.ones(4, 5, 5, 8), (0, 1, 2))
    (first,) = hooks._squares.values()
    hooks.mean_of_squares(torch.ones(2, 5, 5, 8), (0, 1, 2))
    assert next(iter(hooks._squares.values())) is first
    hooks.mean_of_squares(torch.ones(8, 5, 5, 8), (0, 1, 2))
    (grown,) = hooks._squares.values()
    assert grown is not first and grown.numel() == 8 * 5 * 5 * 8


def test_a_non_contiguous_input_gives_the_same_means():
    """A channels-first tensor seen through a channels-last view, as Keras on torch hands a
    convolution's output to BatchNormalization: the squares keep the tensor's memory order,
    so the reduction adds in the same order as for torch.square's result."""
    hooks = hooks_for("torch")
    channels_first = torch.randn(3, 8, 5, 5, generator=torch.Generator().manual_seed(1))
    view = channels_first.permute(0, 2, 3, 1)
    assert not view.is_contiguous()
    expected = keras.ops.mean(keras.ops.square(view), (0, 1, 2))
    np.testing.assert_array_equal(hooks.mean_of_squares(view, (0, 1, 2)).numpy(),
                                  expected.numpy())


def test_a_tensor_with_gaps_is_squared_as_keras_ops_does():
    """A strided slice does not fill its memory: it is squared into a fresh tensor."""
    hooks = hooks_for("torch")
    sliced = torch.randn(4, 6, 6, 8, generator=torch.Generator().manual_seed(2))[:, ::2]
    expected = keras.ops.mean(keras.ops.square(sliced), (0, 1, 2))
    np.testing.assert_array_equal(hooks.mean_of_squares(sliced, (0, 1, 2)).numpy(),
                                  expected.numpy())
    assert not hooks._squares
