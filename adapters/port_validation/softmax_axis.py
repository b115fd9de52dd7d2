"""A softmax (or log-softmax) that normalises over another axis in each framework, before a
layer that agrees on PyTorch's input: PyTorch's nn.Softmax or nn.LogSoftmax `dim` (or that
of a softmax function forward() calls, softmax_calls.py) names an axis of PyTorch's layout,
Keras's Softmax layer, Activation(softmax) or keras.ops.softmax `axis` one of Keras's. On
an image map PyTorch's dim=1 (channels of N, C, H, W) is Keras's axis=-1 (channels of
N, H, W, C), and PyTorch's dim=-1 (width) Keras's axis=2: the same number on both sides is
another axis. Where the layouts are the same (N, F; N, L, F sequences; a Keras model that
takes PyTorch's layout) the numbers are compared as they are.

Named (comparator/analysis/port_causes.py: softmax_axis) only where two reruns on the Keras
operation's input measure it: PyTorch's module gives another output than Keras's
operation, and given Keras's axis (in PyTorch's layout) it gives Keras's; and Keras's
operation over PyTorch's axis (in Keras's layout), the fix, gives PyTorch's. Measured on
torch 2.14.1 and Keras 3.15.1 (torch backend): a softmax over one axis agrees bit for bit
or within 6e-8 (4.8e-7 for a log-softmax up to 11) whichever layout holds it."""

from __future__ import annotations

import copy

import torch
from torch import nn

from adapters.keras.backend import keras  # noqa: F401 (fixes the torch backend first)
from keras import ops  # noqa: E402

from adapters.port_validation.graph import Failed, channels_move, numpy_of  # noqa: E402
from adapters.port_validation.softmax_calls import CALLED  # noqa: E402
from adapters.port_validation.operation_settings import (  # noqa: E402
    SOFTMAX_FAMILIES,
    confirmed_apart,
    keras_setting,
    run_torch_on_keras_values,
)
from comparator.analysis.port_causes import SoftmaxAxis  # noqa: E402
from comparator.analysis.tolerances import SETTING_MATCH_TOLERANCE  # noqa: E402
from comparator.analysis.validation import diverges, metrics  # noqa: E402

# Each family's Keras function, by which the fix is rerun over PyTorch's axis.
_KERAS_FUNCTIONS = {"Softmax": ops.softmax, "LogSoftmax": ops.log_softmax}
# The letters of each framework's layout where its channels move (PyTorch's first, Keras's
# last), by rank; where nothing moves, only N, F is known (a sequence may be N, L, F or a
# channels-first Keras model's N, C, L).
_MOVED_LAYOUTS = {3: ("NCL", "NLC"), 4: ("NCHW", "NHWC"), 5: ("NCDHW", "NDHWC")}
_SAME_LAYOUTS = {2: "NF"}


def keras_softmax(op) -> bool:
    """Whether softmax_axis may measure this Keras operation (its input is then kept)."""
    return keras_setting(op, SOFTMAX_FAMILIES) is not None


def softmax_axis(torch_modules: list[tuple[str, nn.Module]], keras_ops: list,
                 keras_inputs: dict, torch_shapes: dict) -> SoftmaxAxis | None:
    """The first softmax of one family on both sides (in running order) over another axis,
    where the reruns confirm it. torch_shapes: the shape of the input each PyTorch module
    was given in PyTorch's forward, which the Keras input moved to PyTorch's layout must
    have (a block that permutes its map to N, H, W, C before its softmax does not)."""
    for family in SOFTMAX_FAMILIES:
        torch_side = [(n, m) for n, m in torch_modules if isinstance(m, family.torch_classes)]
        keras_side = [(op, found) for op in keras_ops
                      if (found := keras_setting(op, (family,))) is not None]
        for (name, module), (op, keras_set) in zip(torch_side, keras_side):
            found = _measured(name, module, op, keras_set, keras_inputs.get(op.name),
                              torch_shapes.get(name))
            if found is not None:
                return found
    return None


