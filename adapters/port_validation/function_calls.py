"""The operations PyTorch's forward() computes with a function rather than a module,
seen through a TorchFunctionMode while operation_settings.torch_calls runs the model:
forward hooks see modules only, and ported code calls F.leaky_relu(x, 0.2), F.interpolate
or F.max_pool2d in forward() all the time. Each call stands in the running order as the
module that computes the same (an instance of that module's class, so the families of
operation_settings.py, pool_padding.py and softmax_axis.py match it as they match the
module), marked Called, with `function` the function's name in torch.

_FUNCTIONS is the table: each function, its name, and the builder of its stand-in, whose
parameters are the function's after its input (names and defaults; F.pad's builder, which
needs the input's rank, takes the input too, as `input`), so the call's positional and
keyword arguments bind to them as to the function; a builder returns None for a call no
module computes (F.interpolate with antialias=True, a softmax over a named dimension, an
F.pad that reaches the channel axis), and that call is not recorded.

Measured on torch 2.14.1 (tests/test_validate_port_functional.py keeps it): the mode sees
each call once, the function forward() wrote (F.relu6, not the hardtanh it runs; F.upsample
and F.upsample_bilinear arrive as the F.interpolate they call, and are named so); F.softmax,
F.leaky_relu, F.elu, F.relu, F.relu6, F.hardtanh and F.interpolate arrive with their input
alone positional and every other argument as a keyword, F.max_pool1d/2d/3d with their input
and kernel size positional, F.pad with its input and pad positional and mode and value as
keywords (the torch._C._nn.pad it runs is not seen; torch.constant_pad_nd, called as
itself, is seen as itself, its input, pad and value positional), F.adaptive_avg_pool2d/3d
and F.adaptive_max_pool1d/2d/3d with their input and output size positional (the max ones
return_indices as a keyword; with return_indices=True the call is
adaptive_max_poolNd_with_indices, not in the table), the functions torch implements in C
(F.gelu, F.softplus, F.avg_pool1d/2d/3d, F.adaptive_avg_pool1d, the in-place
F.leaky_relu_, F.elu_, F.hardtanh_, torch.relu_), torch.clamp, torch.clip,
torch.clamp_min and tensor methods (x.clamp(0, 6), x.clamp(min=0), x.clamp_) as written;
F.relu_ is torch.relu_, F.avg_pool1d is torch.avg_pool1d and F.adaptive_avg_pool1d is
torch.adaptive_avg_pool1d (one function each, named once). A clamp stands in as ReLU
(from 0 up), ReLU6 (0 to 6) or Hardtanh (between other numbers) only: a tensor bound, a
maximum alone or another minimum alone is no activation's, and is not recorded. The call
a recorded module's own forward makes (nn.LeakyReLU's F.leaky_relu, nn.ReflectionPad2d's
F.pad) is seen too, and torch_calls leaves it out: the module is recorded. Each stand-in
gives its call's output bit for bit."""

from __future__ import annotations

import functools
import inspect

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode


class Called:
    """Marks a module that stands in for a function call; `function` names the function
    as torch does ("torch.nn.functional.leaky_relu")."""

    function: str = ""


class CalledSoftmax(Called, nn.Softmax):
    """A softmax forward() computes by calling `function`, with the dim and dtype it was
    given (nn.Softmax takes no dtype)."""

    def __init__(self, dim, function: str, dtype=None):
        super().__init__(dim)
        self.function, self.dtype = function, dtype

    def forward(self, x):
        return F.softmax(x, self.dim, dtype=self.dtype)


class CalledLogSoftmax(Called, nn.LogSoftmax):
    """A log-softmax forward() computes by calling `function`, as CalledSoftmax."""

    def __init__(self, dim, function: str, dtype=None):
        super().__init__(dim)
        self.function, self.dtype = function, dtype

    def forward(self, x):
        return F.log_softmax(x, self.dim, dtype=self.dtype)


@functools.cache
def _called(module_class: type) -> type:
    """The stand-in class for a module class: an instance of both it and Called."""
    return type(f"Called{module_class.__name__}", (Called, module_class),
                {"__module__": __name__})


def module_kind(module: nn.Module) -> str:
    """The module's class name, or for a stand-in the class it stands in as ("LeakyReLU")."""
    kind = next(c for c in type(module).__mro__ if not issubclass(c, Called))
    return kind.__name__


def called_function(module: nn.Module) -> str:
    """The function a stand-in computes, as torch names it; "" for a module of the model."""
    return module.function if isinstance(module, Called) else ""


# Builders: each takes the function's arguments after its input. An in-place call gives
# the same values as the call without it, and the stand-in must leave the values the
# reruns give it untouched: no stand-in works in place.

def _softmax(module_class):
    def build(dim=None, _stacklevel=3, dtype=None):  # F.softmax's own parameters
        return _along(module_class, dim, dtype)
    return build


def _softmax_on(module_class):
    def build(dim, dtype=None):  # torch.softmax, x.softmax, torch.special.softmax
        return _along(module_class, dim, dtype)
    return build


