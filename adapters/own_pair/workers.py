"""A user pair's Keras model on other Keras backends and versions, in workers.

The comparison opens the pair in its own process (adapters.own_pair.setup); a worker
(adapters.keras.worker) cannot be handed the model object, so it rebuilds it: the same SPEC
(a FILE.py:callable or a .keras file), the same --output selection and --freeze, and then the
weights the comparison's own Keras model holds (after --port-weights or --keras-weights),
set by position. `keras_side_request` is what the parent sends (the "user_model" entry of the
worker's request); `rebuild` is what the worker does with it. The worker's states come back
named by position and are renamed here by the comparison's own adapter
(KerasUserAdapter.canonical_from_positions), so that they are compared under the names the
in-process Keras side's states have.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from dataclasses import replace

from comparator.errors import UsageError


def portable_spec(spec: str) -> str:
    """The SPEC as a worker finds it: a file's path made absolute (a worker runs in the
    repository's root, not in the caller's folder); a module:callable as it is."""
    where, sep, attribute = spec.rpartition(":")
    if sep and where.endswith(".py"):
        return f"{os.path.abspath(where)}:{attribute}"
    if spec.lower().endswith(".keras"):
        return os.path.abspath(spec)
    return spec


def spec_imports(spec: str, module: str) -> bool:
    """Whether the file of a FILE.py:callable or module:callable SPEC imports `module` (or a
    module inside it) itself, read without running it; False for a .keras file."""
    where, sep, _ = spec.rpartition(":")
    if not sep:
        return False
    path = where if where.endswith(".py") else _module_file(where)
    try:
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
    except (OSError, SyntaxError, TypeError, ValueError):
        return False  # the worker's own import of the SPEC says what is wrong with it
    names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names]
    names += [node.module for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module and not node.level]
    return any(name == module or name.startswith(f"{module}.") for name in names)


def _module_file(name: str) -> str | None:
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return found.origin if found is not None else None


def keras_side_request(pair, keras_adapter, keras_shape, classes, batch) -> dict:
    """What a worker needs to rebuild the pair's Keras side as the comparison holds it."""
    keras_keys = [theirs for _, theirs in pair.output_key_pairs()]
    weights = pair.output_weights()
    return {"keras": portable_spec(os.fspath(pair.keras)),
            "input_shape": keras_shape, "output": keras_keys or None,
            "output_weights": list(weights) if weights else None,
            "freeze": pair.freeze_names()[1], "dropout_off": pair.dropout == "off",
            "classes": classes, "naming": keras_adapter.worker_naming(),
            "keras_layout": batch.keras_layout, "keras_outputs": batch.keras_outputs}


def _shape(value):
    """A JSON input shape back as a tuple, or a tuple of tuples for several inputs."""
    if value and isinstance(value[0], list):
        return tuple(tuple(shape) for shape in value)
    return tuple(value)


def batch_layouts(request: dict) -> dict:
    """The Batch fields that say how Keras takes the pair's inputs and holds its outputs."""
    layout = request["keras_layout"]
    return {"keras_layout": tuple(layout) if isinstance(layout, list) else layout,
            "keras_outputs": request["keras_outputs"]}


def rebuild(adapter, request: dict, scenario: str, seed: int) -> None:
    """The user's Keras model rebuilt in a worker and adopted by its KerasUserAdapter, as
    adapters.own_pair.setup opened it in the comparison's process."""
    from adapters.keras.backend import keras
    from adapters.own_pair.loader import as_keras
    from adapters.own_pair.outputs import keras_chosen_outputs

    keras.utils.set_random_seed(seed)  # as loader.seed_spec_builders seeded the build there
    shape = _shape(request["input_shape"])
    loaded = as_keras(request["keras"], input_shape=shape)
    if request["output"]:
        loaded = replace(loaded, model=keras_chosen_outputs(loaded.model, request["output"],
                                                            shape))
    weights = request["output_weights"]
    adapter.output_weights = tuple(weights) if weights else None
    adapter.adopt(loaded, request["freeze"], scenario, seed, shape,
                  dropout_off=request["dropout_off"], classes=request["classes"],
                  naming=request["naming"])


def require_same_model(adapter, given: dict, naming: dict) -> None:
    """Refuses a rebuilt model that is not the comparison's: another count or other shapes of
    weights (named by position in `given`), or another count of layers, as a builder that
    makes another model on this backend or Keras version does."""
    own = adapter.positional_arrays()
    where = f"the Keras model rebuilt for {adapter.name}"
    if len(own) != len(given):
        raise UsageError(f"{where} holds {len(own)} weights, the comparison's own "
                         f"{len(given)}: the builder makes another model there")
    other = next((name for name in own if name not in given), None)
    if other is not None:
        raise UsageError(f"{where} holds a BatchNorm statistic where the comparison's own holds "
                         f"another weight, or the reverse (weight {other.split('.')[0]}): the "
                         "builder makes another model there")
    for name, mine in own.items():
        if mine.shape != given[name].shape:
            raise UsageError(f"{where} holds weight {name} of shape {mine.shape}, the "
                             f"comparison's own {given[name].shape}: the builder makes another "
                             "model there")
    layers_here, theirs = len(adapter._all_layers()), len(naming["layer_names"])
    if layers_here != theirs:
        raise UsageError(f"{where} has {layers_here} layers, the comparison's own {theirs}: the "
                         "builder makes another model there")
