"""A user's Keras model's layers as the pairing walks them, with Keras alone.

A worker (adapters.keras.worker) rebuilds a user pair's Keras model on TensorFlow or JAX and
walks its layers as the comparison's own adapter does (adapters.keras.user: the frozen
part's leaf layers, the recurrent layers that drop within their steps). Importing torch there
took 1.5 s of a TensorFlow worker's start (docs/own-models.md), so this module imports no
torch: adapters.own_pair.pairing, which pairs these layers with PyTorch's modules, does.
"""

from __future__ import annotations

import weakref

import numpy as np

from adapters.keras.backend import keras

layers = keras.layers

SEPARABLE_CONVS = (layers.SeparableConv1D, layers.SeparableConv2D)
_PARTS = weakref.WeakKeyDictionary()
# The cells that compute Keras's LSTM, GRU and SimpleRNN layers, and an RNN layer given one.
KERAS_CELLS = ((layers.LSTMCell, "lstm"), (layers.GRUCell, "gru"), (layers.SimpleRNNCell, "rnn"))


def holds_layers(layer) -> bool:
    """Whether the walk looks inside this layer: a nested model, a layer class of the user's
    own holding weighted layers, or a built separable convolution. Keras's own composite
    layers (LSTM and its cell, Bidirectional, MultiHeadAttention) stay whole. The port
    validator's tracer (adapters.port_validation.tracing) opens the same layers."""
    if isinstance(layer, keras.Model) or (isinstance(layer, SEPARABLE_CONVS) and layer.built):
        return True
    return not type(layer).__module__.startswith("keras.") and any(
        sub.weights for sub in layer._flatten_layers(include_self=False, recursive=False))


def leaf_layers(model) -> list:
    """Every layer with no layers to look into, nested models and layer classes of the
    user's own holding weighted layers (a residual block: holds_layers) walked in place, in
    the order of `model.layers` (a functional model's graph order)."""
    found = []
    for layer in _sublayers(model):
        found += leaf_layers(layer) if holds_layers(layer) else [layer]
    return found


def _sublayers(layer) -> list:
    if isinstance(layer, keras.Model):
        return layer.layers
    if isinstance(layer, SEPARABLE_CONVS):
        return list(separable_parts(layer))
    return list(layer._flatten_layers(include_self=False, recursive=False))


def separable_parts(layer) -> tuple:
    """A built SeparableConv1D or SeparableConv2D as the DepthwiseConv1D or 2D (no bias)
    and the pointwise Conv1D or 2D it computes, holding its own variables: they give its
    outputs bit for bit (measured on the 2-D one, Keras 3.15.1 on torch 2.14.1) and pair one
    for one with PyTorch's depthwise and pointwise modules. The same two layers each time, for
    the pairing and the port validator's tracer alike (kept aside, not as its sublayers, whose
    weights Keras would then count twice)."""
    if layer not in _PARTS:
        flat = isinstance(layer, layers.SeparableConv1D)
        depthwise = (layers.DepthwiseConv1D if flat else layers.DepthwiseConv2D)(
            layer.kernel_size, strides=layer.strides, padding=layer.padding,
            depth_multiplier=layer.depth_multiplier, data_format=layer.data_format,
            dilation_rate=layer.dilation_rate, use_bias=False, name=f"{layer.name}.depthwise")
        pointwise = (layers.Conv1D if flat else layers.Conv2D)(
            layer.filters, 1, data_format=layer.data_format, activation=layer.activation,
            use_bias=layer.use_bias, name=f"{layer.name}.pointwise")
        depthwise.kernel = layer.depthwise_kernel
        pointwise._kernel, pointwise.bias = layer.pointwise_kernel, layer.bias
        depthwise.built = pointwise.built = True
        _PARTS[layer] = (depthwise, pointwise)
    return _PARTS[layer]


def weighted_keras_layers(model) -> list:
    """Layers holding weights themselves, in running order for functional models."""
    return [layer for layer in leaf_layers(model) if layer.weights]


def recurrent_of(layer):
    """The recurrent layer inside a Keras Bidirectional wrapper, or the layer itself."""
    return layer.forward_layer if isinstance(layer, layers.Bidirectional) else layer


def recurrent_cell(layer):
    """The cell that computes a Keras recurrent layer's steps (its LSTM, GRU or SimpleRNN, or an
    RNN layer given one such cell; in a Bidirectional wrapper, the forward layer's), which holds
    its weights and settings; None for any other layer (an RNN of stacked cells, say)."""
    inner = recurrent_of(layer)
    cell = inner.cell if isinstance(inner, layers.RNN) else None
    return cell if isinstance(cell, tuple(c for c, _ in KERAS_CELLS)) else None


def step_dropping_layers(layer) -> list:
    """The recurrent layers in this Keras layer (both of a Bidirectional one) that drop within
    their steps in training (`dropout` on the inputs, `recurrent_dropout` on the state)."""
    inner = [layer.forward_layer, layer.backward_layer] \
        if isinstance(layer, layers.Bidirectional) else [layer]
    return [i for i in inner if isinstance(i, layers.RNN) and step_dropout(i.cell)]


