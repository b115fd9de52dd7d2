"""A recurrent or attention layer's port slip, read off its weights and settings: its Keras
weights are held against those a port of PyTorch's arrays gives (adapters/own_pair/
pairing.py), and the slips users make are named: a GRU's gates left in PyTorch's order, an
LSTM's or RNN's second bias left out, an activation that is not PyTorch's or a sequence run
backwards, attention projections in another order; otherwise, which weight is not the port.
A user pair whose port check fails is searched for one first, on the comparison's own
pairing (find_slip); the port validator names one as the cause at its layer (layer_slip).
"""

from __future__ import annotations

import numpy as np

from adapters.own_pair.keras_layers import recurrent_cell
from adapters.own_pair.port_arrays import (
    directions,
    keras_weight_index,
    keras_weights,
    summed_biases,
)
from comparator.zoo import recurrent_layout

_TORCH_GATES = {"lstm": "i, f, g, o", "gru": "r, z, n", "rnn": ""}
_KERAS_GATES = {"lstm": "i, f, c, o", "gru": "z, r, h", "rnn": ""}


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-6, atol=1e-7)


def find_slip(pairing, torch_model) -> dict | None:
    """The first paired recurrent layer whose Keras weights are not its PyTorch arrays ported,
    as the report's settings.pair.first_divergence; None where every one is."""
    state = {n: t.detach().cpu().numpy() for n, t in torch_model.state_dict().items()}
    modules = dict(torch_model.named_modules())
    for port, layer in zip(pairing.ports, pairing.keras_layers):
        found = layer_slip(port, layer, state, modules)
        if found is not None:
            code, seen_in, words = found
            return {"located": True, "torch_module": port.module, "keras_layer": layer.name,
                    "seen_in": seen_in, "causes": [code],
                    "text": f"PyTorch {port.module} ({type(modules[port.module]).__name__}) "
                            f"and Keras {layer.name} ({type(layer).__name__}): {words}"}
    return None


def layer_slip(port, layer, state: dict, modules: dict) -> tuple[str, str, str] | None:
    """(cause code, "weights" or "settings", the slip in words) of one recurrent or attention
    pair, None where its Keras weights and settings are PyTorch's ported (or another kind).
    state: PyTorch's arrays as numpy, by name; modules: PyTorch's modules, by name."""
    if port.kind == "attention":
        return _attention_slip(port, layer, state)
    if port.kind not in recurrent_layout.RECURRENT_KINDS:
        return None
    have = layer.get_weights()
    return next((_slip(port, state, index, mine, len(have)) for index, (mine, ported)
                 in enumerate(zip(have, keras_weights(port, state, have)))
                 if not _same(mine, ported)), None) or \
        _activation_slip(port, layer, modules) or _direction_slip(layer)


_PROJECTIONS = ("query", "key", "value")


def _attention_slip(port, layer, state: dict) -> tuple[str, str, str] | None:
    have = layer.get_weights()
    want = keras_weights(port, state, have)
    step = len(have) // 4  # each projection's kernel, and its bias where there are biases
    apart = not any(name.endswith("in_proj_weight") for name in port.canonical_names)
    for index, (mine, ported) in enumerate(zip(have, want)):
        if _same(mine, ported):
            continue
        part, role = divmod(index, step)
        what, packed = ("kernel", "in_proj_weight") if role == 0 else ("bias", "in_proj_bias")
        if part < 3:
            for other in range(3):
                if other != part and _same(mine, want[other * step + role]):
                    return "attention_projection_order", "weights", (
                        f"Keras's {_PROJECTIONS[part]} {what} holds PyTorch's "
                        f"{_PROJECTIONS[other]} projection; " + (
                            "PyTorch holds them as q_proj_weight, k_proj_weight and "
                            "v_proj_weight" if apart and role == 0 else
                            f"{packed} holds the query's, the key's and the value's, in "
                            "that order"))
            source = (f"{_PROJECTIONS[part][0]}_proj_weight" if apart and role == 0 else
                      f"the {_PROJECTIONS[part]}'s third of {packed}")
            source += f"{', transposed' if role == 0 else ''}, split into heads"
        else:
            source = "out_proj.weight, transposed, split into heads" if role == 0 \
                else "out_proj.bias"
        return "attention_weights", "weights", (
            f"Keras's {_PROJECTIONS[part] if part < 3 else 'output'} {what} is not PyTorch's "
            f"{source}")
    return None


