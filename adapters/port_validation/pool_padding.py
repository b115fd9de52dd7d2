"""A pooling padded otherwise in each framework before a layer that agrees on PyTorch's
input: PyTorch's MaxPool or AvgPool (1d, 2d, 3d) pads `padding` on both sides, Keras's
MaxPooling or AveragePooling (1D, 2D, 3D) with 'same' pads what the stride leaves over, the
larger half after ((0, 1) for a window of 3, stride 2, on an even size: torchvision's ResNet
stem ported with 'same'). Named (comparator/analysis/port_causes.py: pool_padding) only
where it is measured: on the Keras pooling's own input, PyTorch's module gives another
output than Keras's, and the same pooling padded as Keras pads it gives Keras's. Where
'same' pads one side more, Keras 3.15.1's torch backend repeats the edge values there
(torch's 'replicate' padding) and pools without padding: a maximum as with PyTorch's -inf
padding, an average over the repeated values too (read from keras/src/backend/torch/nn.py,
and measured: equal)."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from adapters.keras.backend import keras  # noqa: F401 (fixes the torch backend first)
from keras import layers  # noqa: E402

from adapters.port_validation.function_calls import (  # noqa: E402
    called_function,
    module_kind,
)
from adapters.port_validation.graph import Failed, numpy_of, to_torch_values  # noqa: E402
from adapters.port_validation.operation_settings import confirmed_apart  # noqa: E402
from comparator.analysis.port_causes import OperationSetting, PoolRounding  # noqa: E402
from comparator.analysis.tolerances import SETTING_MATCH_TOLERANCE  # noqa: E402
from comparator.analysis.validation import diverges, metrics  # noqa: E402

# Keras's torch backend pads and pools each rank by the same code (max_pool, average_pool).
_POOLS = ((nn.MaxPool1d, layers.MaxPooling1D), (nn.AvgPool1d, layers.AveragePooling1D),
          (nn.MaxPool2d, layers.MaxPooling2D), (nn.AvgPool2d, layers.AveragePooling2D),
          (nn.MaxPool3d, layers.MaxPooling3D), (nn.AvgPool3d, layers.AveragePooling3D))


def pool_padding(torch_modules: list[tuple[str, nn.Module]], keras_ops: list,
                 keras_inputs: dict) -> OperationSetting | None:
    """The first pooling of one kind on both sides (in running order) that Keras pads
    otherwise than PyTorch, where the rerun confirms it."""
    for torch_class, keras_class in _POOLS:
        torch_side = [(n, m) for n, m in torch_modules
                      if isinstance(m, torch_class) and _plain(m)]
        keras_side = [op for op in keras_ops
                      if isinstance(op, keras_class) and op.padding == "same"
                      and op.data_format == "channels_last"]
        for (name, module), op in zip(torch_side, keras_side):
            found = _measured(name, module, op, keras_inputs.get(op.name))
            if found is not None:
                return found
    return None


def keras_pooling(op) -> bool:
    """Whether pool_padding may measure this Keras operation (its input is then kept)."""
    return isinstance(op, tuple(keras_class for _, keras_class in _POOLS))


def _plain(module: nn.Module) -> bool:
    """A pooling whose output Keras's can have: no ceil_mode, dilation, divisor or indices."""
    return not module.ceil_mode and set(_tuple(getattr(module, "dilation", 1), 1)) == {1} and \
        getattr(module, "divisor_override", None) is None and \
        not getattr(module, "return_indices", False)


def _measured(name: str, module: nn.Module, op, keras_input) -> OperationSetting | None:
    if keras_input is None or isinstance(keras_input, Failed):
        return None
    x = torch.from_numpy(to_torch_values(numpy_of(keras_input)).copy())
    rank = x.ndim - 2
    keras_pads = _same_pads(x.shape[2:], _tuple(op.pool_size, rank), _tuple(op.strides, rank))
    torch_pads = tuple((p, p) for p in _tuple(module.padding, rank))
    if keras_pads == torch_pads:
        return None
    try:
        with torch.no_grad():
            keras_out = to_torch_values(numpy_of(op(numpy_of(keras_input))))
            torch_out = module(x).numpy()
            padded = _padded_as_keras(module, x, keras_pads).numpy()
    except Exception:  # an input of another rank than the pooling's: nothing measured
        return None
    if keras_out.shape != torch_out.shape or keras_out.shape != padded.shape:
        return None
    confirmed = confirmed_apart(keras_out, torch_out, padded)
    if confirmed is None:
        return None
    apart, left = confirmed
    average = hasattr(module, "count_include_pad")
    return OperationSetting(
        "pool_padding", module_kind(module), "padding", name, module_kind(module),
        _pads_words(torch_pads), False, op.name, type(op).__name__,
        f"'same' (pads {_pads_words(keras_pads)} on this input)", False,
        _fix(module, torch_pads, average),
        _pads_words(keras_pads) + " (edge values repeated, as Keras pads)",
        apart.max_abs, left.max_abs, torch_function=called_function(module))


