"""A paired layer's arrays between PyTorch's names and layouts and the Keras layer's weights.

A port (comparator.zoo.portmaps.LayerPort, made by adapters.own_pair.pairing) names the
PyTorch arrays a Keras layer holds; these functions move arrays across it with numpy alone.
The comparison's own Keras adapter (adapters.keras.user) names its states with them, and the
module that adapter lives in is imported by a worker on TensorFlow or JAX too, which need not
import torch (adapters.own_pair.keras_layers says why).
"""

from __future__ import annotations

import numpy as np

from comparator.zoo import attention_layout, recurrent_layout
from comparator.zoo.portmaps import LayerPort, from_keras_layout, to_keras_layout

# Kinds whose arrays are not one Keras weight each: ported and named layer by layer.
LAYER_LEVEL_KINDS = recurrent_layout.RECURRENT_KINDS + ("attention",)


def directions(port: LayerPort) -> int:
    return 2 if any(n.endswith("_reverse") for n in port.canonical_names) else 1


def keras_weight_index(port: LayerPort, name: str, position: int, weights: int) -> int:
    """Which of the Keras layer's `weights` holds the canonical array at `position` of its
    port (a GRU's two biases are one Keras weight; a Bidirectional layer holds the forward
    direction's weights, then the backward's)."""
    if port.kind in recurrent_layout.RECURRENT_KINDS:
        return recurrent_layout.keras_index(name, weights // directions(port))
    return position


def summed_biases(port: LayerPort, weights: int) -> list[tuple[str, str, int]]:
    """PyTorch's two biases of each direction of an LSTM or RNN port, which Keras holds as
    their sum, with the index of that Keras weight ([] for other kinds or no bias)."""
    if port.kind not in ("lstm", "rnn") or weights == 2 * directions(port):
        return []
    return [(ih, hh, recurrent_layout.keras_index(ih, weights // directions(port)))
            for ih, hh in recurrent_layout.bias_pairs(port.canonical_names)]


def keras_weights(port: LayerPort, arrays: dict, current: list) -> list:
    """The Keras layer's weights holding the canonical `arrays` of its port (PyTorch's
    names and layouts); `current` is the layer's weights now, whose shapes they take."""
    if port.kind == "attention":
        if any(name not in arrays for name in port.canonical_names):
            return list(current)  # a state that holds other layers' arrays only
        return attention_layout.to_keras(_by_suffix(port, arrays), current)
    values = list(current)
    for position, name in enumerate(port.canonical_names):
        if name not in arrays:  # a state that holds other arrays of the layer
            continue
        index = keras_weight_index(port, name, position, len(current))
        values[index] = to_keras_layout(port.kind, name, np.asarray(arrays[name]),
                                        into=values[index])
    for bias_ih, bias_hh, index in summed_biases(port, len(current)):
        if bias_ih in arrays:
            values[index] = recurrent_layout.summed_bias(
                port.kind, np.asarray(arrays[bias_ih]), np.asarray(arrays[bias_hh]))
    return values


def torch_arrays(port: LayerPort, values: list, split_sums: bool = True) -> dict:
    """The canonical arrays that the Keras layer's weights `values` give (the inverse of
    keras_weights, but an LSTM's or RNN's one bias goes all into bias_ih, or, without
    split_sums, into no array: it has no common name)."""
    if port.kind == "attention":
        prefix = f"{port.module}." if port.module else ""
        return {f"{prefix}{suffix}": array
                for suffix, array in attention_layout.from_keras(values).items()}
    arrays = {name: from_keras_layout(
        port.kind, name, values[keras_weight_index(port, name, position, len(values))])
        for position, name in enumerate(port.canonical_names)}
    for bias_ih, bias_hh, index in summed_biases(port, len(values)) if split_sums else ():
        arrays[bias_ih], arrays[bias_hh] = recurrent_layout.split_bias(port.kind, values[index])
    return arrays


def named_indices(port: LayerPort, weights: int) -> set[int]:
    """The indices of the Keras layer's weights that a canonical array names (all but an
    LSTM's or RNN's one bias)."""
    if port.kind == "attention":
        return set(range(weights))
    return {keras_weight_index(port, name, position, weights)
            for position, name in enumerate(port.canonical_names)}


def _by_suffix(port: LayerPort, arrays: dict) -> dict:
    prefix = f"{port.module}." if port.module else ""
    return {name[len(prefix):]: np.asarray(arrays[name]) for name in port.canonical_names}