def _activation_slip(port, layer, modules: dict) -> tuple[str, str, str] | None:
    """A Keras activation that is not PyTorch's: its LSTM and GRU use tanh and sigmoid (their
    recurrent activation) and its RNN its `nonlinearity`; Keras's are settings, which a
    model may have set otherwise (hard_sigmoid, say)."""
    cell = recurrent_cell(layer)
    torch_side = {"activation": getattr(modules[port.module], "nonlinearity", "tanh")}
    if port.kind != "rnn":
        torch_side["recurrent_activation"] = "sigmoid"
    for setting, torch_name in torch_side.items():
        keras_name = getattr(getattr(cell, setting, None), "__name__", None)
        if keras_name != torch_name:
            return "recurrent_activation", "settings", (
                f"Keras's {setting} is {keras_name}, PyTorch's {port.kind.upper()} uses "
                f"{torch_name}")
    return None


def _direction_slip(layer) -> tuple[str, str, str] | None:
    """A one-way Keras layer set to run the sequence backwards, which a one-way PyTorch layer
    never does (a Bidirectional wrapper's backward layer does so by design)."""
    if getattr(layer, "go_backwards", False):
        return "recurrent_direction", "settings", (
            "Keras's layer runs the sequence backwards (go_backwards=True); PyTorch's one-way "
            "layer runs it forwards")
    return None


def _slip(port, state: dict, index: int, value: np.ndarray,
          weights: int) -> tuple[str, str, str]:
    """The slip that gives Keras's weight `index` its `value`, in words."""
    names = [n for position, n in enumerate(port.canonical_names)
             if keras_weight_index(port, n, position, weights) == index]
    summed = [(ih, hh) for ih, hh, at in summed_biases(port, weights) if at == index]
    reverse = "backward " if index >= weights // directions(port) else ""
    if names and names[0].rsplit(".", 1)[-1].startswith("weight"):
        (source,) = names
        name = f"{reverse}{'kernel' if '_ih_' in source else 'recurrent_kernel'}"
        if port.kind == "gru" and _same(value, state[source].T):
            return "recurrent_gate_order", "weights", (
                f"Keras's {name} holds the gates in PyTorch's order ({_TORCH_GATES['gru']}); "
                f"Keras's GRU orders them {_KERAS_GATES['gru']}")
        return "recurrent_weights", "weights", (f"Keras's {name} is not PyTorch's {source} "
                                                 f"ported (transposed{_gate_words(port.kind)})")
    for bias_ih, bias_hh in summed:
        for alone, other in ((bias_ih, bias_hh), (bias_hh, bias_ih)):
            if _same(value, state[alone]):
                return "recurrent_bias_sum", "weights", (
                    f"Keras's {reverse}bias is one of PyTorch's two biases, without "
                    f"{other.rsplit('.', 1)[-1]}; Keras adds one bias where PyTorch adds two, "
                    f"so it must hold their sum")
    if len(names) == 2 and _same(value, np.stack([state[n] for n in names])):
        return "recurrent_gate_order", "weights", (
            f"Keras's {reverse}bias holds the gates in PyTorch's order "
            f"({_TORCH_GATES['gru']}); Keras's GRU orders them {_KERAS_GATES['gru']}")
    return "recurrent_weights", "weights", (f"Keras's {reverse}bias is not PyTorch's biases "
                                             f"ported ({_bias_words(port.kind)})")


def _gate_words(kind: str) -> str:
    if kind == "rnn":
        return ""
    return f", gates {_TORCH_GATES[kind]} in PyTorch and {_KERAS_GATES[kind]} in Keras"


def _bias_words(kind: str) -> str:
    if kind == "gru":
        return (f"bias_ih and bias_hh as two rows, gates {_TORCH_GATES['gru']} in "
                f"PyTorch and {_KERAS_GATES['gru']} in Keras")
    return "their sum, bias_ih + bias_hh"