def _along(module_class, dim, dtype):
    # a named dimension (a str) has no axis to measure
    return module_class(dim, "", dtype) if dim is None or isinstance(dim, int) else None


def _leaky_relu(negative_slope=0.01, inplace=False):
    return _called(nn.LeakyReLU)(negative_slope)


def _leaky_relu_(negative_slope=0.01):
    return _leaky_relu(negative_slope)


def _elu(alpha=1.0, inplace=False):
    return _called(nn.ELU)(alpha)


def _elu_(alpha=1.0):
    return _elu(alpha)


def _gelu(approximate="none"):
    return _called(nn.GELU)(approximate)


def _relu(inplace=False):
    return _called(nn.ReLU)()


def _relu_plain():  # torch.relu, x.relu(), the in-place relu_: no inplace argument
    return _relu()


def _relu6(inplace=False):
    return _called(nn.ReLU6)()


def _hardtanh(min_val=-1.0, max_val=1.0, inplace=False):
    return _called(nn.Hardtanh)(min_val, max_val)


def _hardtanh_(min_val=-1.0, max_val=1.0):
    return _hardtanh(min_val, max_val)


def _softplus(beta=1.0, threshold=20.0):
    return _called(nn.Softplus)(beta, threshold)


def _interpolate(size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None, antialias=False):
    # nn.Upsample takes a size or a scale factor, never both, and has no antialias
    if antialias or (size is None) == (scale_factor is None):
        return None
    return _called(nn.Upsample)(size, scale_factor, mode, align_corners,
                                recompute_scale_factor)


def _avg_pool(rank: int):
    module_class = getattr(nn, f"AvgPool{rank}d")

    def build(kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
              divisor_override=None):
        if rank == 1:  # neither F.avg_pool1d nor nn.AvgPool1d takes a divisor
            return None if divisor_override is not None else _called(module_class)(
                kernel_size, stride, padding, ceil_mode, count_include_pad)
        return _called(module_class)(kernel_size, stride, padding, ceil_mode,
                                     count_include_pad, divisor_override)
    return build


_PAD_KINDS = {"constant": "ConstantPad", "reflect": "ReflectionPad",
              "replicate": "ReplicationPad", "circular": "CircularPad"}


def _pad(input, pad, mode="constant", value=None):  # F.pad's parameters, input too
    """The padding module of the mode and of as many axes as `pad` has pairs. Those
    modules pad spatial axes: a pad that reaches the channel or batch axis (F.pad pads the
    last axes, three pairs on N, C, H, W reach C) stands in as none."""
    rank = len(pad) // 2
    if len(pad) % 2 or not 1 <= rank <= min(3, input.ndim - 2) or mode not in _PAD_KINDS:
        return None
    if mode == "constant" and not value:  # nn.ZeroPadNd pads as F.pad's default value
        return _called(getattr(nn, f"ZeroPad{rank}d"))(tuple(pad))
    kind = _called(getattr(nn, f"{_PAD_KINDS[mode]}{rank}d"))
    return kind(tuple(pad), value) if mode == "constant" else kind(tuple(pad))


def _max_pool(rank: int):
    module_class = getattr(nn, f"MaxPool{rank}d")

    def build(kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
              return_indices=False):
        # with indices the call returns a pair and is max_poolNd_with_indices: unseen here
        return None if return_indices else _called(module_class)(
            kernel_size, stride, padding, dilation, ceil_mode=ceil_mode)
    return build


def _adaptive_pool(kind: str, rank: int):
    module_class = getattr(nn, f"Adaptive{kind}Pool{rank}d")
    if kind == "Avg":
        return lambda output_size: _called(module_class)(output_size)

    def build(output_size, return_indices=False):
        # with indices the call is adaptive_max_poolNd_with_indices: unseen here
        return None if return_indices else _called(module_class)(output_size)
    return build


def _constant_pad_nd(input, pad, value=0):  # torch.constant_pad_nd's parameters
    return _pad(input, pad, "constant", value)


def _clamp(min=None, max=None):
    """A clamp at numbers, as the activation that computes it: ReLU from 0 up, ReLU6 from
    0 to 6, Hardtanh between two others; a tensor bound, a maximum alone or a minimum other
    than 0 alone is no activation's."""
    if not all(bound is None or _number(bound) for bound in (min, max)) or min is None:
        return None
    if max is None:
        return _called(nn.ReLU)() if min == 0 else None
    if min == 0 and max == 6:
        return _called(nn.ReLU6)()
    return _called(nn.Hardtanh)(float(min), float(max)) if min < max else None


def _clamp_min(min):
    return _clamp(min)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# Each function as torch names it, and the builder of the module it stands in as.
