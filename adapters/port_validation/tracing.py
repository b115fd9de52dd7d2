"""A Keras model whose layers hide other layers, as one flat graph the validator can walk: a
subclassed model, a nested model (keras.applications' base inside a functional model, or the
model compare.py's --output wraps a subclassed one in), or a layer class of the user's own
that holds weighted layers (a residual block), or a separable convolution (one layer for
what PyTorch computes with two modules). The model's call() runs once on a symbolic input with
each such layer run by its own call() instead of as one operation (a separable convolution
as its depthwise and pointwise ones: separable_parts), so every Keras layer and keras.ops
operation underneath becomes a node of a functional graph over the model's own weights.

Python code in those call()s runs once then, so the graph is run beside the model on the
batch, in inference mode and, where the validation trains, in training mode: a call() that
branches on a value or on `training` traces something else than what the model computes,
and is refused as such."""

from __future__ import annotations

import contextlib
import functools
import weakref

import numpy as np
import torch

from adapters.keras.backend import keras  # fixes the torch backend before Keras is imported
from keras import ops, tree  # noqa: E402
from keras.src.models.functional import Functional  # noqa: E402

from adapters.own_pair.keras_layers import (  # noqa: E402
    SEPARABLE_CONVS,
    holds_layers,
    separable_parts,
)
from adapters.own_pair.loader import symbolic_inputs  # noqa: E402
from comparator.errors import UsageError  # noqa: E402

# The traced graph runs the model's own operations in the same order: it gives the same
# values, bit for bit on the CPU (measured, Keras 3.15.1 on torch 2.14.1). The bound leaves
# room for nothing but rounding.
_SAME = 1e-6
# The weighted layers inside opened layers that a traced graph has no node for, by graph.
_UNTRACED = weakref.WeakKeyDictionary()


def inbound(tensor):
    """The operation that produced a symbolic Keras tensor, and that operation's inputs."""
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None, []
    op = history.operation
    node = op._inbound_nodes[history.node_index]
    return op, list(node.input_tensors)


def is_subclassed(model) -> bool:
    return isinstance(model, keras.Model) and not isinstance(model, (Functional,
                                                                     keras.Sequential))


def _opened_below(layer) -> list:
    found = []
    for sub in layer._flatten_layers(include_self=False, recursive=False):
        if holds_layers(sub):
            found += [sub, *_opened_below(sub)]
    return found


def layers_to_open(model) -> list:
    """The layers to run by their call() in the trace, outermost first; none where the
    model's own graph is flat already."""
    return [model] * is_subclassed(model) + _opened_below(model)


def _call_straight(layer, *args, **kwargs):
    """layer.call(): on symbolic inputs the layers it uses make nodes of their own."""
    if isinstance(layer, SEPARABLE_CONVS):
        depthwise, pointwise = separable_parts(layer)
        return pointwise(depthwise(args[0]))
    if isinstance(layer, Functional) and args:
        # Functional.call warns unless the inputs come in the structure it was built on.
        args = (tree.pack_sequence_as(layer._inputs_struct, tree.flatten(args[0])), *args[1:])
    return layer.call(*args, **kwargs)


@functools.cache
def _opened(cls):
    """cls with __call__ running call() straight."""
    return type(f"Opened{cls.__name__}", (cls,), {"__call__": _call_straight})


@contextlib.contextmanager
def _calls_opened(layers):
    classes = []
    try:
        for layer in layers:
            classes.append((layer, type(layer)))
            layer.__class__ = _opened(type(layer))
        yield
    finally:
        for layer, cls in classes:
            layer.__class__ = cls


def symbolic_graph(model, input_shape: tuple, dtype="float32") -> Functional:
    """The functional model that model's call() traces on one symbolic input (channels-last,
    without the batch axis), or on a list of them where input_shape is a tuple of several
    inputs' shapes (dtype then one per input), every layer of layers_to_open run by its
    call(). Each layer called keeps the node of that call: what feeds it (a Flatten, say) can
    be read off it afterwards. Raises what the call raises."""
    inputs = symbolic_inputs(input_shape, dtype)
    with _calls_opened(layers_to_open(model)):
        return keras.Model(inputs, _call_straight(model, inputs), name=model.name)


