"""Weight porting between the canonical layout (torchvision names, PyTorch
array layouts) and Keras layers, by structure.

A port plan names, for every canonical module, the Keras layer that receives
it and how its arrays are laid out. The plan is derived from the module names
(block and layer numbers, by the family's namer in comparator/zoo/<family>.py),
never from the order in which layers happen to be listed, and it must cover both
models completely.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from comparator.errors import UsageError
from comparator.zoo import recurrent_layout
from comparator.zoo.head import HEAD_LAYERS
from comparator.zoo.spec import LayerNamer

BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var")


@dataclass(frozen=True)
class LayerPort:
    module: str
    keras_layer: str
    kind: str  # "conv", "dense" or "bn"
    canonical_names: tuple[str, ...]




def _kind(module: str, names: list[str], arrays: dict[str, np.ndarray]) -> str:
    suffixes = {n[len(module) + 1:] for n in names}
    if suffixes == set(BN_SUFFIXES):
        return "bn"
    ndim = arrays[f"{module}.weight"].ndim
    if ndim == 4:
        return "conv"
    if ndim == 2:
        return "dense"
    raise UsageError(f"cannot port module {module!r}: weight of rank {ndim}")


def _ordered(module: str, kind: str, present: set[str]) -> tuple[str, ...]:
    suffixes = BN_SUFFIXES if kind == "bn" else ("weight", "bias")
    return tuple(f"{module}.{s}" for s in suffixes if f"{module}.{s}" in present)


def port_plan(namer: LayerNamer, arrays: dict[str, np.ndarray]) -> list[LayerPort]:
    """Every canonical module with the Keras layer it maps to (the namer is a zoo
    spec's `layer_names`)."""
    modules: dict[str, list[str]] = {}
    for name in arrays:
        modules.setdefault(name.rsplit(".", 1)[0], []).append(name)
    plan = []
    for module, names in modules.items():
        named = HEAD_LAYERS.get(module) or namer(module)
        if named is None:
            raise UsageError(f"no Keras layer corresponds to PyTorch module {module!r}")
        keras_name, kind = named if isinstance(named, tuple) else (named, None)
        kind = kind or _kind(module, names, arrays)
        plan.append(LayerPort(module, keras_name, kind, _ordered(module, kind, set(names))))
    return plan


# Each kind's weight in Keras's layout, as a permutation of the canonical axes.
_KERAS_AXES = {"conv": (2, 3, 1, 0),  # O,I,H,W -> H,W,I,O
               # ConvTranspose2d I,O,H,W -> Conv2DTranspose H,W,O,I: the same permutation,
               # no flip (measured against torch 2.14.1 on Keras 3.15.1's torch backend; so
               # are the 1-D and 3-D ones below).
               "conv_transpose": (2, 3, 1, 0),
               "conv1d": (2, 1, 0),  # O,I,K -> K,I,O
               "conv_transpose1d": (2, 1, 0),  # I,O,K -> K,O,I
               "conv3d": (2, 3, 4, 1, 0),  # O,I,D,H,W -> D,H,W,I,O
               "conv_transpose3d": (2, 3, 4, 1, 0),  # I,O,D,H,W -> D,H,W,O,I
               "depthwise": (2, 3, 0, 1),  # C,1,H,W -> H,W,C,1
               "depthwise1d": (2, 0, 1),  # C,1,K -> K,C,1
               "dense": (1, 0)}  # out,in -> in,out


# Tensors held outside any layer, which Keras holds in its own shape, by element order.
_BY_ELEMENT_ORDER = ("scale:", "offset:", "prefix:")


def keras_layout_axes(kind: str, name: str) -> tuple[int, ...] | None:
    """The permutation of a canonical array's axes that gives its Keras layout, for
    to_keras_layout's kinds: () where the layouts are the same, None where no permutation
    does (a flatten_dense kernel, whose rows are reordered; a recurrent layer's arrays; a
    scale, reshaped)."""
    if kind in recurrent_layout.RECURRENT_KINDS or kind.startswith(_BY_ELEMENT_ORDER):
        return None
    if name.rpartition(".")[2] != "weight":  # "weight" alone: the model is the layer
        return ()
    if ":" in kind:  # flatten_dense:C,H,W, depthwise:M, depthwise1d:M, prelu:SHAPE reshape
        return None
    return _KERAS_AXES.get(kind, ())


def to_keras_layout(kind: str, name: str, array: np.ndarray,
                    into: np.ndarray | None = None) -> np.ndarray:
    """One canonical (PyTorch-layout) array in the layout of the Keras layer's weight.

    Kinds: "conv" (O,I,H,W -> H,W,I,O), "conv_transpose" (I,O,H,W -> H,W,O,I), "conv1d"
    (O,I,K -> K,I,O), "conv_transpose1d" (I,O,K -> K,O,I), "conv3d" (O,I,D,H,W ->
    D,H,W,I,O), "conv_transpose3d" (I,O,D,H,W -> D,H,W,O,I), "depthwise" (C,1,H,W ->
    H,W,C,1: depth multiplier 1, as in MobileNetV2), "depthwise:M" (C*M,1,H,W -> H,W,C,M:
    both frameworks order a channel's M outputs together), "depthwise1d" and "depthwise1d:M"
    (C*M,1,K -> K,C,M), "prelu:SHAPE" (PReLU's (C,) or
    (1,) -> Keras's alpha, SHAPE, one axis not 1 at most), "dense" (out,in -> in,out),
    "flatten_dense:C,H,W" (a dense layer fed by a flattened C,H,W map: its input rows are
    reordered from channels-first to channels-last flattening), "scale:SHAPE" (a tensor of
    PyTorch's SHAPE, a ConvNeXt block's layer_scale (C, 1, 1), held in Keras as `into`'s
    shape, (C,) without it, by element order), "offset:SHAPE" (the same for a tensor
    added to a value: a ViT's learned positions (1, L, D)), "prefix:SHAPE" (the same for a
    class token, concatenated before the tokens), "bn" and the other
    normalisations (vectors, unchanged), and "lstm", "gru" and "rnn"
    (comparator/zoo/recurrent_layout.py; `into`, the Keras weight now, for a GRU bias, one
    row of Keras's).
    """
    if kind in recurrent_layout.RECURRENT_KINDS:
        return recurrent_layout.to_keras(kind, name, array, into)
    if kind.startswith(_BY_ELEMENT_ORDER):
        return np.ascontiguousarray(array.reshape(-1 if into is None else into.shape))
    axes = keras_layout_axes(kind, name)
    if axes:
        return np.ascontiguousarray(array.transpose(axes))
    if axes is None and not kind.startswith("flatten_dense:"):
        return _reshaped_to_keras(kind, array)
    if axes is None:
        c, h, w = _kind_setting(kind)
        out = array.shape[0]
        if array.shape[1] != c * h * w:
            raise UsageError(f"{name} has {array.shape[1]} inputs, not {c}x{h}x{w}")
        # Keras flattens (h, w, c); torch flattens (c, h, w).
        return np.ascontiguousarray(
            array.reshape(out, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, out))
    return array


def from_keras_layout(kind: str, name: str, array: np.ndarray) -> np.ndarray:
    """The inverse of to_keras_layout: a round trip returns the array bit for bit."""
    if kind in recurrent_layout.RECURRENT_KINDS:
        return recurrent_layout.from_keras(kind, name, array)
    if kind.startswith(_BY_ELEMENT_ORDER):
        return np.ascontiguousarray(array.reshape(_kind_setting(kind)))
    axes = keras_layout_axes(kind, name)
    if axes:  # the inverse permutation
        return np.ascontiguousarray(array.transpose(np.argsort(axes)))
    if axes is None and not kind.startswith("flatten_dense:"):
        return _reshaped_from_keras(kind, array)
    if axes is None:
        c, h, w = _kind_setting(kind)
        out = array.shape[1]
        return np.ascontiguousarray(
            array.reshape(h, w, c, out).transpose(3, 2, 0, 1).reshape(out, c * h * w))
    return array


def _kind_setting(kind: str) -> tuple[int, ...]:
    """The numbers after a kind's colon: flatten_dense's C,H,W, depthwise's M, prelu's
    SHAPE."""
    return tuple(int(v) for v in kind.split(":", 1)[1].split(",") if v)


def _reshaped_to_keras(kind: str, array: np.ndarray) -> np.ndarray:
    """A depthwise kernel with a depth multiplier, or a PReLU's slopes, in Keras's shape."""
    if kind.startswith("depthwise"):
        (multiplier,) = _kind_setting(kind)
        if array.shape[0] % multiplier:
            raise ValueError(f"{array.shape[0]} output channels are not a multiple of "
                             f"{multiplier}")
        moved = array.transpose(_KERAS_AXES[kind.partition(":")[0]])
        return np.ascontiguousarray(moved.reshape(
            *moved.shape[:-2], array.shape[0] // multiplier, multiplier))
    return np.ascontiguousarray(array.reshape(_kind_setting(kind)))  # prelu:SHAPE


def _reshaped_from_keras(kind: str, array: np.ndarray) -> np.ndarray:
    if kind.startswith("depthwise"):
        *spatial, channels, multiplier = array.shape
        axes = np.argsort(_KERAS_AXES[kind.partition(":")[0]])
        return np.ascontiguousarray(
            array.reshape(*spatial, channels * multiplier, 1).transpose(axes))
    return np.ascontiguousarray(array.reshape(-1))  # prelu:SHAPE
