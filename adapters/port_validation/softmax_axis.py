"""A softmax (or log-softmax) that normalises over another axis in each framework, before a
layer that agrees on PyTorch's input: PyTorch's nn.Softmax or nn.LogSoftmax `dim` (or that
of a softmax function forward() calls, function_calls.py) names an axis of PyTorch's layout,
Keras's Softmax layer, Activation(softmax) or keras.ops.softmax `axis` one of Keras's. On
an image map PyTorch's dim=1 (channels of N, C, H, W) is Keras's axis=-1 (channels of
N, H, W, C), and PyTorch's dim=-1 (width) Keras's axis=2: the same number on both sides is
another axis. Where the layouts are the same (N, F; N, L, F sequences; a Keras model that
takes PyTorch's layout) the numbers are compared as they are.

A Keras softmax whose axis cannot be read (a Lambda layer, an Activation holding a lambda
or a function of the user's own: Keras 3.15.1's functional graph keeps each as one
operation) is measured instead: the one family and axis of keras.ops.softmax and
log_softmax that give its output on its input (_measured_setting).

Named (comparator/analysis/port_causes.py: softmax_axis) only where two reruns on the Keras
operation's input measure it: PyTorch's module gives another output than Keras's
operation, and given Keras's axis (in PyTorch's layout) it gives Keras's; and Keras's
operation over PyTorch's axis (in Keras's layout), the fix, gives PyTorch's. Measured on
torch 2.14.1 and Keras 3.15.1 (torch backend): a softmax over one axis agrees bit for bit
or within 6e-8 (4.8e-7 for a log-softmax up to 11) whichever layout holds it."""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
from torch import nn

from adapters.keras.backend import keras  # noqa: F401 (fixes the torch backend first)
from keras import layers, ops  # noqa: E402

