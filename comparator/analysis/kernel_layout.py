"""Which porting mistake turns PyTorch's weights into the ones a Keras layer holds.

The port validator finds a layer whose weights differ from PyTorch's; this module tries
the layout mistakes people make when they copy arrays by hand and names the one that
reproduces Keras's arrays exactly. Everything here is numpy, on arrays in the canonical
(PyTorch) layout: conv (out, in, kh, kw), conv1d (out, in, k), conv3d (out, in, kd, kh, kw),
depthwise (channels, 1, kh, kw), dense (out, in), the transposed convs (in, out, ...),
BatchNorm vectors (weight, bias, running_mean, running_var).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from comparator.analysis.tolerances import LAYOUT_MATCH_TOLERANCE
from comparator.zoo.portmaps import keras_layout_axes

_TRANSPOSE_HINT = ("PyTorch (out, in, kh, kw) goes to Keras (kh, kw, in, out) with "
                   "kernel.transpose(2, 3, 1, 0)")
_TRANSPOSE_1D_HINT = ("PyTorch's Conv1d (out, in, k) goes to Keras's Conv1D (k, in, out) with "
                      "kernel.transpose(2, 1, 0)")


@dataclass(frozen=True)
class LayoutMistake:
    code: str
    text: str  # what the Keras array is, in terms of PyTorch's
    fix: str  # how the array should have been ported


def _keras_axes(kind: str, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The permutation that takes a canonical kernel of this shape to Keras's layout."""
    axes = keras_layout_axes(kind, "weight")
    return axes if axes and len(axes) == len(shape) else None


# Each kind's PyTorch layer, its kernel's axes, and the Keras layer it is ported to.
_LAYERS = {"conv3d": ("Conv3d", ("out", "in", "kd", "kh", "kw"), "Conv3D"),
           "conv_transpose": ("ConvTranspose2d", ("in", "out", "kh", "kw"), "Conv2DTranspose"),
           "conv_transpose1d": ("ConvTranspose1d", ("in", "out", "k"), "Conv1DTranspose"),
           "conv_transpose3d": ("ConvTranspose3d", ("in", "out", "kd", "kh", "kw"),
                                "Conv3DTranspose"),
           "depthwise1d": ("Conv1d", ("channels", "1", "k"), "DepthwiseConv1D")}


def _transpose_hint(kind: str, axes: tuple[int, ...]) -> str:
    hints = {"conv": _TRANSPOSE_HINT, "conv1d": _TRANSPOSE_1D_HINT,
             "depthwise": "PyTorch (channels, 1, kh, kw) goes to Keras (kh, kw, channels, 1) "
                          "with kernel.transpose(2, 3, 0, 1)",
             "dense": "PyTorch's Linear weight is (out, in), Keras's Dense kernel (in, out): "
                      "copy weight.T"}
    if kind in hints or kind not in _LAYERS:
        return hints.get(kind, f"kernel.transpose{tuple(axes)} gives Keras's layout")
    torch_layer, names, keras_layer = _LAYERS[kind]
    keras_names = tuple(names[axis] for axis in axes)
    return (f"PyTorch's {torch_layer} ({', '.join(names)}) goes to Keras's {keras_layer} "
            f"({', '.join(keras_names)}) with kernel.transpose{tuple(axes)}")


def _kernel_candidates(kind: str, torch_kernel: np.ndarray):
    """(mistake, what Keras's kernel would read as, canonically) for each mistake."""
    t = torch_kernel
    if kind in ("conv", "depthwise") and t.ndim == 4:
        yield LayoutMistake(
            "spatial_axes_swapped", "the kernel's spatial axes are swapped (kh <-> kw)",
            f"{_TRANSPOSE_HINT}; np.transpose(kernel) or kernel.T reverses all four axes "
            "and swaps kh and kw"), t.transpose(0, 1, 3, 2)
        yield LayoutMistake(
            "flipped", "the kernel is flipped in both spatial axes (convolution vs "
                       "cross-correlation)",
            "both frameworks compute cross-correlation: copy the kernel without flipping "
            "it (no [::-1, ::-1], no scipy.signal.convolve2d convention)"), t[:, :, ::-1, ::-1]
        yield LayoutMistake(
            "spatial_axes_swapped_and_flipped",
            "the kernel is rotated (spatial axes swapped and flipped)",
            _TRANSPOSE_HINT), t.transpose(0, 1, 3, 2)[:, :, ::-1, ::-1]
    if kind == "conv" and t.ndim == 4:
        yield LayoutMistake(
            "channels_swapped", "the kernel's input and output channels are swapped",
            f"{_TRANSPOSE_HINT}; transpose(2, 3, 0, 1) gives (kh, kw, out, in)"), \
            t.transpose(1, 0, 2, 3)
    if kind == "conv1d" and t.ndim == 3:
        yield LayoutMistake(
            "flipped", "the kernel is flipped along its length (convolution vs "
                       "cross-correlation)",
            "both frameworks compute cross-correlation: copy the kernel without flipping "
            "it (no [..., ::-1])"), t[:, :, ::-1]
        yield LayoutMistake(
            "channels_swapped", "the kernel's input and output channels are swapped",
            f"{_TRANSPOSE_1D_HINT}; transpose(2, 0, 1) gives (k, out, in)"), \
            t.transpose(1, 0, 2)
    if kind == "conv3d" and t.ndim == 5:
        yield LayoutMistake(
            "channels_swapped", "the kernel's input and output channels are swapped",
            _transpose_hint(kind, (2, 3, 4, 1, 0))), t.transpose(1, 0, 2, 3, 4)
    axes = _keras_axes(kind, t.shape)
    if axes is not None:
        raw_shape = tuple(t.shape[axis] for axis in axes)
        yield LayoutMistake(
            "not_transposed", "PyTorch's kernel was reshaped to Keras's shape, not transposed",
            _transpose_hint(kind, axes)), t.reshape(raw_shape).transpose(np.argsort(axes))