def traced_graph(model, keras_x, training: bool) -> tuple[Functional, str]:
    """The functional model over `model`'s layers that its call() traces on an input shaped
    like keras_x (channels-last; a list of arrays for several inputs), every layer of
    layers_to_open run by its call(); checked against the model on keras_x in inference mode
    and, with `training`, in training mode too; and a note for the report saying so."""
    through = _through(model, layers_to_open(model))
    several = isinstance(keras_x, list)
    shape = (tuple(tuple(v.shape[1:]) for v in keras_x) if several
             else tuple(keras_x.shape[1:]))
    dtype = [str(v.dtype) for v in keras_x] if several else str(keras_x.dtype)
    try:
        graph = symbolic_graph(model, shape, dtype)
    except Exception as exc:
        raise _refused(model, through, "its call() does not run on a symbolic Keras input "
                                       f"({type(exc).__name__}: {_first_line(exc)})") from None
    modes = (False, True) if training else (False,)
    gaps = [_gap(model, graph, keras_x, mode) for mode in modes]
    for mode, gap in zip(modes, gaps):
        if gap is None or gap > _SAME:
            found = ("outputs of other structures or shapes" if gap is None
                     else f"outputs apart by max abs {gap:.3g}")
            raise _refused(model, through, f"the graph its call() traces and the model give "
                                           f"{found} in {_mode(mode)} mode (its Python code "
                                           f"branches on {'training or on ' if mode else ''}"
                                           "a value)")
    checked = " and ".join(f"{_mode(mode)} mode" for mode in modes)
    _UNTRACED[graph] = _untraced(model, graph)
    return graph, (f"Keras model {model.name!r} ({through}) validated as the graph its call() "
                   "traces on a symbolic input, over the model's own weights, which gave the "
                   f"model's outputs in {checked} (max abs {max(gaps):.3g})"
                   + _loose(model, graph))


def _untraced(model, graph: Functional) -> list:
    """(holder, sublayer) for each weighted layer an opened layer holds that is no node of
    the graph: its call() ran it on a value made without the layer's input
    (keras.ops.arange's positions), whose output the graph then holds as a constant."""
    held = {id(layer) for layer in graph.layers}
    return [(holder, sub) for holder in layers_to_open(model)
            for sub in holder._flatten_layers(include_self=False, recursive=False)
            if sub.weights and id(sub) not in held and not holds_layers(sub)]


def untraced_words(graph) -> str:
    """Why the pairing cannot see such layers, for a refusal to pair; "" where none."""
    found = _UNTRACED.get(graph) or []
    return "".join(
        f"; Keras layer {holder.name} ({type(holder).__name__}) holds {sub.name} "
        f"({type(sub).__name__}, weights {[tuple(w.shape) for w in sub.weights]}), which "
        f"is no node of the graph its call() traces (call() runs it on a value made without "
        f"{holder.name}'s input, such as positions from keras.ops.arange, whose output the "
        "graph then holds as a constant, or not at all), so the validator cannot pair it "
        "(compare.py compares it from the running model)" for holder, sub in found)


def _loose(model, graph: Functional) -> str:
    """The model's weights that no layer of the graph holds (a call() using a variable of
    its own): they compute, but no pair compares them."""
    held = {id(w) for layer in graph.layers for w in layer.weights}
    loose = [w.path for w in model.weights if id(w) not in held]
    return (f"; {', '.join(loose)}, held by no layer in it, not compared on their own"
            if loose else "")


def _through(model, opened: list) -> str:
    inner = [f"{layer.name} ({type(layer).__name__}{_as_parts(layer)})" for layer in opened
             if layer is not model]
    subclassed = f"{type(model).__name__}, subclassed" if is_subclassed(model) else ""
    return "; ".join(filter(None, [subclassed, inner and "through the layers in "
                                   + ", ".join(inner[:4]) + (", ..." if len(inner) > 4
                                                             else "")]))


def _as_parts(layer) -> str:
    if not isinstance(layer, SEPARABLE_CONVS):
        return ""
    depthwise, pointwise = separable_parts(layer)
    return (f", as {type(depthwise).__name__} {depthwise.name} then {type(pointwise).__name__} "
            f"{pointwise.name}")


def _mode(training: bool) -> str:
    return "training" if training else "inference"


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


def _refused(model, through: str, why: str) -> UsageError:
    return UsageError(f"cannot trace Keras model {model.name!r} ({through}): {why}; rebuild it "
                      "with the functional API (compare.py still compares it as a whole)")


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0]
