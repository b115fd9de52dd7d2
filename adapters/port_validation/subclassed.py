"""A subclassed Keras model as a graph the validator can walk: its call() run on a symbolic
input makes every layer and keras.ops operation it calls a node, over the model's own layers
and weights. A functional model holding a subclassed one as a layer (the model compare.py's
--output wraps one in) is traced the same way through it. The graph is then run beside the
model, in inference mode and, where the validation trains, in training mode: a call() whose
Python code branches on a value or on `training` traces something else than what the model
computes, and is refused as such."""

from __future__ import annotations

import numpy as np
import torch

from adapters.keras.backend import keras  # fixes the torch backend before Keras is imported
from keras import ops, tree  # noqa: E402
from keras.src.models.functional import Functional  # noqa: E402

from comparator.errors import UsageError  # noqa: E402

# The traced graph runs the model's own operations in the same order: it gives the same
# values, bit for bit on the CPU (measured, Keras 3.15.1 on torch 2.14.1). The bound leaves
# room for nothing but rounding.
_SAME = 1e-6


def is_subclassed(model) -> bool:
    return isinstance(model, keras.Model) and not isinstance(model, (Functional,
                                                                     keras.Sequential))


def subclassed_in(model):
    """The subclassed model to trace through: `model` itself, or the first subclassed model
    a functional model calls as a layer; None where there is none."""
    if is_subclassed(model):
        return model
    if isinstance(model, Functional) and not isinstance(model, keras.Sequential):
        return next((op for op in model.operations if is_subclassed(op)), None)
    return None


def _symbolic_call(model, inputs):
    """model's outputs on symbolic inputs, with every subclassed model it is or holds as a
    layer run by its call(), whose layers then become nodes of their own."""
    if is_subclassed(model):
        return model.call(inputs)
    # Functional.call's own walk, each operation run by operation_fn(op).
    return model._run_through_graph(
        model._standardize_inputs(inputs),
        operation_fn=lambda op: op.call if is_subclassed(op) else op)


def traced_graph(model, keras_x: np.ndarray, training: bool) -> tuple[Functional, str]:
    """The functional model over `model`'s layers that its call() (or a subclassed layer's)
    traces on an input shaped like keras_x (channels-last), checked against the model on
    keras_x in inference mode and, with `training`, in training mode too; and a note for the
    report saying so."""
    inner = subclassed_in(model)
    inputs = keras.Input(keras_x.shape[1:], dtype=str(keras_x.dtype))
    try:
        graph = keras.Model(inputs, _symbolic_call(model, inputs), name=model.name)
    except Exception as exc:
        raise _refused(inner, "its call() does not run on a symbolic Keras input "
                              f"({type(exc).__name__}: {_first_line(exc)})") from None
    modes = (False, True) if training else (False,)
    gaps = [_gap(model, graph, keras_x, mode) for mode in modes]
    for mode, gap in zip(modes, gaps):
        if gap is None or gap > _SAME:
            mode_name = "training" if mode else "inference"
            found = ("outputs of other structures or shapes" if gap is None
                     else f"outputs apart by max abs {gap:.3g}")
            raise _refused(inner, f"the graph its call() traces and the model give {found} "
                                  f"in {mode_name} mode (its Python code branches on "
                                  f"{'training or on ' if mode else ''}a value)")
    checked = " and ".join(f"{'training' if mode else 'inference'} mode" for mode in modes)
    return graph, (f"Keras model {inner.name!r} is subclassed: validated as the graph its "
                   "call() traces on a symbolic input, over the same layers, which gave the "
                   f"model's outputs in {checked} (max abs {max(gaps):.3g})")


def _gap(model, graph: Functional, keras_x: np.ndarray, training: bool) -> float | None:
    """Max abs difference between the model's and the graph's outputs; None where their
    structure or shapes differ. Both runs start from the same variables (moving statistics)
    and random state (Keras's Dropout on torch draws from torch's generator)."""
    first, second = (_run(f, keras_x, training, model.variables) for f in (model, graph))
    try:
        tree.assert_same_structure(first, second)
    except (TypeError, ValueError):
        return None
    pairs = list(zip(tree.flatten(first), tree.flatten(second)))
    if any(a.shape != b.shape for a, b in pairs):
        return None
    return max((float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in pairs),
               default=0.0)


def _run(model, keras_x: np.ndarray, training: bool, variables) -> object:
    saved = [ops.convert_to_numpy(v).copy() for v in variables]
    rng = torch.get_rng_state()
    try:
        with torch.no_grad():
            return tree.map_structure(lambda t: np.asarray(ops.convert_to_numpy(t)),
                                      model(keras_x, training=training))
    finally:
        torch.set_rng_state(rng)
        for variable, value in zip(variables, saved):
            variable.assign(value)


def _refused(model, why: str) -> UsageError:
    return UsageError(f"cannot trace Keras model {model.name!r} ({type(model).__name__}, "
                      f"subclassed): {why}; rebuild it with the functional API (compare.py "
                      "still compares it as a whole)")


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0]