def _same(value: np.ndarray, reference: np.ndarray) -> bool:
    if value.shape != reference.shape:
        return False
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    gap = float(np.max(np.abs(value.astype(np.float64) - reference))) if value.size else 0.0
    return gap <= LAYOUT_MATCH_TOLERANCE * scale if scale > 0 else gap == 0


def diagnose_kernel(kind: str, torch_kernel: np.ndarray,
                    keras_kernel: np.ndarray) -> LayoutMistake | None:
    """The layout mistake that makes Keras's kernel (read back into the canonical layout)
    out of PyTorch's, or None when none of them does (or the two are equal)."""
    torch_kernel, keras_kernel = np.asarray(torch_kernel), np.asarray(keras_kernel)
    if _same(keras_kernel, torch_kernel):
        return None
    for mistake, candidate in _kernel_candidates(kind, torch_kernel):
        if _same(keras_kernel, candidate):
            return mistake
    return None


def diagnose_arrays(names: tuple[str, ...], torch_arrays: list[np.ndarray],
                    keras_arrays: list[np.ndarray]) -> LayoutMistake | None:
    """Arrays of one layer copied into each other's places (BatchNorm's mean and variance,
    gamma and beta): each Keras array that differs equals another PyTorch array."""
    moved = []
    for i, (name, mine) in enumerate(zip(names, keras_arrays)):
        if _same(mine, torch_arrays[i]):
            continue
        source = next((j for j, theirs in enumerate(torch_arrays)
                       if j != i and _same(mine, theirs)), None)
        if source is None:
            return None
        moved.append(f"Keras's {_short(name)} holds PyTorch's {_short(names[source])}")
    if not moved:
        return None
    return LayoutMistake("arrays_swapped", "; ".join(moved),
                         "give set_weights the arrays in the Keras layer's own order "
                         "(BatchNormalization: gamma, beta, moving_mean, moving_variance)")


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


_SCALE_FIX = ("port the numbers in PyTorch's element order: channel c of PyTorch's tensor "
              "(tensor.reshape(-1)[c]) is Keras's weight's number c")


def diagnose_scale(torch_scale: np.ndarray, keras_scale: np.ndarray) -> LayoutMistake | None:
    """What a scale's Keras numbers (read back into PyTorch's shape) are of PyTorch's:
    the same numbers in another order, or one number in every channel (a layer scale's
    initial value, never ported); None otherwise."""
    mine, theirs = np.ravel(keras_scale), np.ravel(torch_scale)
    if mine.shape != theirs.shape or _same(mine, theirs) or mine.size < 2:
        return None
    if _same(mine, theirs[::-1]):
        return LayoutMistake("scale_order", "Keras's numbers are PyTorch's in reverse "
                             "order", _SCALE_FIX)
    if _same(np.sort(mine), np.sort(theirs)):
        return LayoutMistake("scale_order", "Keras's numbers are PyTorch's in another order",
                             _SCALE_FIX)
    if np.all(mine == mine[0]):
        return LayoutMistake("scale_unported", f"Keras's weight holds {mine[0]:.3g} in every "
                             "channel, where PyTorch's numbers differ (an initial value, "
                             "not ported)", _SCALE_FIX)
    return None


def diagnose_offset(torch_offset: np.ndarray, keras_offset: np.ndarray) -> LayoutMistake | None:
    """A tensor added to a value (a ViT's learned positions) or concatenated before one (its
    class token) whose Keras weight, read back into PyTorch's shape, holds one number
    throughout where PyTorch's numbers differ: its initial value, never ported. None
    otherwise."""
    mine, theirs = np.ravel(keras_offset), np.ravel(torch_offset)
    if mine.shape != theirs.shape or _same(mine, theirs) or mine.size < 2 or \
            not np.all(mine == mine[0]):
        return None
    return LayoutMistake("offset_unported", f"Keras's weight holds {mine[0]:.3g} throughout, "
                         "where PyTorch's numbers differ (an initial value, not ported)",
                         "port the tensor's numbers in PyTorch's element order: the same "
                         "array, leading axes of 1 aside")