def _measured(name: str, module: nn.Module, op, keras_set, keras_input,
              torch_shape) -> SoftmaxAxis | None:
    if keras_input is None or isinstance(keras_input, Failed):
        return None
    x = numpy_of(keras_input)
    rank, moved = x.ndim, channels_move(x)
    keras_axis = _one_axis(keras_set.value, rank)
    torch_dim = _torch_dim(module.dim, rank)
    if keras_axis is None or torch_dim is None or _in_torch_layout(x.shape, moved) != torch_shape:
        return None
    fix_axis = _to_keras_axis(torch_dim, rank, moved)
    if fix_axis == keras_axis:
        return None
    swapped_dim = _to_torch_axis(keras_axis, rank, moved)
    outputs = _outputs(module, swapped_dim, op, keras_set.family.name, x, fix_axis)
    if outputs is None:
        return None
    keras_out, torch_out, swapped_out, fixed_out = outputs
    confirmed = confirmed_apart(keras_out, torch_out, swapped_out)
    fixed = metrics(fixed_out, torch_out)
    if confirmed is None or diverges(fixed, SETTING_MATCH_TOLERANCE):
        return None
    apart, left = confirmed
    torch_letters, keras_letters = _layouts(rank, moved)
    return SoftmaxAxis(
        keras_set.family.name, name,
        keras_set.family.name if isinstance(module, CALLED) else type(module).__name__,
        repr(module.dim),
        _axis_words(torch_dim, torch_shape, torch_letters),
        op.name, keras_set.kind, repr(keras_set.value), bool(keras_set.default),
        _axis_words(keras_axis, x.shape, keras_letters), swapped_dim, fix_axis,
        _fix(keras_set, fix_axis), not moved, apart.max_abs, left.max_abs, fixed.max_abs,
        module.function if isinstance(module, CALLED) else "")


def _outputs(module: nn.Module, swapped_dim: int, op, family: str, x, fix_axis: int):
    """On the Keras operation's input (Keras's layout), all in Keras's layout: Keras's
    output, PyTorch's module's, the module's given swapped_dim (Keras's axis in PyTorch's
    layout), and Keras's softmax over fix_axis (PyTorch's dim in Keras's layout); None where
    they cannot be computed or their shapes differ."""
    swapped = copy.deepcopy(module)
    swapped.dim = swapped_dim
    try:
        with torch.no_grad():
            keras_out = numpy_of(op(ops.convert_to_tensor(x)))
            torch_out = run_torch_on_keras_values(module, x)
            swapped_out = run_torch_on_keras_values(swapped, x)
            fixed_out = numpy_of(_KERAS_FUNCTIONS[family](ops.convert_to_tensor(x),
                                                          axis=fix_axis))
    except Exception:  # an operation takes more than, or another, input: nothing measured
        return None
    if keras_out.shape != torch_out.shape:
        return None
    return keras_out, torch_out, swapped_out, fixed_out


def _one_axis(axis, rank: int) -> int | None:
    """Keras's axis from 0, where it is one axis (Keras's Softmax also takes several)."""
    if isinstance(axis, (list, tuple)):
        axis = axis[0] if len(axis) == 1 else None
    if not isinstance(axis, int) or not -rank <= axis < rank:
        return None
    return axis % rank


def _torch_dim(dim, rank: int) -> int | None:
    """PyTorch's dim from 0. dim=None is PyTorch's deprecated implicit choice
    (torch.nn.functional._get_softmax_dim): 0 on 0-, 1- and 3-D inputs, else 1 (measured:
    nn.Softmax() is dim=1 on 2-D and 4-D inputs and dim=0 on 3-D ones, bit for bit)."""
    if dim is None:
        return 0 if rank in (0, 1, 3) else 1
    return dim % rank if -rank <= dim < rank else None


def _to_keras_axis(axis: int, rank: int, moved: bool) -> int:
    """PyTorch's axis in Keras's layout: where the channels move last, channels (1) go to
    the last axis and the axes after them one place forward."""
    if not moved or axis == 0:
        return axis
    return rank - 1 if axis == 1 else axis - 1


def _to_torch_axis(axis: int, rank: int, moved: bool) -> int:
    """Keras's axis in PyTorch's layout (the inverse of _to_keras_axis)."""
    if not moved or axis == 0:
        return axis
    return 1 if axis == rank - 1 else axis + 1


def _in_torch_layout(keras_shape: tuple, moved: bool) -> tuple:
    if not moved:
        return tuple(keras_shape)
    return (keras_shape[0], keras_shape[-1], *keras_shape[1:-1])


def _layouts(rank: int, moved: bool) -> tuple[str | None, str | None]:
    if moved:
        return _MOVED_LAYOUTS.get(rank, (None, None))
    same = _SAME_LAYOUTS.get(rank)
    return same, same


def _axis_words(axis: int, shape: tuple, letters: str | None) -> str:
    """'axis 3 (W) of N, C, H, W (2, 4, 8, 8)', or 'axis 1 of (2, 5, 8)' where the letters
    are not known."""
    shape = tuple(int(n) for n in shape)
    if letters is None:
        return f"axis {axis} of {shape}"
    return f"axis {axis} ({letters[axis]}) of {', '.join(letters)} {shape}"


def _fix(keras_set, axis: int) -> str:
    """The Keras operation given PyTorch's axis, in the terms it is written in."""
    if keras_set.kind == "Softmax":  # Keras's Softmax layer
        return f"keras.layers.Softmax(axis={axis})"
    function = _KERAS_FUNCTIONS[keras_set.family.name].__name__
    if keras_set.kind.startswith("keras.ops."):
        return f"keras.ops.{function}(x, axis={axis})"
    return f"Activation(lambda t: keras.ops.{function}(t, axis={axis}))"
