"""Input preprocessing that one model does inside itself and the other leaves to its caller,
before the first paired layer: Keras's Rescaling or Normalization layers where PyTorch's model
runs no module there (a keras.applications or KerasHub model that rescales its own pixels),
or torchvision's Normalize (transforms and transforms.v2 are modules) in PyTorch's model
where Keras's runs no operation. Named (comparator/analysis/port_causes.py:
input_preprocessing) only where it is measured, by the rule the operation settings follow
(operation_settings.confirmed_apart): Keras's paired layer gives another output than
PyTorch's module, and PyTorch's module given the input as Keras's layer gets it (Keras's
preprocessing applied, or PyTorch's left out) gives Keras's output. Otherwise the cause stays
between_layers."""

from __future__ import annotations

import numpy as np
from torch import nn
from torchvision import transforms
from torchvision.transforms import v2

from adapters.keras.backend import keras  # noqa: F401 (fixes the torch backend first)
from keras import layers, ops  # noqa: E402

from adapters.port_validation.graph import Failed, numpy_of, to_keras_values  # noqa: E402
from adapters.port_validation.operation_settings import (  # noqa: E402
    confirmed_apart,
    run_torch_on_keras_values,
)
from comparator.analysis.port_causes import Preprocessing  # noqa: E402

_KERAS_PREPROCESSING = (layers.Rescaling, layers.Normalization)
_TORCH_PREPROCESSING = (transforms.Normalize, v2.Normalize)


def keras_preprocessing(op) -> bool:
    """Whether input_preprocessing may measure this Keras operation (its input is then kept)."""
    return isinstance(op, _KERAS_PREPROCESSING)


def input_preprocessing(torch_modules: list[tuple[str, nn.Module]], keras_ops: list,
                        keras_inputs: dict, module: nn.Module, layer,
                        torch_input: np.ndarray) -> Preprocessing | None:
    """Preprocessing on one side only, before the first paired layer (module, layer), where
    a rerun confirms it; torch_input: the model's input, in PyTorch's layout (None where it
    takes several)."""
    torch_modules = [(n, m) for n, m in torch_modules if not isinstance(m, nn.Identity)]
    if not torch_modules and keras_ops and all(map(keras_preprocessing, keras_ops)):
        return _in_keras(keras_ops, keras_inputs.get(keras_ops[0].name), module, layer)
    if torch_input is not None and torch_modules and not keras_ops and all(
            isinstance(m, _TORCH_PREPROCESSING) for _, m in torch_modules):
        return _in_pytorch(torch_modules, torch_input, module, layer)
    return None


def _in_keras(keras_ops: list, keras_input, module: nn.Module, layer) -> Preprocessing | None:
    if keras_input is None or isinstance(keras_input, Failed):
        return None
    raw = numpy_of(keras_input)
    preprocessed = raw
    for op in keras_ops:
        preprocessed = numpy_of(op(ops.convert_to_tensor(preprocessed)))
    outputs = _outputs(module, layer, keras_x=preprocessed, torch_x=raw, redone_x=preprocessed)
    if outputs is None or (confirmed := confirmed_apart(*outputs)) is None:
        return None
    words = ", ".join(f"{op.name} ({_keras_words(op)})" for op in keras_ops)
    return Preprocessing("keras", words, _torch_fix(keras_ops), confirmed[0].max_abs,
                         confirmed[1].max_abs)


def _in_pytorch(torch_modules: list, torch_input: np.ndarray, module: nn.Module,
                layer) -> Preprocessing | None:
    raw = to_keras_values(torch_input)
    preprocessed = raw
    for _, preprocessing in torch_modules:
        preprocessed = run_torch_on_keras_values(preprocessing, preprocessed)
    outputs = _outputs(module, layer, keras_x=raw, torch_x=preprocessed, redone_x=raw)
    if outputs is None or (confirmed := confirmed_apart(*outputs)) is None:
        return None
    words = ", ".join(f"{name} ({_torch_words(m)})" for name, m in torch_modules)
    return Preprocessing("pytorch", words, _keras_fix(torch_modules), confirmed[0].max_abs,
                         confirmed[1].max_abs)


def _outputs(module: nn.Module, layer, keras_x, torch_x, redone_x):
    """Keras's layer on keras_x, PyTorch's module on torch_x and on redone_x (all in Keras's
    layout); None for a layer that keeps state a call would change (BatchNorm's moving
    statistics) or that takes another input."""
    if layer.non_trainable_weights:
        return None
    try:
        keras_out = numpy_of(layer(ops.convert_to_tensor(keras_x), training=False))
        torch_out = run_torch_on_keras_values(module, torch_x)
        redone = run_torch_on_keras_values(module, redone_x)
    except Exception:  # a layer that takes more than one input (attention): nothing measured
        return None
    if keras_out.shape != torch_out.shape:
        return None
    return keras_out, torch_out, redone


def _values(value) -> str:
    array = np.asarray(numpy_of(value) if not np.isscalar(value) else value, np.float64)
    rounded = [float(f"{v:.4g}") for v in array.ravel()]
    return repr(rounded[0]) if len(rounded) == 1 else repr(rounded)


def _keras_words(op) -> str:
    if isinstance(op, layers.Rescaling):
        return f"Rescaling(scale={_values(op.scale)}, offset={_values(op.offset)})"
    return f"Normalization(mean={_values(op.mean)}, variance={_values(op.variance)})"


def _torch_words(module: nn.Module) -> str:
    return f"{type(module).__name__}(mean={_values(module.mean)}, std={_values(module.std)})"


def _torch_fix(keras_ops: list) -> str:
    """The same preprocessing in PyTorch's terms. Keras's Normalization computes
    (x - mean) / max(sqrt(variance), epsilon) (keras/src/layers/preprocessing/
    normalization.py; measured equal to (x - mean) / sqrt(variance), 5.8e-7)."""
    steps = []
    for op in keras_ops:
        if isinstance(op, layers.Rescaling):
            steps.append(f"x * {_values(op.scale)} + {_values(op.offset)}")
        else:
            std = np.sqrt(numpy_of(op.variance).astype(np.float64))
            steps.append(f"transforms.Normalize(mean={_values(op.mean)}, std={_values(std)})")
    return " then ".join(steps)


def _keras_fix(torch_modules: list) -> str:
    steps = []
    for _, module in torch_modules:
        variance = np.square(np.asarray(module.std, np.float64))
        steps.append(f"layers.Normalization(mean={_values(module.mean)}, "
                     f"variance={_values(variance)})")
    return " then ".join(steps)
