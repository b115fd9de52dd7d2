"""PyTorch padding other than zeros before a convolution: a ReflectionPad, ReplicationPad,
CircularPad or ConstantPad module that runs right before it (a CycleGAN or super-resolution
block's), an F.pad forward() calls there (its stand-in in the running order is the padding
module that computes the same: function_calls.py), or the convolution's own padding_mode
('reflect', 'replicate', 'circular'), where Keras pads with zeros (ZeroPadding layers and
'same'). The modules' and calls' amounts count towards the conv's padding
(causes.layer_facts: torch_padding), and the mode is named
(comparator/analysis/port_causes.py: padding_mode) only where a rerun measures it: on the
input PyTorch's padding got, the conv given zeros of the same amounts instead gives Keras's
output (operation_settings.confirmed_apart)."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from adapters.keras.backend import keras  # noqa: F401 (fixes the torch backend first)
from keras import ops  # noqa: E402

from adapters.port_validation.function_calls import called_function, module_kind  # noqa: E402
from adapters.port_validation.graph import Failed, numpy_of, to_keras_values  # noqa: E402
from adapters.port_validation.operation_settings import confirmed_apart  # noqa: E402

_MODES = {"Zero": "zeros", "Constant": "constant", "Reflection": "reflect",
          "Replication": "replicate", "Circular": "circular"}
_PAD_MODULES = tuple(getattr(nn, f"{kind}Pad{rank}d") for kind in _MODES for rank in (1, 2, 3))


def pads_before(order: list[str], modules: dict, name: str) -> tuple[tuple[str, nn.Module], ...]:
    """The padding modules (or F.pad calls' stand-ins) that ran right before `name`, in
    running order, each with its name there."""
    end = order.index(name) if name in order else 0
    start = end
    while start > 0 and isinstance(modules[order[start - 1]], _PAD_MODULES):
        start -= 1
    return tuple((n, modules[n]) for n in order[start:end])


def module_pads(module: nn.Module, rank: int) -> tuple[tuple[int, int], ...]:
    """A padding module's (before, after) on each of `rank` spatial axes, first axis first
    (F.pad takes the last axis's pair first); it pads the last axes, (0, 0) on any before
    them (a ZeroPad1d on an image pads its width)."""
    flat = module.padding
    pairs = tuple((flat[i], flat[i + 1]) for i in range(len(flat) - 2, -1, -2))
    return ((0, 0),) * (rank - len(pairs)) + pairs[-rank:]


def padding_mode_words(conv: nn.Module, pads: tuple[tuple[str, nn.Module], ...]) -> str | None:
    """How PyTorch pads the conv's input where not with zeros, in words, each padding module
    by its class and each F.pad call by its place in forward(); None where it pads with
    zeros alone."""
    rank = len(conv.kernel_size)
    modes = [f"{padding_fill(p)} ({name if called_function(p) else module_kind(p)})"
             for name, p in pads
             if padding_fill(p) != "zeros" and any(any(side) for side in module_pads(p, rank))]
    own = tuple(conv.padding) if not isinstance(conv.padding, str) else (conv.padding,)
    if conv.padding_mode != "zeros" and own not in (("valid",), (0,) * len(own)):
        modes.append(f"{conv.padding_mode} (the conv's padding_mode)")
    return ", ".join(modes) or None


def padding_fill(module: nn.Module) -> str:
    """How a padding module (or F.pad call's stand-in) fills: 'zeros', 'constant -inf',
    'reflect', ..."""
    kind = next(k for k in _MODES if module_kind(module).startswith(k))
    if kind == "Constant" and module.value != 0:
        return f"constant {module.value:g}"
    return _MODES[kind]


def measured_padding_mode(conv: nn.Module, pads: tuple[tuple[str, nn.Module], ...], torch_io,
                          layer, keras_input):
    """(PyTorch against Keras, the zero-padded rerun against Keras) where PyTorch's conv
    differs from Keras's layer and, given zeros where PyTorch pads otherwise, gives Keras's
    output; None otherwise (or where Keras's layer input was not kept)."""
    if keras_input is None or isinstance(keras_input, Failed):
        return None
    torch_in, torch_out = (np.asarray(numpy_of(v)) for v in torch_io[:2])
    try:
        keras_out = numpy_of(layer(ops.convert_to_tensor(numpy_of(keras_input))))
        redone = to_keras_values(_zero_padded(conv, pads, torch_in))
    except Exception:  # a layer that takes more than this input: nothing measured
        return None
    theirs = to_keras_values(torch_out)
    if keras_out.shape != theirs.shape or keras_out.shape != redone.shape:
        return None
    return confirmed_apart(keras_out, theirs, redone)


def _zero_padded(conv: nn.Module, pads: tuple[tuple[str, nn.Module], ...],
                 torch_in: np.ndarray):
    """PyTorch's conv on its input padded with zeros instead: the padding modules' borders
    cropped off and zeros of the same amounts put back, the conv's own padding zeros."""
    x = torch.from_numpy(np.ascontiguousarray(torch_in))
    rank = len(conv.kernel_size)
    for _, pad in reversed(pads):
        inner = tuple(slice(before, x.shape[2 + axis] - after)
                      for axis, (before, after) in enumerate(module_pads(pad, rank)))
        x = F.pad(x[(slice(None), slice(None), *inner)], tuple(pad.padding), value=0.0)
    zeros = copy.deepcopy(conv)
    zeros.padding_mode = "zeros"
    with torch.no_grad():
        return zeros(x).numpy()
