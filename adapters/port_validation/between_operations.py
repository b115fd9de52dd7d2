"""What differs between two paired layers that agree on PyTorch's input, where no setting
does (operation_settings.py): an operation PyTorch's forward computes there that the Keras
port leaves out (MissingOperations), or a Keras activation of another function than
PyTorch's at the same position in running order (ActivationFunction: sigmoid where
PyTorch's squeeze-excitation uses Hardsigmoid). Both are measured by rerunning PyTorch's
operations on the values kept from PyTorch's own run (operation_settings.torch_calls
with keep) and on the Keras operation's input from the isolated pass; only what the rerun
shows is claimed (comparator/analysis/port_causes.py words it)."""

from __future__ import annotations

import copy
import functools
import re

import numpy as np
import torch
from torch import nn

from adapters.keras.backend import keras
from keras import activations, layers, ops  # noqa: E402

from adapters.port_validation.function_calls import module_kind  # noqa: E402
from adapters.port_validation.fused_activations import (  # noqa: E402
    function_words,
    readable,
)
from adapters.port_validation.graph import (  # noqa: E402
    numpy_of,
    to_keras_values,
    to_torch_values,
    torch_args,
    torch_mode,
)
from adapters.port_validation.operation_settings import (  # noqa: E402
    FusedActivation,
    partial_base,
)
from comparator.analysis.port_causes import ActivationFunction  # noqa: E402
from comparator.analysis.tolerances import SETTING_MATCH_TOLERANCE  # noqa: E402
from comparator.analysis.validation import diverges, metrics  # noqa: E402

# PyTorch's activation modules (by class: module_kind names a function's stand-in so too)
# and the function each computes, under Keras's name for it (keras.activations.NAME).
TORCH_FUNCTIONS = {
    "ReLU": "relu", "ReLU6": "relu6", "Sigmoid": "sigmoid", "Hardsigmoid": "hard_sigmoid",
    "Tanh": "tanh", "Hardswish": "hard_silu", "SiLU": "silu", "GELU": "gelu", "ELU": "elu",
    "SELU": "selu", "CELU": "celu", "LeakyReLU": "leaky_relu", "Softplus": "softplus",
    "Softsign": "softsign", "Mish": "mish", "Hardtanh": "hard_tanh",
    "LogSigmoid": "log_sigmoid", "Tanhshrink": "tanh_shrink", "Hardshrink": "hard_shrink",
    "Softshrink": "soft_shrink", "Softmax": "softmax", "LogSoftmax": "log_softmax",
}

# What PyTorch's computes, where its name alone does not say it (the hard forms differ
# between libraries and versions).
_FORMULAS = {"hard_sigmoid": "relu6(x + 3) / 6", "hard_silu": "x * relu6(x + 3) / 6"}

# Other functions known under PyTorch's function's name, each measured against Keras's
# output before it is named: tf.keras 2.x's hard_sigmoid was clip(0.2 x + 0.5, 0, 1).
_OTHER_FORMS = {
    "hard_sigmoid": (("clip(0.2 x + 0.5, 0, 1), tf.keras 2.x's hard_sigmoid",
                      lambda x: np.clip(0.2 * x + 0.5, 0.0, 1.0)),),
    # keras.ops.gelu's default (approximate=True); PyTorch's nn.GELU() is the exact form.
    "gelu": (("GELU's tanh approximation, keras.ops.gelu's default (approximate=True)",
              lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))),),
}

# Keras layers that are one activation, and the function each computes.
_KERAS_LAYERS = ((layers.LeakyReLU, "leaky_relu"), (layers.ELU, "elu"),
                 (layers.Softmax, "softmax"))


def torch_function(module: nn.Module) -> str | None:
    """The function a PyTorch activation module (or a call's stand-in) computes."""
    return TORCH_FUNCTIONS.get(module_kind(module))


def keras_function(op) -> tuple[str, str, bool] | None:
    """(the function's name, the operation in words, whether it is Keras's own) for a Keras
    operation that is one activation; None for any other."""
    if isinstance(op, FusedActivation):
        found = _held_function(op.activation)
        return found and (found[0], f"{op.holder}(activation={found[1]})", found[2])
    if isinstance(op, layers.Activation):
        found = _held_function(op.activation)
        return found and (found[0], f"Activation({found[1]})", found[2])
    if isinstance(op, layers.ReLU):  # ReLU(6.0) clips as relu6; a setting decides the rest
        return ("relu6" if op.max_value == 6 else "relu"), "ReLU", True
    for kind, name in _KERAS_LAYERS:
        if isinstance(op, kind):
            return name, kind.__name__, True
    if isinstance(op, layers.Layer):
        return None
    name = re.sub(r"(?<!^)([A-Z])", r"_\1", type(op).__name__).lower()  # HardSigmoid
    known = name in TORCH_FUNCTIONS.values() and type(op).__module__.startswith("keras.")
    return (name, f"keras.ops.{name}", True) if known else None


def _held_function(function) -> tuple[str, str, bool] | None:
    if isinstance(function, layers.Layer):
        return keras_function(function)
    words = function_words(function)
    base = partial_base(function)
    if not readable(function):
        return words, words, False
    name = getattr(base, "__name__", "")
    return (name, words, True) if name != "linear" else None


