"""Recurrent layers' arrays between PyTorch's layout and Keras's (pure numpy).

PyTorch's LSTM, GRU and RNN hold, for each layer k (and direction), `weight_ih_lk` (gates * H,
inputs), `weight_hh_lk` (gates * H, H) and two biases, `bias_ih_lk` and `bias_hh_lk`; a
bidirectional one holds the backward direction's as `..._lk_reverse`. Keras's LSTM, GRU and
SimpleRNN hold `kernel` (inputs, gates * H), `recurrent_kernel` (H, gates * H) and one `bias`;
a Bidirectional wrapper holds the forward layer's weights, then the backward layer's. So one
PyTorch layer k pairs with one Keras layer (Bidirectional where PyTorch's is). Measured with
torch 2.14.1 and Keras 3.15.1 (tests/test_user_pair_recurrent.py):

* the gates along the gates * H axis are i, f, g, o in PyTorch's LSTM and i, f, c, o in
  Keras's, the same order; r, z, n in PyTorch's GRU and z, r, h in Keras's;
* Keras's GRU with `reset_after=True` (its default) keeps both biases, as a (2, 3H) array:
  the input bias, then the recurrent one, which PyTorch's GRU applies in the same places;
* Keras's LSTM and SimpleRNN keep one bias where PyTorch adds two, so only their sum is
  the same function: a port writes the sum into Keras, and Keras's bias into `bias_ih_lk`
  with `bias_hh_lk` zero the other way. Their biases have no common name, so the weights
  after a step are compared on the kernels only.
"""

from __future__ import annotations

import re

import numpy as np

RECURRENT_KINDS = ("lstm", "gru", "rnn")
# Where Keras's gates come from in PyTorch's order (an index into PyTorch's gate blocks).
_KERAS_GATES = {"lstm": (0, 1, 2, 3), "gru": (1, 0, 2), "rnn": (0,)}
# The Keras weight of one direction that holds each PyTorch array: kernel, recurrent_kernel,
# bias.
_KERAS_INDEX = {"weight_ih": 0, "weight_hh": 1, "bias_ih": 2, "bias_hh": 2}
# Biases that have a Keras counterpart of their own: a GRU's; not an LSTM's or RNN's.
_SHARED_BIAS = {"gru": ("bias_ih", "bias_hh"), "lstm": (), "rnn": ()}
_NAME = re.compile(r"(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)(_reverse)?$")


def _parts(name: str) -> tuple[str, int, bool]:
    """("weight_ih", 1, True) for `model.lstm.weight_ih_l1_reverse`."""
    found = _NAME.search(name.rsplit(".", 1)[-1])
    if found is None:
        raise ValueError(f"{name} is not an array of a PyTorch recurrent layer")
    return found.group(1), int(found.group(2)), bool(found.group(3))


def _suffix(name: str) -> str:
    return _parts(name)[0]


def layer_names(prefix: str, layer: int, bidirectional: bool, has_bias: bool,
                kind: str) -> tuple[str, ...]:
    """PyTorch's arrays of one layer that have a Keras counterpart of their own, in the order
    of the Keras layer's weights: each direction's kernels, and a GRU's biases."""
    biases = _SHARED_BIAS[kind] if has_bias else ()
    directions = ("", "_reverse") if bidirectional else ("",)
    return tuple(f"{prefix}{array}_l{layer}{direction}" for direction in directions
                 for array in ("weight_ih", "weight_hh") + biases)


def keras_index(name: str, per_direction: int) -> int:
    """Which of the Keras layer's weights holds this PyTorch array (`per_direction`: how
    many weights each direction has, 3 with a bias and 2 without)."""
    array, _, reverse = _parts(name)
    return _KERAS_INDEX[array] + (per_direction if reverse else 0)


def bias_pairs(names: tuple[str, ...]) -> list[tuple[str, str]]:
    """(bias_ih, bias_hh) of each direction, from the direction's `weight_ih` name."""
    return [(name.replace("weight_ih", "bias_ih"), name.replace("weight_ih", "bias_hh"))
            for name in names if _suffix(name) == "weight_ih"]


def _reorder(kind: str, array: np.ndarray, to_keras: bool) -> np.ndarray:
    """The gate blocks along axis 0 in the other framework's order."""
    order = _KERAS_GATES[kind]
    if not to_keras:
        order = tuple(np.argsort(order))
    blocks = np.split(array, len(order), axis=0)
    return np.concatenate([blocks[i] for i in order], axis=0)


def to_keras(kind: str, name: str, array: np.ndarray, into: np.ndarray | None) -> np.ndarray:
    """The Keras weight holding PyTorch's array `name`: for a GRU bias, `into` (the current
    (2, 3H) bias) with its row replaced."""
    suffix = _suffix(name)
    if suffix.startswith("weight"):
        return np.ascontiguousarray(_reorder(kind, array, True).T)
    row = _reorder(kind, array, True)
    if kind != "gru":
        return row
    if into is None:
        raise ValueError(f"{name}: a GRU bias is one row of Keras's (2, 3H) bias")
    whole = np.array(into, copy=True)
    whole[0 if suffix == "bias_ih" else 1] = row
    return whole


def from_keras(kind: str, name: str, value: np.ndarray) -> np.ndarray:
    """PyTorch's array `name` out of the Keras weight that holds it (the inverse of
    to_keras: a round trip returns the array bit for bit)."""
    suffix = _suffix(name)
    if suffix.startswith("weight"):
        return np.ascontiguousarray(_reorder(kind, value.T, False))
    if kind == "gru":
        value = value[0 if suffix == "bias_ih" else 1]
    return np.ascontiguousarray(_reorder(kind, value, False))


def summed_bias(kind: str, bias_ih: np.ndarray, bias_hh: np.ndarray) -> np.ndarray:
    """Keras's one bias for PyTorch's two (LSTM, RNN)."""
    return _reorder(kind, bias_ih + bias_hh, True)


def split_bias(kind: str, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's bias_ih and bias_hh for Keras's one bias (LSTM, RNN): all of it in bias_ih."""
    bias_ih = np.ascontiguousarray(_reorder(kind, bias, False))
    return bias_ih, np.zeros_like(bias_ih)