_FUNCTIONS = {
    F.softmax: ("torch.nn.functional.softmax", _softmax(CalledSoftmax)),
    F.log_softmax: ("torch.nn.functional.log_softmax", _softmax(CalledLogSoftmax)),
    torch.softmax: ("torch.softmax", _softmax_on(CalledSoftmax)),
    torch.log_softmax: ("torch.log_softmax", _softmax_on(CalledLogSoftmax)),
    torch.Tensor.softmax: ("torch.Tensor.softmax", _softmax_on(CalledSoftmax)),
    torch.Tensor.log_softmax: ("torch.Tensor.log_softmax", _softmax_on(CalledLogSoftmax)),
    torch.special.softmax: ("torch.special.softmax", _softmax_on(CalledSoftmax)),
    torch.special.log_softmax: ("torch.special.log_softmax", _softmax_on(CalledLogSoftmax)),
    F.leaky_relu: ("torch.nn.functional.leaky_relu", _leaky_relu),
    F.leaky_relu_: ("torch.nn.functional.leaky_relu_", _leaky_relu_),
    F.elu: ("torch.nn.functional.elu", _elu),
    F.elu_: ("torch.nn.functional.elu_", _elu_),
    F.gelu: ("torch.nn.functional.gelu", _gelu),
    F.relu: ("torch.nn.functional.relu", _relu),
    F.relu_: ("torch.nn.functional.relu_", _relu_plain),  # also torch.relu_
    torch.relu: ("torch.relu", _relu_plain),
    torch.Tensor.relu: ("torch.Tensor.relu", _relu_plain),
    torch.Tensor.relu_: ("torch.Tensor.relu_", _relu_plain),
    F.relu6: ("torch.nn.functional.relu6", _relu6),
    F.hardtanh: ("torch.nn.functional.hardtanh", _hardtanh),
    F.hardtanh_: ("torch.nn.functional.hardtanh_", _hardtanh_),
    F.softplus: ("torch.nn.functional.softplus", _softplus),
    F.interpolate: ("torch.nn.functional.interpolate", _interpolate),
    F.avg_pool1d: ("torch.nn.functional.avg_pool1d", _avg_pool(1)),  # also torch.avg_pool1d
    F.avg_pool2d: ("torch.nn.functional.avg_pool2d", _avg_pool(2)),
    F.avg_pool3d: ("torch.nn.functional.avg_pool3d", _avg_pool(3)),
    F.max_pool1d: ("torch.nn.functional.max_pool1d", _max_pool(1)),
    F.max_pool2d: ("torch.nn.functional.max_pool2d", _max_pool(2)),
    F.max_pool3d: ("torch.nn.functional.max_pool3d", _max_pool(3)),
    F.pad: ("torch.nn.functional.pad", _pad),
    torch.constant_pad_nd: ("torch.constant_pad_nd", _constant_pad_nd),
    F.adaptive_avg_pool1d: ("torch.nn.functional.adaptive_avg_pool1d",  # torch.'s too
                            _adaptive_pool("Avg", 1)),
    F.adaptive_avg_pool2d: ("torch.nn.functional.adaptive_avg_pool2d", _adaptive_pool("Avg", 2)),
    F.adaptive_avg_pool3d: ("torch.nn.functional.adaptive_avg_pool3d", _adaptive_pool("Avg", 3)),
    F.adaptive_max_pool1d: ("torch.nn.functional.adaptive_max_pool1d", _adaptive_pool("Max", 1)),
    F.adaptive_max_pool2d: ("torch.nn.functional.adaptive_max_pool2d", _adaptive_pool("Max", 2)),
    F.adaptive_max_pool3d: ("torch.nn.functional.adaptive_max_pool3d", _adaptive_pool("Max", 3)),
    torch.clamp: ("torch.clamp", _clamp),
    torch.clip: ("torch.clip", _clamp),
    torch.clamp_min: ("torch.clamp_min", _clamp_min),
    torch.Tensor.clamp: ("torch.Tensor.clamp", _clamp),
    torch.Tensor.clip: ("torch.Tensor.clip", _clamp),
    torch.Tensor.clamp_: ("torch.Tensor.clamp_", _clamp),
    torch.Tensor.clamp_min: ("torch.Tensor.clamp_min", _clamp_min),
}


_signature = functools.cache(inspect.signature)


class FunctionCalls(TorchFunctionMode):
    """Hands each call of a function in _FUNCTIONS that a module computes to
    `seen(function, stand_in, input)` while active, then computes it as called."""

    def __init__(self, seen):
        super().__init__()
        self.seen = seen

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        known = _FUNCTIONS.get(func)
        if known is not None:
            called = stand_in(*known, args, kwargs)
            if called is not None:
                self.seen(known[0], *called)
        return func(*args, **kwargs)


def stand_in(function: str, build, args, kwargs):
    """(the module that computes the call, its input), or None where the call is not on
    a tensor or no module computes it."""
    rest = dict(kwargs)
    x = args[0] if args else rest.pop("input", rest.pop("self", None))
    if not isinstance(x, torch.Tensor):
        return None
    signature = _signature(build)
    # a builder that names the input (F.pad's, which needs its rank) is given it
    given = (x, *args[1:]) if "input" in signature.parameters else args[1:]
    try:
        bound = signature.bind(*given, **rest)
        module = build(*bound.args, **bound.kwargs)
    except Exception:  # arguments no module takes: recording must never stop forward()
        return None
    if module is None:
        return None
    module.function = function
    return module, x