def step_dropout(cell) -> dict[str, float]:
    """A Keras recurrent cell's non-zero `dropout` and `recurrent_dropout`."""
    rates = {name: float(getattr(cell, name, 0) or 0) for name in ("dropout", "recurrent_dropout")}
    return {name: rate for name, rate in rates.items() if rate}


def stochastic_depth_layer(layer) -> bool:
    """A layer of a class named StochasticDepth: keras.applications' ConvNeXt's
    (keras/src/applications/convnext.py; no keras.layers name exports it), or one a port of
    torchvision's ConvNeXt or EfficientNet writes after it. In training it drops its input for
    whole examples, as torchvision's StochasticDepth does, and it is no Dropout: the Dropout
    observation and the Dropout-free passes missed it (measured, Keras 3.15.1: a pair's Keras
    run counted Dropout 0/0, and `--dropout off` left the layer dropping)."""
    return not isinstance(layer, layers.Dropout) and any(
        cls.__name__ == "StochasticDepth" for cls in type(layer).__mro__)


def drops_whole_examples(layer) -> bool:
    """Stochastic depth: a StochasticDepth layer, or a Dropout whose noise_shape is
    (None, 1, ..., 1), as keras.applications' EfficientNet drops its residual branches."""
    if stochastic_depth_layer(layer):
        return True
    shape = getattr(layer, "noise_shape", None) if isinstance(layer, layers.Dropout) else None
    return shape is not None and len(shape) > 1 and all(n == 1 for n in tuple(shape)[1:])


def stochastic_depth_rate(layer) -> float | None:
    """A StochasticDepth layer's drop rate: `drop_path_rate` in keras.applications' ConvNeXt,
    `rate` as a Dropout names it; None where it holds neither."""
    for name in ("drop_path_rate", "rate"):
        value = getattr(layer, name, None)
        if isinstance(value, (int, float)):
            return float(value)
    return None


def scales_its_input(layer) -> bool:
    """A layer that holds one weight and gives its input times it, the weight's numbers
    along the input's last axis (a channels-last map's channels) or one number in all:
    keras.applications' ConvNeXt LayerScale, or such a layer of the user's own."""
    shape = _one_weight_shape(layer)
    return shape is not None and not any(d > 1 for d in shape[:-1]) and \
        _gives(layer, shape, np.multiply)


def adds_its_weight(layer) -> bool:
    """A layer that holds one weight and gives its input plus it, broadcast as NumPy does:
    learned positions added to a sequence's tokens (a ViT's or BERT's), or a bias of the
    user's own."""
    shape = _one_weight_shape(layer)
    return shape is not None and _gives(layer, shape, np.add)


def prepends_its_weight(layer) -> bool:
    """A layer that holds one weight and gives it, repeated over the batch, before its
    input's tokens (axis 1 of N, L, D): a ViT's class token."""
    shape = _one_weight_shape(layer)
    return shape is not None and _gives(layer, shape, _prepended)


def _prepended(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    width = x.shape[-1]
    tokens = weight.reshape(1, -1, width)
    return np.concatenate([np.broadcast_to(tokens, (len(x), *tokens.shape[1:])), x], axis=1)


def _one_weight_shape(layer) -> tuple[int, ...] | None:
    if len(layer.weights) != 1 or not layer.built:
        return None
    return tuple(int(d) for d in layer.weights[0].shape)


def _gives(layer, shape: tuple, operation) -> bool:
    """Whether the layer's output is operation(input, weight) (of the input's shape, but
    for a prefix), measured on an input of the layer's own input shape, with the weight set
    to distinct numbers for the while (a weight of ones or zeros would not tell a product or
    a sum from the identity)."""
    (weight,) = layer.weights
    rng = np.random.default_rng(0)
    x = rng.normal(size=_probe_shape(layer, shape)).astype("float32")
    probe = rng.uniform(0.5, 1.5, size=shape).astype(weight.dtype)
    kept = keras.ops.convert_to_numpy(weight).copy()
    try:
        weight.assign(probe)
        y = np.asarray(keras.ops.convert_to_numpy(layer(x)))
    except Exception:  # a layer that takes no such input: neither
        return False
    finally:
        weight.assign(kept)
    try:
        expected = operation(x, probe)
    except ValueError:  # a weight that cannot be used so on this input
        return False
    return y.shape == expected.shape and (operation is _prepended or y.shape == x.shape) and \
        np.allclose(y, expected, rtol=1e-5, atol=1e-6)


def _probe_shape(layer, shape: tuple) -> tuple:
    """The layer's input shape where a graph gives it (a batch of 2), else a batch of 2 of
    the weight's numbers (its last axis, or its shape after a leading axis of 1)."""
    try:
        given = layer._inbound_nodes[0].input_tensors[0].shape
    except (AttributeError, IndexError):
        if len(shape) > 1 and sum(d > 1 for d in shape) > 1:
            return (2, *(shape[1:] if shape[0] == 1 else shape))
        return (2, max(shape[-1:] or (1,)))
    return tuple(2 if d is None else int(d) for d in given)
