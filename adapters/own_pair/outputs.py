"""--output KEY: the one output compared of a model that returns several (a dict's key, or a
position in a tuple or a list), as torchvision's segmentation models return {"out", "aux"}.

The selection goes inside each model, so that every pass (the train step's too) computes its
loss on that output alone: a forward hook on the PyTorch model, which keeps its module and
state names, and a functional wrapper around the Keras model, which keeps its layers."""

from __future__ import annotations

from dataclasses import replace

from adapters.keras.backend import keras
from comparator.errors import UsageError

ONE_OUTPUT = ("the comparison takes models with one output: scores or values per input (N,K), "
              "a map (N,K,H,W in PyTorch) or per-step scores (N,L,K)")


class NotOneOutput(Exception):
    """A model returned several outputs and no --output chose one."""


def _keys(outputs) -> str:
    if isinstance(outputs, dict):
        return f"one of {', '.join(repr(str(k)) for k in outputs)}"
    return f"a position 0..{len(outputs) - 1}"


def several_outputs(side: str, outputs) -> str:
    """Why a model's outputs cannot be compared as they are, or "" where they can."""
    if not isinstance(outputs, (tuple, list, dict)):
        return ""
    return (f"the {side} model returns a {type(outputs).__name__} of {len(outputs)} outputs; "
            f"{ONE_OUTPUT}: choose one with --output ({_keys(outputs)})")


def select(outputs, key: str, side: str):
    """The output named by key (a dict's key, or a tuple's or list's position)."""
    if isinstance(outputs, dict):
        if key in outputs:
            return outputs[key]
    elif isinstance(outputs, (tuple, list)):
        if key.lstrip("-").isdigit() and -len(outputs) <= int(key) < len(outputs):
            return outputs[int(key)]
    else:
        raise UsageError(f"--output {key}: the {side} model returns one output; --output "
                         "chooses among several")
    raise UsageError(f"--output {key}: the {side} model returns a {type(outputs).__name__} of "
                     f"{len(outputs)} outputs; give {_keys(outputs)}")


def select_outputs(torch_side, keras_side, torch_key: str, keras_key: str, input_shape):
    """Both LoadedModels (adapters.own_pair.loader) giving the chosen output only, and the
    function that takes the PyTorch model's hook off again. input_shape: one Keras input,
    channels-last, without the batch axis."""
    inputs = keras.Input(input_shape)
    chosen = select(keras_side.model(inputs), keras_key, "Keras")
    wrapper = keras.Model(inputs, chosen, name=f"{keras_side.model.name}_{keras_key}")
    hook = torch_side.model.register_forward_hook(
        lambda module, args, outputs: select(outputs, torch_key, "PyTorch"))
    return torch_side, replace(keras_side, model=wrapper), hook.remove