from adapters.port_validation.graph import Failed, channels_move, numpy_of  # noqa: E402
from adapters.port_validation.function_calls import (  # noqa: E402
    called_function,
    module_kind,
)
from adapters.port_validation.operation_settings import (  # noqa: E402
    SOFTMAX_FAMILIES,
    confirmed_apart,
    keras_setting,
    partial_base,
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


class _MeasuredSetting(NamedTuple):
    """A softmax whose axis cannot be read off its Keras operation (a lambda, a function of
    the user's own), as keras_setting's answer: the family and axis (from 0) that reproduce
    the operation on its input; kind: "Activation(<lambda>), axis measured"; holder:
    "Activation(<lambda>)", the words the fix names."""

    family: object
    value: int
    default: None
    kind: str
    holder: str


def keras_softmax(op) -> bool:
    """Whether softmax_axis may measure this Keras operation (its input is then kept): a
    softmax whose axis can be read, or an operation whose function cannot be read, which
    may compute one."""
    return keras_setting(op, SOFTMAX_FAMILIES) is not None or _unread_function(op) is not None


def _unread_function(op):
    """The function of a Lambda layer, or of an Activation that holds no function of
    Keras's own (those are read: operation_settings.keras_setting); None for other
    operations."""
    if isinstance(op, layers.Lambda):
        return op.function
    if not isinstance(op, layers.Activation):
        return None
    base = partial_base(op.activation)
    return None if (getattr(base, "__module__", None) or "").startswith("keras.") else \
        op.activation


def softmax_axis(torch_modules: list[tuple[str, nn.Module]], keras_ops: list,
                 keras_inputs: dict, torch_shapes: dict) -> SoftmaxAxis | None:
    """The first softmax of one family on both sides (in running order) over another axis,
    where the reruns confirm it. torch_shapes: the shape of the input each PyTorch module
    was given in PyTorch's forward, which the Keras input moved to PyTorch's layout must
    have (a block that permutes its map to N, H, W, C before its softmax does not). A
    Keras operation whose function cannot be read counts as the softmax it is measured to
    be (_measured_setting), only where PyTorch's side holds a softmax."""
    if not any(isinstance(m, family.torch_classes) for _, m in torch_modules
               for family in SOFTMAX_FAMILIES):
        return None
    measured = {op.name: found for op in keras_ops
                if (found := _measured_setting(op, keras_inputs.get(op.name))) is not None}
    for family in SOFTMAX_FAMILIES:
        torch_side = [(n, m) for n, m in torch_modules if isinstance(m, family.torch_classes)]
        keras_side = [(op, found) for op in keras_ops
                      if (found := keras_setting(op, (family,)) or
                          _of_family(measured.get(op.name), family)) is not None]
        for (name, module), (op, keras_set) in zip(torch_side, keras_side):
            found = _measured(name, module, op, keras_set, keras_inputs.get(op.name),
                              torch_shapes.get(name))
            if found is not None:
                return found
    return None


def _of_family(found: _MeasuredSetting | None, family) -> _MeasuredSetting | None:
    return found if found is not None and found.family is family else None


def _measured_setting(op, keras_input) -> _MeasuredSetting | None:
    """The softmax an operation whose function cannot be read computes: the one family and
    axis of keras.ops.softmax and log_softmax that give its output on its input within
    SETTING_MATCH_TOLERANCE; None where no axis does (a ReLU, a softmax over two axes at
    once) or more than one does (axes of size 1, where a softmax gives ones)."""
    function = _unread_function(op)
    if function is None or keras_input is None or isinstance(keras_input, Failed):
        return None
    x = ops.convert_to_tensor(numpy_of(keras_input))
    try:
        with torch.no_grad():
            out = numpy_of(op(x))
    except Exception:  # it takes more than, or another, input: nothing measured
        return None
    if out.shape != tuple(x.shape):
        return None
    with torch.no_grad():
        fits = [(family, axis) for family in SOFTMAX_FAMILIES for axis in range(len(x.shape))
                if not diverges(metrics(out, numpy_of(_KERAS_FUNCTIONS[family.name](
                    x, axis=axis))), SETTING_MATCH_TOLERANCE)]
    if len(fits) != 1:
        return None
    family, axis = fits[0]
    holder = f"{type(op).__name__}({_function_name(function)})"
    return _MeasuredSetting(family, axis, None, f"{holder}, axis measured", holder)


def _function_name(function) -> str:
    """'<lambda>', 'my_softmax', 'functools.partial(my_softmax, ...)'."""
    base = partial_base(function)
    name = getattr(base, "__name__", type(base).__name__)
    return name if base is function else f"functools.partial({name}, ...)"


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
        module_kind(module),
        repr(module.dim),
        _axis_words(torch_dim, torch_shape, torch_letters),
        op.name, keras_set.kind, repr(keras_set.value), bool(keras_set.default),
        _axis_words(keras_axis, x.shape, keras_letters), swapped_dim, fix_axis,
        _fix(keras_set, fix_axis), not moved, apart.max_abs, left.max_abs, fixed.max_abs,
        called_function(module),
        isinstance(keras_set, _MeasuredSetting))


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
    """The Keras operation given PyTorch's axis, in the terms it is written in; for one
    whose axis was measured, the softmax its function computes ('the softmax inside
    Activation(<lambda>) axis=3')."""
    if isinstance(keras_set, _MeasuredSetting):
        what = "log-softmax" if keras_set.family.name == "LogSoftmax" else "softmax"
        return f"the {what} inside {keras_set.holder} axis={axis}"
    if keras_set.kind == "Softmax":  # Keras's Softmax layer
        return f"keras.layers.Softmax(axis={axis})"
    function = _KERAS_FUNCTIONS[keras_set.family.name].__name__
    if keras_set.kind.startswith("keras.ops."):
        return f"keras.ops.{function}(x, axis={axis})"
    return f"Activation(lambda t: keras.ops.{function}(t, axis={axis}))"
