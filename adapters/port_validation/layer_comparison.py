"""One paired layer's value compared: Keras's output of a layer against PyTorch's output of
its module, both in Keras's layout and through the activation Keras fuses into the layer
(`activated`), judged against PyTorch's own float32 error where a float64 reference is kept,
with the facts that name a difference's cause (causes.py) gathered where it diverges.

The passes (passes.py) compare every pair with `compare`; `activated` also gives the
reference that a rerun of PyTorch's model is measured against (named_causes.py)."""

from __future__ import annotations

import numpy as np
import torch

from adapters.keras.backend import keras  # noqa: F401 (fixes the torch backend first)
from keras import ops  # noqa: E402

from adapters.own_pair.port_arrays import LAYER_LEVEL_KINDS  # noqa: E402
from adapters.port_validation.causes import (  # noqa: E402
    flatten_order_explains,
    one_pass_variance_explains,
)
from adapters.port_validation.graph import (  # noqa: E402
    Failed,
    numpy_of,
    to_keras_values,
    training_of,
)
from comparator.analysis.port_causes import likely_causes  # noqa: E402
from comparator.analysis.validation import (  # noqa: E402
    LayerComparison,
    diverges,
    judge,
    metrics,
)


def activated(layer, torch_output: np.ndarray, kind: str, moves: bool = True) -> np.ndarray:
    """PyTorch's value as the Keras layer emits it: in Keras's layout (as it is where not
    `moves`), through the activation Keras fuses into the layer (Conv2D(activation="relu"),
    ...; a recurrent layer's activation is inside its steps, and PyTorch's output has been
    through it)."""
    value = to_keras_values(torch_output, moves)
    activation = None if kind in LAYER_LEVEL_KINDS else getattr(layer, "activation", None)
    if activation is None or getattr(activation, "__name__", "") == "linear":
        return value
    return numpy_of(activation(torch.from_numpy(value)))  # keeps float64 references float64


def in_keras_shape(value: np.ndarray, layer) -> np.ndarray:
    """PyTorch's value (in Keras's layout) in the shape of the Keras layer's output, where
    the two differ only by axes of length 1: the same numbers in the same order
    (torchvision's ConvNeXt normalises its pooled (N, C, 1, 1) map where keras.applications'
    normalises the pooled (N, C) vector, and the validator stopped at "output shapes
    differ"). Otherwise as it is, and compare() names the shapes."""
    try:
        wanted = (value.shape[0], *tuple(layer.output.shape)[1:])
    except (AttributeError, ValueError):  # a layer called more than once, or never
        return value
    if None in wanted or wanted == value.shape:
        return value
    if [d for d in value.shape[1:] if d != 1] != [d for d in wanted[1:] if d != 1]:
        return value
    return value.reshape(wanted)


def compare(pair, layer, keras_value, reference, reference64, facts, isolated, mode,
            tolerance, trace, moves=True) -> LayerComparison:
    """Keras's value of one layer against PyTorch's (both in Keras's layout here)."""
    torch_shape = tuple(trace[pair.torch_module][1].shape)
    if isinstance(keras_value, (list, tuple)):  # a layer's output and states: the output
        keras_value = keras_value[0]
    if isinstance(keras_value, Failed) or keras_value is None:
        message = keras_value.message if keras_value is not None else "not computed"
        causes = likely_causes({**facts, "failed": message}, isolated, mode)
        return LayerComparison(pair.torch_module, pair.keras_layer, pair.kind, torch_shape, (),
                               None, True, causes, note=message)
    value = numpy_of(keras_value)
    keras_shape = tuple(value.shape)
    if value.shape != reference.shape:
        causes = likely_causes({**facts, "shape": (torch_shape, keras_shape)}, isolated, mode)
        return LayerComparison(pair.torch_module, pair.keras_layer, pair.kind, torch_shape,
                               keras_shape, None, True, causes)
    m = metrics(value, reference)
    m64 = noise = None
    if reference64 is not None:
        m64, noise = metrics(value, reference64), metrics(reference, reference64)
    bad, unsure = judge(m64, noise, m, tolerance)
    causes = ()
    if bad:
        more = dict(facts)
        if isolated and flatten_order_explains(pair, layer, trace, tolerance):
            more["flatten_order"] = True
        if isolated and pair.kind != "attention":  # attention takes more than one input
            more["alone_agrees"] = _alone_agrees(layer, to_keras_values(
                trace[pair.torch_module][0], moves), reference,
                training_of(layer, mode == "training"), tolerance)
        if isolated and mode == "training" and one_pass_variance_explains(
                layer, trace[pair.torch_module][0], value,
                reference if reference64 is None else reference64, facts.get("torch_eps")):
            more["one_pass_variance"] = True
        causes = likely_causes(more, isolated, mode)
    return LayerComparison(pair.torch_module, pair.keras_layer, pair.kind, torch_shape,
                           keras_shape, m, bad, causes,
                           float64_rel=m64.max_rel if m64 else None,
                           noise_rel=noise.max_rel if noise else None, inconclusive=unsure)


def _alone_agrees(layer, keras_input: np.ndarray, reference, training: bool,
                  tolerance) -> bool:
    """Does the Keras layer, on the input PyTorch's module was given (in Keras's layout),
    give PyTorch's output? Then what differs is what reaches the layer, not the layer."""
    try:
        value = layer(ops.convert_to_tensor(keras_input), training=training)
    except Exception:  # the layer takes another input than PyTorch's module: not this
        return False
    value = numpy_of(value[0] if isinstance(value, (list, tuple)) else value)
    return value.shape == reference.shape and not diverges(metrics(value, reference), tolerance)
