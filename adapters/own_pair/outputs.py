"""--output KEY: the one output compared of a model that returns several (a dict's key, or a
position in a tuple or a list), as torchvision's segmentation models return {"out", "aux"};
--output KEY1,KEY2,...: several of them, whose losses the comparison sums with weights.

The selection goes inside each model, so that every pass (the train step's too) computes its
loss on that output alone: a forward hook on the PyTorch model, which keeps its module and
state names, and for Keras the part of its functional graph that computes the output (a
model calling it, for a subclassed model), which shares its layers.

A worker on TensorFlow or JAX rebuilds the Keras side's selection (keras_chosen_outputs), so
torch is imported only by the functions that run the PyTorch model or torch's autograd
(adapters.own_pair.keras_layers says why)."""

from __future__ import annotations

import numpy as np

from adapters.keras.backend import keras
from keras.src.models.functional import Functional  # noqa: E402
from adapters.own_pair.keras_layers import weighted_keras_layers
from adapters.own_pair.loader import symbolic_inputs
from comparator.errors import UsageError

ONE_OUTPUT = ("the comparison takes models with one output: scores or values per input (N,K), "
              "a map (N,K,H,W in PyTorch) or per-step scores (N,L,K)")


class NotOneOutput(Exception):
    """A model returned several outputs and no --output chose one."""


def _keys(outputs) -> str:
    if isinstance(outputs, dict):
        return f"one of {', '.join(repr(str(k)) for k in outputs)}"
    return f"a position 0..{len(outputs) - 1}"


def one_output(side: str, outputs):
    """The outputs, where they are one; NotOneOutput, saying why, where they are several."""
    if isinstance(outputs, (tuple, list, dict)):
        raise NotOneOutput(f"the {side} model returns a {type(outputs).__name__} of "
                           f"{len(outputs)} outputs; {ONE_OUTPUT}: choose one with --output "
                           f"({_keys(outputs)})")
    return outputs


def select(outputs, key: str, side: str, given: str | None = None):
    """The output named by key (a dict's key, or a tuple's or list's position); given: the
    whole --output, where it names several, for the words of a refusal."""
    if isinstance(outputs, dict):
        if key in outputs:
            return outputs[key]
    elif isinstance(outputs, (tuple, list)):
        if key.lstrip("-").isdigit() and -len(outputs) <= int(key) < len(outputs):
            return outputs[int(key)]
    else:
        raise UsageError(f"--output {given or key}: the {side} model returns one output; "
                         "--output chooses among several")
    raise UsageError(f"--output {key}: the {side} model returns a {type(outputs).__name__} of "
                     f"{len(outputs)} outputs; give {_keys(outputs)}")


def select_outputs(torch_model, keras_model, torch_key: str, keras_key: str, input_shape):
    """A Keras model over keras_model giving the chosen output only, and the function that
    takes off the hook through which torch_model now gives its own. input_shape: one Keras
    input, channels-last, without the batch axis (a tuple of them for several inputs)."""
    return choose_outputs(torch_model, keras_model, [(torch_key, keras_key)], input_shape)


def choose_outputs(torch_model, keras_model, keys: list[tuple[str, str]], input_shape):
    """select_outputs for one or several (TORCH_KEY, KERAS_KEY): with several, the Keras
    model returns a list of the chosen outputs and the PyTorch model a tuple, in keys' order,
    so that each framework's own multi-output loss sees them."""
    torch_keys, keras_keys = [t for t, _ in keys], [k for _, k in keys]
    wrapper = keras_chosen_outputs(keras_model, keras_keys, input_shape)
    given = ",".join(torch_keys) if len(keys) > 1 else None

    def chosen_by_pytorch(module, args, outputs):
        picked = tuple(select(outputs, key, "PyTorch", given) for key in torch_keys)
        return picked if len(picked) > 1 else picked[0]

    return wrapper, torch_model.register_forward_hook(chosen_by_pytorch).remove


def keras_chosen_outputs(keras_model, keras_keys: list[str], input_shape):
    """choose_outputs's Keras side: a model over keras_model's layers giving the chosen
    outputs (a list of them, where several), which a worker rebuilds as well."""
    if isinstance(keras_model, Functional) and not isinstance(keras_model, keras.Sequential):
        # The graph's own part that computes the chosen outputs: one flat graph, as the port
        # validator traces it.
        inputs = keras_model.inputs[0] if len(keras_model.inputs) == 1 else keras_model.inputs
        outputs = keras_model.output
    else:
        inputs = symbolic_inputs(input_shape)
        outputs = keras_model(inputs)
    given = ",".join(keras_keys) if len(keras_keys) > 1 else None
    chosen = [select(outputs, key, "Keras", given) for key in keras_keys]
    return keras.Model(inputs, chosen if len(chosen) > 1 else chosen[0],
                       name=f"{keras_model.name}_{'_'.join(keras_keys)}")


def _total(outputs):
    """The sum of every value of one output, or of several."""
    if isinstance(outputs, (tuple, list)):
        return sum(output.sum() for output in outputs)
    return outputs.sum()


def _reached(values: list, run) -> list[bool]:
    """Whether each tensor reaches the sum of run()'s outputs, by torch's autograd (on which
    the in-process Keras runs too); every requires_grad flag restored afterwards."""
    import torch

    flags = [value.requires_grad for value in values]
    try:
        for value in values:
            value.requires_grad_(True)
        with torch.enable_grad():
            grads = torch.autograd.grad(_total(run()), values, allow_unused=True)
    finally:
        for value, flag in zip(values, flags):
            value.requires_grad_(flag)
    return [g is not None for g in grads]


def off_the_output(torch_model, x: np.ndarray) -> list[str]:
    """The PyTorch modules holding weights of which none reaches the chosen outputs (another
    output's head), in the order named_modules() lists them: Keras's part of the graph that
    computes the output has no such layers to pair them with. One inference pass through
    autograd, the modules' modes and requires_grad flags restored afterwards."""
    import torch

    params = dict(torch_model.named_parameters())
    modes = [(module, module.training) for module in torch_model.modules()]
    device = next(torch_model.parameters()).device
    try:
        torch_model.eval()
        reaches = _reached(list(params.values()),
                           lambda: torch_model(*[torch.from_numpy(v).to(device) for v in
                                                 (x if isinstance(x, tuple) else (x,))]))
    finally:
        for module, training in modes:
            module.training = training
    reached = {name.rpartition(".")[0] for name, hit in zip(params, reaches) if hit}
    return [name for name, module in torch_model.named_modules()
            if any(True for _ in module.parameters(recurse=False)) and name not in reached]


def keras_off_the_output(keras_model, x: np.ndarray) -> list[str]:
    """The Keras layers holding weights of which none reaches the model's output, in running
    order: the part of a subclassed model that computes another output, which it keeps as a
    layer whatever it returns (a functional graph cut to the output has no such layers).
    x: Keras's batch. One inference pass through autograd, every variable's requires_grad
    flag restored afterwards."""
    weighted = weighted_keras_layers(keras_model)
    owners = [layer for layer in weighted for _ in layer.weights]
    reaches = _reached([variable.value for layer in weighted for variable in layer.weights],
                       lambda: keras_model(x, training=False))
    reaching = {id(layer) for layer, hit in zip(owners, reaches) if hit}
    return [layer.name for layer in weighted if id(layer) not in reaching]
