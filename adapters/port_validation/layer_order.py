"""Paired layers that run in another order in the two models: a pre-norm block ported as
post-norm (PyTorch's norm1 runs before self_attn, Keras's pair of it after attn), a
normalisation moved past the next layer. Each pass lists its pairs in Keras's running order;
PyTorch's is traced (operation_settings.torch_calls). A layer whose input differs because of
that order is named with the layers that moved."""

from __future__ import annotations

from adapters.port_validation.graph import graph_nodes
from adapters.port_validation.sequences import split_layer_key
from comparator.analysis.validation import Cause


def keras_ancestors(fn) -> dict[str, set[str]]:
    """Each operation of Keras's graph with the operations upstream of it."""
    upstream: dict[str, set[str]] = {}
    for node in graph_nodes(fn):
        found = upstream.setdefault(node.operation.name, set())
        for parent in node.parent_nodes:
            if parent.operation is not None:
                found |= {parent.operation.name, *upstream.get(parent.operation.name, ())}
    return upstream


def moved_around(torch_key: str, pairs: list, torch_order: list[str],
                 upstream: dict[str, set[str]]) -> tuple[list, list]:
    """(pairs PyTorch runs before torch_key that Keras runs after it, pairs Keras runs before
    it that PyTorch runs after it), of the pairs on one path with it in Keras's graph (two
    branches may run in either order: neither feeds the other). pairs: in Keras's running
    order; torch_order: PyTorch's module names in the order their calls ended."""
    ended = {}
    for index, name in enumerate(torch_order):
        ended.setdefault(name, index)

    def torch_position(pair):
        return ended.get(split_layer_key(pair.torch_module)[0])

    keras_position = {p.torch_module: i for i, p in enumerate(pairs)}
    here = next((p for p in pairs if p.torch_module == torch_key), None)
    if here is None or torch_position(here) is None:
        return [], []
    mine, theirs = torch_position(here), keras_position[torch_key]
    keras_name = here.keras_layer

    def on_one_path(pair) -> bool:
        return (pair.keras_layer in upstream.get(keras_name, ())
                or keras_name in upstream.get(pair.keras_layer, ()))
    known = [p for p in pairs if p is not here and torch_position(p) is not None
             and on_one_path(p)]
    earlier_in_torch = [p for p in known if torch_position(p) < mine
                        and keras_position[p.torch_module] > theirs]
    earlier_in_keras = [p for p in known if keras_position[p.torch_module] < theirs
                        and torch_position(p) > mine]
    return earlier_in_torch, earlier_in_keras


def order_cause(torch_key: str, keras_name: str, pairs: list, torch_order: list[str],
                types: dict, upstream: dict[str, set[str]]) -> Cause | None:
    """The layer-order cause of a pair whose input differs, or None where both run the
    other pairs on the same side of it. types: {"torch_module": {name: class name},
    "keras_layer": {name: class name}}."""
    torch_first, keras_first = moved_around(torch_key, pairs, torch_order, upstream)
    if not torch_first and not keras_first:
        return None

    def named(found, side):
        return ", ".join(f"{getattr(p, side)} ({types[side].get(getattr(p, side), '?')})"
                         for p in found)
    parts = []
    if torch_first:
        parts.append(f"PyTorch runs {named(torch_first, 'torch_module')} before {torch_key}, "
                     f"Keras runs its pair {named(torch_first, 'keras_layer')} after "
                     f"{keras_name}")
    if keras_first:
        parts.append(f"Keras runs {named(keras_first, 'keras_layer')} before {keras_name}, "
                     f"PyTorch runs its pair {named(keras_first, 'torch_module')} after "
                     f"{torch_key}")
    return Cause("layer_order", "the layers run in another order: " + "; ".join(parts),
                 "the paired layers compute the same, but this one gets its input from "
                 "another point of the model (a pre-norm block ported as post-norm, say): "
                 "call the Keras layers in PyTorch's order")
