"""The softmaxes PyTorch's forward() computes with a function rather than a module
(torch.nn.functional.softmax, torch.softmax, x.softmax, torch.special.softmax, and their
log_softmax), seen through a TorchFunctionMode while operation_settings.torch_calls runs
the model: forward hooks see modules only. Each call stands in the running order as the
module that computes the same (CalledSoftmax, CalledLogSoftmax), so softmax_axis.py
measures it as it measures nn.Softmax. Measured on torch 2.14.1: each of these functions
gives nn.Softmax's (nn.LogSoftmax's) output bit for bit; the mode sees F.softmax with its
input alone positional (dim, dtype as keywords), torch.softmax and x.softmax as written,
and not the F.softmax that nn.Softmax's own forward calls when that module is hooked (it
is left out: the module is recorded)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode


class CalledSoftmax(nn.Softmax):
    """A softmax forward() computes by calling `function` (its name, as written in
    torch), with the dim and dtype it was given."""

    def __init__(self, dim, function: str, dtype=None):
        super().__init__(dim)
        self.function, self.dtype = function, dtype

    def forward(self, x):
        return F.softmax(x, self.dim, dtype=self.dtype)


class CalledLogSoftmax(nn.LogSoftmax):
    """A log-softmax forward() computes by calling `function`, as CalledSoftmax."""

    def __init__(self, dim, function: str, dtype=None):
        super().__init__(dim)
        self.function, self.dtype = function, dtype

    def forward(self, x):
        return F.log_softmax(x, self.dim, dtype=self.dtype)


CALLED = (CalledSoftmax, CalledLogSoftmax)

# Each function as torch names it, and the module it stands in as.
_FUNCTIONS = {
    F.softmax: ("torch.nn.functional.softmax", CalledSoftmax),
    F.log_softmax: ("torch.nn.functional.log_softmax", CalledLogSoftmax),
    torch.softmax: ("torch.softmax", CalledSoftmax),
    torch.log_softmax: ("torch.log_softmax", CalledLogSoftmax),
    torch.Tensor.softmax: ("torch.Tensor.softmax", CalledSoftmax),
    torch.Tensor.log_softmax: ("torch.Tensor.log_softmax", CalledLogSoftmax),
    torch.special.softmax: ("torch.special.softmax", CalledSoftmax),
    torch.special.log_softmax: ("torch.special.log_softmax", CalledLogSoftmax),
}


class SoftmaxCalls(TorchFunctionMode):
    """Hands each softmax function call to `seen(function, stand_in, input)` while active,
    then computes it as called."""

    def __init__(self, seen):
        super().__init__()
        self.seen = seen

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        known = _FUNCTIONS.get(func)
        if known is not None:
            called = _stand_in(*known, args, kwargs)
            if called is not None:
                self.seen(known[0], *called)
        return func(*args, **kwargs)


def _stand_in(function: str, module_class, args, kwargs):
    """(the module that computes the call, its input), or None where the call is not on
    one tensor along one axis (a named dimension, say)."""
    x = args[0] if args else kwargs.get("input", kwargs.get("self"))
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    dtype = args[2] if len(args) > 2 else kwargs.get("dtype")
    if not isinstance(x, torch.Tensor) or not (dim is None or isinstance(dim, int)):
        return None
    return module_class(dim, function, dtype), x