def activation_function(torch_acts: list, keras_acts: list, keras_inputs: dict,
                        torch_inputs: dict, moves: bool) -> ActivationFunction | None:
    """The first pair, at the same position among each side's activations between the
    paired layers (as many on both sides), whose functions differ and where the rerun shows
    it: on the Keras operation's input PyTorch's activation gives PyTorch's value there
    (from its input kept in PyTorch's run) and Keras's operation does not.
    torch_acts: (position, name, module); keras_acts: (op, keras_function(op))."""
    if len(torch_acts) != len(keras_acts):
        return None
    for (position, name, module), (op, (function, kind, own)) in zip(torch_acts, keras_acts):
        if own and function == torch_function(module):
            continue
        found = _measured(name, module, op, function, kind, own,
                          keras_inputs.get(op.name), torch_inputs.get(position), moves)
        if found is not None:
            return found
    return None


def candidates(torch_acts: list, keras_acts: list) -> list[int]:
    """The positions of PyTorch's activations a Keras one of another function faces."""
    if len(torch_acts) != len(keras_acts):
        return []
    return [position for (position, _, module), (_, (function, _, own))
            in zip(torch_acts, keras_acts) if not own or function != torch_function(module)]


def _measured(name, module, op, function, kind, own, keras_input, torch_input,
              moves) -> ActivationFunction | None:
    if keras_input is None or torch_input is None:
        return None
    x = numpy_of(keras_input)
    try:
        torch_value = to_keras_values(_run(module, torch_input), moves)
        # Where the activation acts on the last axis in PyTorch too (a ConvNeXt's GELU
        # between its Linears), Keras's input is its input as it is.
        torch_out = to_keras_values(_run(module, to_torch_values(x) if moves else x), moves)
        keras_out = numpy_of(op(ops.convert_to_tensor(x)))
    except Exception:  # an operation that takes another input: nothing measured
        return None
    if not torch_value.shape == torch_out.shape == keras_out.shape:
        return None
    agree, apart = metrics(torch_out, torch_value), metrics(keras_out, torch_value)
    if diverges(agree, SETTING_MATCH_TOLERANCE) or not diverges(apart, SETTING_MATCH_TOLERANCE):
        return None
    wanted = torch_function(module)
    form, form_abs = _known_form(wanted, x, keras_out)
    fix, fix_abs = _keras_fix(wanted, x, torch_value)
    return ActivationFunction(
        name, module_kind(module), wanted, _FORMULAS.get(wanted, ""), op.name, kind,
        function, own, agree.max_abs, apart.max_abs, form, form_abs, fix, fix_abs,
        keras.__version__)


def _run(module: nn.Module, value: np.ndarray) -> np.ndarray:
    """The activation on a copy (an inplace module must not change what it is given)."""
    with torch.no_grad():
        return numpy_of(copy.deepcopy(module)(torch.from_numpy(value.copy())))


def _known_form(wanted: str, x, keras_out) -> tuple[str, float | None]:
    """The known other function under PyTorch's name that Keras's output is, measured."""
    for words, form in _OTHER_FORMS.get(wanted, ()):
        found = metrics(keras_out, form(x))
        if not diverges(found, SETTING_MATCH_TOLERANCE):
            return words, found.max_abs
    return "", None


def _keras_fix(wanted: str, x, torch_value) -> tuple[str, float | None]:
    """keras.activations' function of PyTorch's name, where it gives PyTorch's value on the
    Keras operation's input (measured: Keras's hard_sigmoid is not tf.keras 2.x's)."""
    function = getattr(activations, wanted or "", None)
    if function is None:
        return "", None
    try:
        found = metrics(numpy_of(function(ops.convert_to_tensor(x))), torch_value)
    except Exception:
        return "", None
    if diverges(found, SETTING_MATCH_TOLERANCE):
        return "", None
    return f"keras.activations.{wanted}", found.max_abs


def without_operations(model: nn.Module, x, mode: str, skipped: dict[str, set[int]],
                       name: str):
    """Module `name`'s first output (PyTorch's layout) in one forward pass of the model in
    this mode where the calls `skipped` ({module name: its calls, counted from 0}) give
    back their input instead of computing; None where that pass fails."""
    modules, count, given, outputs = dict(model.named_modules()), {}, {}, []

    def started(module, args, called):
        count[called] = count.get(called, -1) + 1
        if count[called] in skipped[called]:
            # copied now: an inplace module changes its input as it runs
            given[called] = args[0].detach().clone()

    def ended(module, args, output, called):
        return given.pop(called, None)

    hooks = [hook for called in skipped for hook in (
        modules[called].register_forward_pre_hook(functools.partial(started, called=called)),
        modules[called].register_forward_hook(functools.partial(ended, called=called)))]
    hooks.append(modules[name].register_forward_hook(
        lambda module, args, output: outputs.append(numpy_of(output).copy())))
    try:
        with torch_mode(model, mode), torch.no_grad():
            model(*torch_args(x, next(model.parameters()).device))
    except Exception:  # the model does not run without them: nothing measured
        return None
    finally:
        for hook in hooks:
            hook.remove()
    return outputs[0] if outputs else None
