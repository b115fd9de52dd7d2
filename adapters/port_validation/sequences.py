"""Recurrent and attention modules as the port validator traces them: their outputs read as
the paired Keras layer emits them, and a stacked recurrent module's layers one by one.

PyTorch runs a stacked LSTM, GRU or RNN within one call, where no hook sees its inner layers'
outputs, while Keras stacks one layer per PyTorch layer. So layer k of module `lstm` is traced
as `lstm[k]`: a one-layer module of the same kind holding layer k's arrays, run on layer
k - 1's output (the Dropout between the layers is off in the validator's passes, as every
Dropout is), which is what the stacked module computes.
"""

from __future__ import annotations

import functools
import re

import torch
from torch import nn

from adapters.keras.backend import keras  # noqa: F401 (fixes the torch backend first)
from keras import tree  # noqa: E402

from comparator.errors import UsageError  # noqa: E402

_LAYER_KEY = re.compile(r"^(.*)\[(\d+)\]$")
_KINDS = (nn.LSTM, nn.GRU, nn.RNN)


def layer_key(name: str, layer: int) -> str:
    """How the validator names layer `layer` of the stacked recurrent module `name`."""
    return f"{name}[{layer}]"


def split_layer_key(key: str) -> tuple[str, int | None]:
    """(module name, layer) of a stacked module's layer key, (name, None) for a module."""
    found = _LAYER_KEY.match(key)
    return (found.group(1), int(found.group(2))) if found else (key, None)


def single_layer(module: nn.RNNBase, layer: int) -> nn.RNNBase:
    """A one-layer module of the stacked module's kind holding its layer `layer`'s arrays
    (copies: for running the layer alone, never for changing it)."""
    directions = 2 if module.bidirectional else 1
    options = {"input_size": module.input_size if layer == 0 else
               module.hidden_size * directions, "hidden_size": module.hidden_size,
               "bias": module.bias, "batch_first": module.batch_first,
               "bidirectional": module.bidirectional}
    if isinstance(module, nn.RNN):
        options["nonlinearity"] = module.nonlinearity
    kind = next(k for k in _KINDS if isinstance(module, k))
    reference = module.weight_ih_l0
    one = kind(**options).to(device=reference.device, dtype=reference.dtype)
    with torch.no_grad():
        for name in one._flat_weights_names:
            getattr(one, name).copy_(getattr(module, name.replace("_l0", f"_l{layer}")))
    return one.train(module.training)


def traced_calls(module, args, kwargs, output, keys: list[str], views: dict):
    """(key, (input, output, call)) for each of `keys` that this module's call gives: the
    module's own, or each of a stacked module's layers. An output with a view is read
    through it, and its call kept for rerunning; others keep no call."""
    first = args[0] if args else next(iter(kwargs.values()))
    if isinstance(first, nn.utils.rnn.PackedSequence):
        raise UsageError(f"cannot trace PyTorch module {split_layer_key(keys[0])[0]}: it was "
                         "given a PackedSequence; give the validator padded sequences")
    if split_layer_key(keys[0])[1] is None:
        (key,) = keys
        view = views.get(key)
        call = (_kept(args), _kept(kwargs)) if view is not None else None
        return [(key, _record(first, view(output) if view is not None else output, call))]
    start = args[1] if len(args) > 1 else kwargs.get("hx")
    found, x = [], first
    for key in sorted(keys, key=lambda k: split_layer_key(k)[1]):
        layer = split_layer_key(key)[1]
        state = _layer_state(start, layer, 2 if module.bidirectional else 1)
        layer_output = single_layer(module, layer)(x, state)
        found.append((key, _record(x, views[key](layer_output), ((_kept(x), _kept(state)), {}))))
        x = layer_output[0]
    return found


def _layer_state(start, layer: int, directions: int):
    """Layer `layer`'s part of the stacked module's initial state (None: zeros)."""
    if start is None:
        return None
    rows = slice(layer * directions, (layer + 1) * directions)
    return tuple(s[rows] for s in start) if isinstance(start, tuple) else start[rows]


def _record(x, value, call):
    return x.detach().cpu().numpy().copy(), value.detach().cpu().numpy().copy(), call


def _kept(arguments):
    """A call's arguments with their tensors detached and copied (the pass goes on)."""
    return tree.map_structure(
        lambda v: v.detach().clone() if isinstance(v, torch.Tensor) else v, arguments)


def rerun(module: nn.Module, layer: int | None, call):
    """The module (or a stacked module's layer) on a recorded call."""
    args, kwargs = call
    return (module if layer is None else single_layer(module, layer))(*args, **kwargs)


def output_view(module: nn.Module, layer):
    """How a recurrent or attention module's output reads as its Keras layer's output (a
    function of the module's output), or None for a module whose output is one tensor.

    PyTorch's recurrent modules give (every step's output, final state), Keras's layers one
    of them: every step (return_sequences=True) or the last one, which for a bidirectional
    layer is the forward direction's last step and the backward direction's first, as
    PyTorch's final state h_n holds them. Attention gives (output, weights)."""
    if isinstance(module, nn.MultiheadAttention):
        return functools.partial(_attention_view, module.batch_first)
    if not isinstance(module, nn.RNNBase):
        return None
    cell = getattr(layer, "forward_layer", layer)
    merge = getattr(layer, "merge_mode", "concat") if cell is not layer else "concat"
    if merge not in _MERGES:
        raise UsageError(f"cannot trace Keras layer {layer.name!r}: Bidirectional with "
                         f"merge_mode={merge!r} gives each direction's output apart; the "
                         f"validator compares one output ({', '.join(_MERGES)})")
    return functools.partial(_recurrent_view, module.batch_first, module.bidirectional,
                             bool(cell.return_sequences), _MERGES[merge])


_MERGES = {"concat": lambda a, b: torch.cat([a, b], dim=-1), "sum": torch.add,
           "mul": torch.mul, "ave": lambda a, b: (a + b) / 2}


def _recurrent_view(batch_first, bidirectional, sequences, merge, output):
    steps, state = output
    if isinstance(state, tuple):  # an LSTM's (h_n, c_n)
        state = state[0]
    if not batch_first:
        steps = steps.transpose(0, 1)
    if sequences:
        parts = steps.chunk(2, dim=-1) if bidirectional else (steps,)
    else:
        parts = (state[-2], state[-1]) if bidirectional else (state[-1],)
    return merge(*parts) if len(parts) == 2 else parts[0]


def _attention_view(batch_first, output):
    attended = output[0]
    return attended if batch_first else attended.transpose(0, 1)