def _tuple(value, rank: int) -> tuple[int, ...]:
    return (value,) * rank if isinstance(value, int) else tuple(value)


def _same_pads(size, window, strides) -> tuple[tuple[int, int], ...]:
    """What Keras's 'same' pads on each spatial axis: what the stride leaves over, the
    larger half after."""
    pads = []
    for n, k, s in zip(size, window, strides):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def _padded_as_keras(module: nn.Module, x: torch.Tensor, pads) -> torch.Tensor:
    # F.pad takes the last axis's pair first
    padded = F.pad(x, tuple(p for pair in reversed(pads) for p in pair), mode="replicate")
    unpadded = copy.deepcopy(module)
    unpadded.padding = 0
    return unpadded(padded)


def _pads_words(pads) -> str:
    return str(pads[0]) if len(set(pads)) == 1 else str(tuple(pads))


def _fix(module: nn.Module, torch_pads, average: bool) -> str:
    padding = torch_pads[0][0] if len(set(torch_pads)) == 1 else \
        tuple(p for p, _ in torch_pads)
    if average and not module.count_include_pad:
        return "no Keras pooling layer pads both sides and averages only the values inside"
    exact = "" if average else (" (zeros stand for PyTorch's -inf padding where the input is "
                                "not negative, as after a ReLU)")
    return (f"pad with ZeroPadding{len(torch_pads)}D({padding!r}){exact} and pool with "
            f"padding='valid'")



def pool_rounding(torch_modules: list[tuple[str, nn.Module]], keras_ops: list,
                  keras_inputs: dict) -> PoolRounding | None:
    """The first pooling of one kind that PyTorch rounds up (ceil_mode=True: GoogLeNet's and
    SqueezeNet's) where Keras's, with 'valid', rounds down, where the rerun confirms it: on
    the Keras pooling's input, PyTorch's module gives another output size, and given
    ceil_mode=False it gives Keras's output."""
    for torch_class, keras_class in _POOLS:
        torch_side = [(n, m) for n, m in torch_modules
                      if isinstance(m, torch_class) and m.ceil_mode]
        keras_side = [op for op in keras_ops if isinstance(op, keras_class)
                      and op.padding == "valid" and op.data_format == "channels_last"]
        for (name, module), op in zip(torch_side, keras_side):
            found = _rounding_measured(name, module, op, keras_inputs.get(op.name))
            if found is not None:
                return found
    return None


def _rounding_measured(name: str, module: nn.Module, op, keras_input) -> PoolRounding | None:
    if keras_input is None or isinstance(keras_input, Failed):
        return None
    x = torch.from_numpy(to_torch_values(numpy_of(keras_input)).copy())
    floor = copy.deepcopy(module)
    floor.ceil_mode = False
    try:
        with torch.no_grad():
            keras_out = to_torch_values(numpy_of(op(numpy_of(keras_input))))
            torch_out, redone = module(x).numpy(), floor(x).numpy()
    except Exception:  # an input of another rank than the pooling's: nothing measured
        return None
    if torch_out.shape == keras_out.shape or redone.shape != keras_out.shape:
        return None
    left = metrics(keras_out, redone)
    if diverges(left, SETTING_MATCH_TOLERANCE):
        return None
    rank = x.ndim - 2
    window, strides = _tuple(module.kernel_size, rank), _tuple(module.stride, rank)
    pads = _tuple(module.padding, rank)
    extra = tuple((out - 1) * s + k - (n + 2 * p) for out, s, k, n, p in
                  zip(torch_out.shape[2:], strides, window, x.shape[2:], pads))
    return PoolRounding(name, module_kind(module), op.name, type(op).__name__,
                        tuple(torch_out.shape[2:]), tuple(keras_out.shape[2:]), left.max_abs,
                        _rounding_fix(module, pads, extra))


def _rounding_fix(module: nn.Module, pads, extra) -> str:
    """Keras's pooling has no ceil_mode: the padding that gives PyTorch's windows."""
    if hasattr(module, "count_include_pad"):
        return ("no Keras pooling layer pads the end of an axis and averages a window there "
                "over the values inside only")
    sides = tuple((p, p + e) for p, e in zip(pads, extra))
    padding = sides[0] if len(sides) == 1 else sides
    return (f"pad with ZeroPadding{len(sides)}D({padding!r}) (zeros stand for PyTorch's -inf "
            "where the input is not negative, as after a ReLU) and pool with padding='valid'")
