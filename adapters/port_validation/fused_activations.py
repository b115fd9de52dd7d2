"""The activation a paired Keras layer applies inside itself (Dense(activation=keras.ops.gelu)),
where PyTorch computes it after its module (nn.Linear then nn.GELU, or F.gelu in forward()).

Each layer pair is compared after that activation, applied to PyTorch's value too
(layer_comparison.activated), so the layer itself agrees; a difference in the activation shows at
the next paired layer, whose Keras input went through the fused activation and PyTorch's
through its own. There the fused activation counts as the first Keras operation since the
previous matched layers: its setting is read and measured as an Activation layer's is
(operation_settings.py), and one the validator cannot read (a lambda, a function of the
user's own) is named as such in the cause."""

from __future__ import annotations

from adapters.own_pair.port_arrays import LAYER_LEVEL_KINDS
from adapters.port_validation.graph import to_keras_values
from adapters.port_validation.operation_settings import FusedActivation, partial_base


def fused_activations(pairs, by_name: dict, moves: dict) -> dict[str, FusedActivation]:
    """Each paired Keras layer's fused activation (not `linear`), by the layer's name; a
    recurrent layer's activation is inside its steps and PyTorch's output has been
    through it, so it has none here."""
    found = {}
    for p in pairs:
        layer = by_name[p.keras_layer]
        activation = None if p.kind in LAYER_LEVEL_KINDS else getattr(layer, "activation", None)
        if activation is None or getattr(activation, "__name__", "") == "linear":
            continue
        found[p.keras_layer] = FusedActivation(f"{p.keras_layer}'s activation", activation,
                                               type(layer).__name__, p.torch_module,
                                               moves[p.torch_module])
    return found


def with_fused(fused: dict, previous: list[str], keras_ops: list, keras_inputs: dict,
               trace) -> tuple[list, dict]:
    """The Keras operations between two paired layers with the fused activations of the
    previous matched layers first, and their inputs: in the isolated pass each is given
    PyTorch's output of its layer's module (what layer_comparison.activated runs it on)."""
    before = [fused[name] for name in previous if name in fused]
    inputs = dict(keras_inputs)
    for op in before:
        inputs[op.name] = to_keras_values(trace[op.input_of][1], op.moves)
    return before + keras_ops, inputs


def fused_words(fused: dict, previous: list[str]) -> list[tuple[str, bool]]:
    """Each fused activation of the previous matched layers in words ("the activation
    linear1 applies inside itself (Dense(activation=<lambda>))"), and whether the validator
    can read its setting (a function of Keras's own)."""
    return [(f"the activation {name} applies inside itself "
             f"({op.holder}(activation={function_words(op.activation)}))",
             readable(op.activation))
            for name in previous if (op := fused.get(name)) is not None]


def readable(function) -> bool:
    """Whether the validator can read this activation: Keras's own function or layer (or a
    functools.partial of one), not a lambda or a function of the user's own."""
    return (getattr(partial_base(function), "__module__", None) or "").startswith("keras.")


def function_words(function) -> str:
    """'keras.ops.gelu', 'keras.activations.relu', 'functools.partial(keras.ops.gelu, ...)',
    '<lambda>', 'my_gelu', a layer's class."""
    base = partial_base(function)
    module = getattr(base, "__module__", None) or ""
    name = getattr(base, "__name__", type(base).__name__)
    for inner, public in (("keras.src.activations", "keras.activations"),
                          ("keras.src.ops", "keras.ops")):
        if module.startswith(inner) and hasattr(base, "__name__"):
            name = f"{public}.{name}"
    return name if base is function else f"functools.partial({name}, ...)"
